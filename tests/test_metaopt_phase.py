"""Meta-optimisation phase diagram from hand-built evaluation files and run folders: the
classification rule at its edges, the majority per cell, matching runs, determinism."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gpicl.figures import metaopt_phase
from gpicl.io import write_json
from gpicl.metrics import (
    CHANCE_LOSS,
    GENERALISING,
    MEMORISING,
    STUCK,
    UNCLASSIFIED,
    classify_phase,
    majority_phase,
)

LOW = [1.0] * 30  # off the plateau
PLATEAU = [CHANCE_LOSS] * 30


def make_run(
    root: Path,
    num_tasks: int,
    batch: tuple[int, int],
    seed: int,
    seen: float,
    unseen: float,
    losses: list[float] = LOW,
    dataset: str = "mnist",
    write_eval: bool = True,
    write_done: bool = True,
) -> tuple[Path, Path]:
    """Eval file and done.json (+ log.csv) of one run, laid out as the workflow does."""
    tasks_per_step, seqs_per_task = batch
    name = f"metaopt/{dataset}-b{tasks_per_step}x{seqs_per_task}-t{num_tasks}-s{seed}"
    length = 4

    def stats(last: float) -> dict:
        return {
            "num_tasks": 2,
            "num_sequences": 100,
            "accuracy": [0.1] * (length - 1) + [last],
            "loss": [2.3] * length,
            "correct_last": round(last * 100),
        }

    eval_path = root / "eval" / name / f"{dataset}.json"
    if write_eval:
        write_json(
            eval_path,
            {
                "tier": "cpu",
                "experiment": "metaopt",
                "run": name,
                "method": "transformer",
                "num_tasks": num_tasks,
                "dataset": dataset,
                "train_dataset": "mnist",
                "seed": seed,
                "curriculum": False,
                "sequence_length": length,
                "task_sets": {"seen": stats(seen), "unseen": stats(unseen), "identity": stats(0)},
            },
        )
    done_path = root / "runs" / name / "done.json"
    if write_done:
        write_json(
            done_path,
            {
                "name": name,
                "finished": True,
                "final_loss": losses[-1],
                "plateau_step": None,
                "seed": seed,
                "variant": None,
                "num_tasks": num_tasks,
                "train": {
                    "tasks_per_step": tasks_per_step,
                    "seqs_per_task": seqs_per_task,
                    "num_tasks": num_tasks,
                    "steps": len(losses),
                },
            },
        )
        with (done_path.parent / "log.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["step", "loss", "accuracy", "grad_norm", "distinct_examples"])
            for i, loss in enumerate(losses):
                w.writerow([i + 1, loss, 0.1, 0.01, 0])
    return eval_path, done_path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("loss", "seen", "unseen", "expected"),
    [
        (CHANCE_LOSS - 0.05, 0.9, 0.9, GENERALISING),  # exactly at the stuck line: off the plateau
        (CHANCE_LOSS - 0.04, 0.9, 0.9, STUCK),  # above it: stuck, whatever the accuracies
        (1.0, 0.9, 0.2, GENERALISING),  # unseen exactly at its threshold
        (1.0, 0.9, 0.19, MEMORISING),
        (1.0, 0.3, 0.1, MEMORISING),  # seen exactly at its threshold
        (1.0, 0.29, 0.1, UNCLASSIFIED),
        (1.0, 0.1, 0.5, GENERALISING),  # unseen decides before seen
    ],
)
def test_classify_phase_rule_and_threshold_edges(loss, seen, unseen, expected):
    assert classify_phase(loss, seen, unseen) == expected


def test_classify_phase_uses_the_given_thresholds_and_rejects_nan():
    assert classify_phase(1.0, 0.4, 0.25, seen_threshold=0.5, unseen_threshold=0.3) == UNCLASSIFIED
    assert classify_phase(CHANCE_LOSS - 0.08, 0.9, 0.9, margin=0.1) == STUCK
    with pytest.raises(ValueError, match="non-finite"):
        classify_phase(float("nan"), 0.5, 0.5)


def test_majority_breaks_ties_in_classification_order():
    assert majority_phase([MEMORISING, GENERALISING, GENERALISING]) == (GENERALISING, 2)
    assert majority_phase([MEMORISING, GENERALISING]) == (GENERALISING, 1)
    assert majority_phase([GENERALISING, STUCK]) == (STUCK, 1)
    assert majority_phase([UNCLASSIFIED, MEMORISING]) == (MEMORISING, 1)


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[list[Path], list[str]]:
    """A 3 x 2 grid of (tasks, batch) with one empty cell; run_files as strings (JSON options)."""
    root = tmp_path / "results"
    # the last 25 losses decide: a late return to the plateau is stuck, a late spike is not
    back_on_plateau = [1.0] * 5 + [CHANCE_LOSS] * 25
    spike = [2.0] * 24 + [2.5]
    runs = [
        make_run(root, 16, (32, 4), 0, seen=0.9, unseen=0.1),  # mem
        make_run(root, 16, (32, 4), 1, seen=0.8, unseen=0.1, losses=spike),  # mem
        make_run(root, 16, (4, 4), 0, seen=0.2, unseen=0.1),  # unclassified
        make_run(root, 2**16, (32, 4), 0, seen=0.8, unseen=0.7),  # gen
        make_run(root, 2**16, (32, 4), 1, seen=0.8, unseen=0.6),  # gen
        make_run(root, 2**16, (32, 4), 2, seen=0.5, unseen=0.1),  # mem
        make_run(root, 2**16, (4, 4), 0, seen=0.9, unseen=0.9, losses=back_on_plateau),  # stuck
        make_run(root, 256, (4, 4), 0, seen=0.5, unseen=0.1),  # mem  } tie -> gen
        make_run(root, 256, (4, 4), 1, seen=0.5, unseen=0.3),  # gen  }
    ]  # (256, 128) has no run
    return [e for e, _ in runs], [str(d) for _, d in runs]


def test_make_classifies_runs_and_cells(tmp_path, sweep):
    evals, run_files = sweep
    out = tmp_path / "figures" / "metaopt_phase"
    metaopt_phase.make(evals, out, run_files=run_files)
    assert {p.name for p in out.parent.iterdir()} == {
        "metaopt_phase.png",
        "metaopt_phase.svg",
        "metaopt_phase.csv",
    }
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(metaopt_phase.CSV_COLUMNS)
    by_cell: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        by_cell.setdefault((int(r["log2_tasks"]), int(r["batch_size"])), []).append(r)
    classes = {key: [r["class"] for r in group] for key, group in by_cell.items()}
    assert classes == {
        (4, 16): [UNCLASSIFIED],
        (4, 128): [MEMORISING, MEMORISING],
        (8, 16): [MEMORISING, GENERALISING],
        (16, 16): [STUCK],
        (16, 128): [GENERALISING, GENERALISING, MEMORISING],
    }
    verdicts = {
        key: (g[0]["cell_class"], g[0]["cell_votes"], g[0]["cell_runs"])
        for key, g in by_cell.items()
    }
    assert verdicts[(16, 128)] == (GENERALISING, "2", "3")
    assert verdicts[(8, 16)] == (GENERALISING, "1", "2")  # tie
    assert verdicts[(4, 128)] == (MEMORISING, "2", "2")
    spike = by_cell[(4, 128)][1]
    assert float(spike["final_loss_smoothed"]) == pytest.approx(2.02)
    assert float(by_cell[(16, 16)][0]["final_loss_smoothed"]) == pytest.approx(CHANCE_LOSS)
    assert rows[0]["seen_threshold"] == "0.300000" and rows[0]["window"] == "25"
    assert float(rows[0]["stuck_loss"]) == pytest.approx(CHANCE_LOSS - 0.05)
    assert rows[0]["num_tasks"] == "16" and rows[0]["run"].startswith("metaopt/mnist-")
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    for text in (
        "gen 2/3",
        "gen 1/2",
        "mem 2/2",
        "stuck 1/1",
        "uncl 1/1",
        "unseen 0.47",
        "seen 0.70",
    ):
        assert text in svg
    for text in ("stuck on the plateau", "generalising", "memorising", "unclassified", "tier: cpu"):
        assert text in svg


def test_options_change_the_classification(tmp_path, sweep):
    evals, run_files = sweep
    out = tmp_path / "strict"
    metaopt_phase.make(evals, out, run_files, seen_threshold=0.95, unseen_threshold=0.65, window=1)
    rows = {
        (r["log2_tasks"], r["batch_size"], r["seed"]): r for r in read_rows(out.with_suffix(".csv"))
    }
    assert rows[("16", "128", "0")]["class"] == GENERALISING
    assert rows[("16", "128", "1")]["class"] == UNCLASSIFIED
    assert rows[("4", "128", "1")]["class"] == STUCK  # window 1: the last loss, 2.5
    assert rows[("4", "128", "0")]["unseen_threshold"] == "0.650000"


@pytest.mark.parametrize("missing", ["eval", "done"])
def test_run_without_eval_or_done_json_is_an_error_naming_it(tmp_path, sweep, missing):
    evals, run_files = sweep
    extra_eval, extra_done = make_run(
        tmp_path / "results", 2**20, (32, 4), 0, 0.5, 0.5,
        write_eval=missing != "eval", write_done=missing != "done",
    )  # fmt: skip
    if missing == "eval":
        run_files.append(str(extra_done))
        match = r"metaopt/mnist-b32x4-t1048576-s0.*done\.json but no mnist file"
    else:
        evals.append(extra_eval)
        match = r"metaopt/mnist-b32x4-t1048576-s0.*evaluation file but no done\.json"
    with pytest.raises(ValueError, match=match):
        metaopt_phase.make(evals, tmp_path / "out", run_files)


def test_run_without_log_is_an_error_naming_it(tmp_path, sweep):
    evals, run_files = sweep
    Path(run_files[0]).with_name("log.csv").unlink()
    with pytest.raises(FileNotFoundError, match="training log of run metaopt/mnist-b32x4-t16-s0"):
        metaopt_phase.make(evals, tmp_path / "out", run_files)


def test_mixed_datasets_are_rejected(tmp_path, sweep):
    evals, run_files = sweep
    other, _ = make_run(tmp_path / "results", 16, (32, 4), 0, 0.5, 0.1, dataset="fashion_mnist")
    with pytest.raises(ValueError, match="mixes dataset"):
        metaopt_phase.make([*evals, other], tmp_path / "out", run_files)


def test_outputs_are_byte_identical_and_independent_of_file_order(tmp_path, sweep):
    evals, run_files = sweep
    metaopt_phase.make(evals, tmp_path / "a", run_files)
    metaopt_phase.make(evals[::-1], tmp_path / "b", run_files[::-1])
    for ext in ("png", "svg", "csv"):
        assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()


def test_batch_axis_is_log2_with_blank_columns():
    assert metaopt_phase.batch_columns({16, 128}) == [16, 32, 64, 128]
    assert metaopt_phase.batch_columns({16, 96}) == [16, 96]
    assert metaopt_phase.batch_columns(set()) == []


def test_without_runs_draws_an_empty_diagram(tmp_path):
    metaopt_phase.make([], tmp_path / "empty", [])
    assert "no runs" in (tmp_path / "empty.svg").read_text(encoding="utf-8")
    assert read_rows(tmp_path / "empty.csv") == []
