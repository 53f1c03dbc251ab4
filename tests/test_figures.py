"""Figure 3 and Table 1 from hand-built evaluation files: numbers, missing columns, determinism."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpicl.figures import (
    FIGURES,
    compute_study,
    external,
    fig2_heatmaps,
    fig3_learning_curves,
    fig4_transitions,
    lr_sweep,
    metaopt_batch,
    metaopt_bias,
    metaopt_interventions,
    metaopt_phase,
    metaopt_plateau,
    metrics,
    state_size,
    table1,
    table1_training,
)
from gpicl.io import read_json, write_json
from gpicl.metrics import bootstrap_interval, sequence_outcomes
from gpicl.plotting import new_figure, save_figure, write_csv
from gpicl.results import load_unavailable

CURRICULUM_TEXT = "exemplar-repetition curriculum (deviation"


def counts(correct: list[int], count: list[int]) -> np.ndarray:
    """(seeds, 1, n) outcomes of records without per-sequence outcomes (one "task" each)."""
    return np.stack([sequence_outcomes(k, n) for k, n in zip(correct, count, strict=True)])


def eval_file(
    root: Path,
    train: str,
    test: str,
    seed: int,
    unseen_accuracy: list[float],
    num_sequences: int = 4,
    curriculum: bool = False,
    tier: str = "cpu",
    method: str = "transformer",
) -> Path:
    """One file in the evaluation contract; correct_last agrees with the last accuracy."""
    length = len(unseen_accuracy)
    stats = {
        "num_tasks": 2,
        "num_sequences": num_sequences,
        "accuracy": unseen_accuracy,
        "loss": [2.3] * length,
        "correct_last": round(unseen_accuracy[-1] * num_sequences),
    }
    run = f"{train}_{method}_s{seed}"
    record = {
        "run": f"fig3/{run}",
        "train_dataset": train,
        "dataset": test,
        "seed": seed,
        "tier": tier,
        "method": method,
        "curriculum": curriculum,
        "sequence_length": length,
        "task_sets": {"seen": stats, "unseen": stats, "identity": stats},
    }
    path = root / "eval" / "fig3" / run / f"{test}.json"
    write_json(path, record)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def fig3_files(tmp_path: Path) -> list[Path]:
    tmp_path = tmp_path / "fig3_inputs"
    return [
        eval_file(tmp_path, "mnist", "mnist", 0, [0.0, 0.5, 0.75, 1.0]),
        eval_file(tmp_path, "mnist", "mnist", 1, [0.25, 0.25, 0.25, 0.5]),
        eval_file(tmp_path, "fashion_mnist", "mnist", 0, [0.25, 0.5, 0.5, 0.75]),
        eval_file(tmp_path, "mnist", "fashion_mnist", 0, [0.0, 0.25, 0.5, 0.5]),
        eval_file(tmp_path, "mnist", "kmnist", 0, [0.0, 0.0, 0.0, 0.0]),  # not a fig3 panel
    ]


@pytest.fixture
def table1_files(tmp_path: Path) -> list[Path]:
    tmp_path = tmp_path / "table1_inputs"
    acc0 = [0.1] * 9 + [300 / 384]
    acc1 = [0.1] * 9 + [200 / 384]
    return [
        eval_file(tmp_path, "mnist", "mnist", 0, acc0, num_sequences=384),
        eval_file(tmp_path, "mnist", "mnist", 1, acc1, num_sequences=384),
        eval_file(tmp_path, "mnist", "fashion_mnist", 0, [0.1] * 9 + [0.5], num_sequences=384),
        # meta-trained on Fashion-MNIST: not part of Table 1
        eval_file(tmp_path, "fashion_mnist", "mnist", 0, [0.1] * 10, num_sequences=384),
    ]


def test_figures_registry_names_the_cli_targets():
    assert FIGURES == {
        "compute_study": compute_study.make,
        "fig2": fig2_heatmaps.make,
        "fig3": fig3_learning_curves.make,
        "fig4": fig4_transitions.make,
        "table1": table1.make,
        "table1_training": table1_training.make,
        "lr_sweep": lr_sweep.make,
        "state_size": state_size.make,
        "metaopt_plateau": metaopt_plateau.make,
        "metaopt_batch": metaopt_batch.make,
        "metaopt_phase": metaopt_phase.make,
        "metaopt_interventions": metaopt_interventions.make,
        "metaopt_bias": metaopt_bias.make,
        "metrics": metrics.make,
        "external": external.make,
    }


def test_fig3_csv_holds_mean_and_min_max_over_seeds(tmp_path, fig3_files):
    out = tmp_path / "figures" / "fig3"
    fig3_learning_curves.make(fig3_files, out)
    assert {p.name for p in out.parent.iterdir()} == {"fig3.png", "fig3.svg", "fig3.csv"}
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(fig3_learning_curves.CSV_COLUMNS)
    curve = [r for r in rows if r["test_dataset"] == "mnist" and r["train_dataset"] == "mnist"]
    assert [float(r["mean"]) for r in curve] == [0.125, 0.375, 0.5, 0.75]
    assert [float(r["low"]) for r in curve] == [0.0, 0.25, 0.25, 0.5]
    assert [float(r["high"]) for r in curve] == [0.25, 0.5, 0.75, 1.0]
    assert [int(r["position"]) for r in curve] == [0, 1, 2, 3]
    assert {r["n_seeds"] for r in curve} == {"2"}
    single = [
        r for r in rows if r["test_dataset"] == "mnist" and r["train_dataset"] == "fashion_mnist"
    ]
    assert [float(r["mean"]) for r in single] == [0.25, 0.5, 0.5, 0.75]
    assert single[0]["low"] == single[0]["high"] == single[0]["mean"]
    # three curves (no Fashion-MNIST -> Fashion-MNIST file), kmnist ignored
    assert len(rows) == 3 * 4
    assert {r["test_dataset"] for r in rows} == {"mnist", "fashion_mnist"}
    assert rows[0]["mean"] == "0.125000"  # fixed float format


def test_fig3_names_tier_band_and_chance(tmp_path, fig3_files):
    out = tmp_path / "fig3"
    fig3_learning_curves.make(fig3_files, out)
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert "tier: cpu" in svg
    assert "min to max over seeds" in svg
    assert "chance" in svg
    assert CURRICULUM_TEXT not in svg


def test_fig3_names_curriculum_deviation(tmp_path, fig3_files):
    fig3_files.append(eval_file(tmp_path, "mnist", "mnist", 2, [0.0] * 4, curriculum=True))
    out = tmp_path / "fig3"
    fig3_learning_curves.make(fig3_files, out)
    assert CURRICULUM_TEXT in out.with_suffix(".svg").read_text(encoding="utf-8")


def test_fig3_rejects_two_files_for_one_seed(tmp_path, fig3_files):
    fig3_files.append(fig3_files[0])
    with pytest.raises(ValueError, match="both give"):
        fig3_learning_curves.make(fig3_files, tmp_path / "fig3")


def test_fig3_rejects_mixed_tiers(tmp_path, fig3_files):
    fig3_files.append(eval_file(tmp_path, "mnist", "mnist", 5, [0.0] * 4, tier="ci"))
    with pytest.raises(ValueError, match="tier"):
        fig3_learning_curves.make(fig3_files, tmp_path / "fig3")


def md_cells(md: str, row_start: str) -> list[str]:
    """The six dataset cells of the Markdown row starting with `row_start`."""
    line = next(line for line in md.splitlines() if line.startswith(row_start))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_table1_pools_seeds_and_marks_missing_columns(tmp_path, table1_files):
    out = tmp_path / "tables" / "table1"
    table1.make(table1_files, out)
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(table1.CSV_COLUMNS)
    # the paper's five rows, in its order, six columns each
    assert [r["method"] for r in rows] == [
        m for m in ("sgd", "maml", "vsml", "lstm", "transformer") for _ in range(6)
    ]
    assert [r["dataset"] for r in rows] == list(table1.COLUMNS) * 5
    by_dataset = {r["dataset"]: r for r in rows if r["method"] == "transformer"}

    mnist = by_dataset["mnist"]
    assert (mnist["correct"], mnist["count"], mnist["n_seeds"]) == ("500", "768", "2")
    assert float(mnist["ours_accuracy"]) == pytest.approx(500 / 768, abs=1e-6)
    assert float(mnist["paper_accuracy"]) == pytest.approx(0.7370)
    assert mnist["status"] == "ok"
    assert mnist["tier"] == "cpu"
    low, high = bootstrap_interval(counts([300, 200], [384, 384]))  # seeds ascending
    assert (float(mnist["ci_low"]), float(mnist["ci_high"])) == (
        pytest.approx(low, abs=1e-6),
        pytest.approx(high, abs=1e-6),
    )
    assert float(mnist["ci_low"]) < 500 / 768 < float(mnist["ci_high"])
    fashion = by_dataset["fashion_mnist"]
    assert (fashion["correct"], fashion["count"], fashion["n_seeds"]) == ("192", "384", "1")

    for dataset in ("kmnist", "random", "cifar10", "svhn"):
        row = by_dataset[dataset]
        assert row["status"] == "no evaluation file"
        assert row["reason"] == "no evaluation file"
        assert row["ours_accuracy"] == row["ci_low"] == row["ci_high"] == row["tier"] == "NA"
        assert row["count"] == "0"
    assert mnist["reason"] == "NA"

    md = out.with_suffix(".md").read_text(encoding="utf-8")
    cells = md_cells(md, "| GPICL Transformer (ours")
    pct = f"[{100 * low:.2f}%, {100 * high:.2f}%]"
    assert cells[0] == f"65.10% {pct} (n=768, 2 seeds)"
    assert cells[1].startswith("50.00% [") and cells[1].endswith("] (n=384, 1 seed)")
    assert cells[2:] == ["no evaluation file"] * 4
    paper = next(line for line in md.splitlines() if line.startswith("| GPICL Transformer (paper"))
    assert "73.70%" in paper and "14.58%" in paper
    assert "Tier: cpu." in md
    assert "position 9 (sequence length 10)" in md
    assert "curriculum" not in md
    assert "hierarchical percentile bootstrap over seeds, tasks and sequences" in md
    assert "10,000 resamples" in md


def test_table1_without_files_says_so_in_every_cell(tmp_path):
    out = tmp_path / "table1"
    table1.make([], out)
    rows = read_rows(out.with_suffix(".csv"))
    assert [r["status"] for r in rows] == ["no evaluation file"] * 30
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    for label in ("SGD", "MAML", "VSML", "LSTM", "GPICL Transformer"):
        assert md_cells(md, f"| {label} (ours) |") == ["no evaluation file"] * 6
    assert "Tier: none (no evaluation files)." in md


def test_table1_shows_all_five_rows_with_only_transformer_files(tmp_path, table1_files):
    out = tmp_path / "table1"
    table1.make(table1_files, out, unavailable={"svhn": "no mirror"})
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    main = md.split("Intervals:")[0]
    table_rows = [line.split("|")[1].strip() for line in main.splitlines() if line.startswith("| ")]
    assert table_rows[1:] == [
        f"{label} ({kind})"
        for label in ("SGD", "MAML", "VSML", "LSTM", "GPICL Transformer")
        for kind in ("ours", "paper")
    ]
    for label in ("SGD", "MAML", "VSML", "LSTM"):
        assert md_cells(md, f"| {label} (ours) |") == ["no evaluation file"] * 5 + [
            "data not available"
        ]
    assert "| SGD (paper) | 70.31% | 50.78% | 37.89% | 100.00% | 14.84% | 10.16% |" in md
    assert "| LSTM (paper) | 25.39% | 28.12% | 18.10% | 58.72% | 12.11% | 11.07% |" in md
    rows = read_rows(out.with_suffix(".csv"))
    sgd_svhn = next(r for r in rows if r["method"] == "sgd" and r["dataset"] == "svhn")
    assert (sgd_svhn["status"], sgd_svhn["reason"]) == ("data not available", "no mirror")
    # rows without any file are not held to expected_datasets; the GPICL row is
    table1.make(table1_files, out, expected_datasets=["mnist", "fashion_mnist"])
    with pytest.raises(ValueError, match="transformer.*kmnist"):
        table1.make(table1_files, out, expected_datasets=["kmnist"])


def test_table1_names_curriculum_deviation(tmp_path, table1_files):
    table1_files.append(
        eval_file(tmp_path, "mnist", "kmnist", 0, [0.125] * 10, num_sequences=384, curriculum=True)
    )
    out = tmp_path / "table1"
    table1.make(table1_files, out)
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "exemplar-repetition curriculum (deviation from the paper)" in md
    assert "| GPICL Transformer (ours, curriculum) |" in md


def test_table1_generic_rows_add_paper_baseline_below_ours(tmp_path, table1_files):
    table1_files.append(
        eval_file(
            tmp_path, "mnist", "mnist", 0, [0.1] * 9 + [0.25], num_sequences=384, method="sgd"
        )
    )
    out = tmp_path / "table1"
    table1.make(table1_files, out)
    rows = read_rows(out.with_suffix(".csv"))
    assert [r["method"] for r in rows][::6] == ["sgd", "maml", "vsml", "lstm", "transformer"]
    assert float(rows[0]["paper_accuracy"]) == pytest.approx(0.7031)
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    sgd = md_cells(md, "| SGD (ours) |")
    assert sgd[0].startswith("25.00% [") and sgd[0].endswith("] (n=384, 1 seed)")
    assert sgd[1:] == ["no evaluation file"] * 5
    # sgd has a file now, so expected_datasets holds it to every expected column
    with pytest.raises(ValueError, match="sgd.*fashion_mnist"):
        table1.make(table1_files, out, expected_datasets=["mnist", "fashion_mnist"])


def test_table1_other_methods_follow_the_paper_rows(tmp_path, table1_files):
    table1_files.append(
        eval_file(
            tmp_path, "mnist", "mnist", 0, [0.1] * 9 + [0.25], num_sequences=384, method="mlp"
        )
    )
    out = tmp_path / "table1"
    table1.make(table1_files, out)
    rows = read_rows(out.with_suffix(".csv"))
    assert [r["method"] for r in rows][::6] == ["sgd", "maml", "vsml", "lstm", "transformer", "mlp"]
    assert rows[-6]["paper_accuracy"] == "NA"
    assert "| mlp (paper) | - | - |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_table1_expected_dataset_without_file_is_an_error(tmp_path, table1_files):
    with pytest.raises(ValueError, match="kmnist"):
        table1.make(table1_files, tmp_path / "table1", expected_datasets=["mnist", "kmnist"])
    table1.make(table1_files, tmp_path / "table1", expected_datasets=["mnist", "fashion_mnist"])


PAPER_DATASETS = ["mnist", "fashion_mnist", "kmnist", "random", "cifar10", "svhn"]


def test_table1_unavailable_datasets_say_why_under_the_table(tmp_path, table1_files):
    table1_files.append(eval_file(tmp_path, "mnist", "random", 0, [0.5] * 10, num_sequences=384))
    unavailable = {
        "svhn": "not obtainable with source='auto': download: no canonical mirror could be reached",
        "kmnist": "no internet\n  (offline machine)",  # folded onto one line
        "cifar10": "checksum mismatch",
    }
    out = tmp_path / "table1"
    # the paper tier expects every column: an unavailable one is not an error
    table1.make(table1_files, out, expected_datasets=PAPER_DATASETS, unavailable=unavailable)
    rows = {r["dataset"]: r for r in read_rows(out.with_suffix(".csv"))}
    assert rows["kmnist"]["status"] == "data not available"
    assert rows["kmnist"]["reason"] == "no internet (offline machine)"
    assert rows["svhn"]["reason"] == unavailable["svhn"]
    assert rows["cifar10"]["ours_accuracy"] == "NA" and rows["cifar10"]["count"] == "0"
    assert rows["random"]["status"] == "ok"
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    cells = md_cells(md, "| GPICL Transformer (ours")
    assert [cells[i] for i in (2, 4, 5)] == ["data not available"] * 3
    assert all(cell for cell in cells)  # never blank
    note = md.split("Data not available:\n\n", 1)[1].splitlines()
    assert note == [
        "- KMNIST: no internet (offline machine)",
        "- CIFAR10: checksum mismatch",
        f"- SVHN: {unavailable['svhn']}",
    ]
    # without `unavailable` the paper tier's missing columns are errors, as before
    with pytest.raises(ValueError, match="kmnist.*not marked unavailable"):
        table1.make(table1_files, out, expected_datasets=PAPER_DATASETS)
    with pytest.raises(ValueError, match="svhn"):
        table1.make(
            table1_files,
            out,
            expected_datasets=PAPER_DATASETS,
            unavailable={"kmnist": "x", "cifar10": "y"},
        )


def test_table1_rejects_contradictory_or_unknown_unavailable_entries(tmp_path, table1_files):
    out = tmp_path / "table1"
    with pytest.raises(ValueError, match="fashion_mnist is marked unavailable.*evaluation files"):
        table1.make(table1_files, out, unavailable={"fashion_mnist": "no data"})
    with pytest.raises(ValueError, match="imagenet"):
        table1.make(table1_files, out, unavailable={"imagenet": "no data"})
    with pytest.raises(ValueError, match="needs a reason"):
        table1.make(table1_files, out, unavailable={"kmnist": "  "})
    assert not out.with_suffix(".md").exists()


def test_table1_reads_unavailable_from_availability_records(tmp_path, table1_files):
    records = [
        {"dataset": "kmnist", "available": False, "path": None, "reason": "no offline source"},
        {"dataset": "mnist", "available": True, "path": "x.npz", "reason": None},
    ]
    paths = []
    for record in records:
        paths.append(tmp_path / "status" / f"{record['dataset']}.json")
        write_json(paths[-1], record)
    assert load_unavailable(paths) == {"kmnist": "no offline source"}


def test_table1_rejects_correct_last_that_disagrees_with_accuracy(tmp_path):
    path = eval_file(tmp_path, "mnist", "mnist", 0, [0.1, 0.5], num_sequences=10)
    record = read_json(path)
    for stats in record["task_sets"].values():
        stats["correct_last"] = 7  # 0.5 of 10 sequences is 5
    write_json(path, record)
    with pytest.raises(ValueError, match="correct_last"):
        table1.make([path], tmp_path / "table1")


def test_bootstrap_interval_contains_the_pooled_mean_and_is_deterministic():
    correct, count = [30, 45, 38], [64, 64, 64]
    low, high = bootstrap_interval(counts(correct, count))
    assert low < sum(correct) / sum(count) < high
    assert 0.0 <= low and high <= 1.0
    assert bootstrap_interval(counts(correct, count)) == (low, high)
    # a fresh generator per call: the global numpy state does not matter
    np.random.seed(1)
    np.random.random(5)
    assert bootstrap_interval(counts(correct, count)) == (low, high)
    # a cell takes its seeds in ascending order, whatever the file order
    records = [
        {"seed": s, "tier": "cpu", "task_sets": {"unseen": {"correct_last": k, "num_sequences": n}}}
        for s, k, n in zip((2, 0, 1), correct, count, strict=True)
    ]
    cells = [
        {k: v for k, v in table1.pooled_cell("lstm", "mnist", r).items() if k[0] != "_"}
        for r in (records, records[::-1])
    ]
    assert cells[0] == cells[1]
    assert (cells[0]["ci_low"], cells[0]["ci_high"]) == bootstrap_interval(
        counts([45, 38, 30], [64, 64, 64])
    )


def test_bootstrap_interval_shrinks_as_sequences_grow():
    widths = []
    for n in (50, 500, 5000):
        low, high = bootstrap_interval(counts([n * 3 // 5, n * 3 // 5], [n, n]))
        assert low <= 0.6 <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0


@pytest.mark.parametrize("correct", [0, 100])
def test_bootstrap_interval_is_degenerate_for_one_certain_seed(correct):
    assert bootstrap_interval(counts([correct], [100])) == (correct / 100, correct / 100)


def test_bootstrap_interval_widens_when_seeds_disagree():
    agree = bootstrap_interval(counts([60, 60, 60, 60], [100] * 4))
    disagree = bootstrap_interval(counts([30, 90, 40, 80], [100] * 4))
    assert disagree[1] - disagree[0] > 2 * (agree[1] - agree[0])
    assert disagree[0] < 0.6 < disagree[1]


def test_bootstrap_interval_rejects_bad_counts():
    with pytest.raises(ValueError):
        bootstrap_interval(np.zeros((0, 1, 1)))
    with pytest.raises(ValueError):
        sequence_outcomes(5, 4)
    with pytest.raises(ValueError):
        sequence_outcomes(2, 4, ["0110", "1"])  # tasks of different lengths


def test_table1_names_the_tier_per_row_when_rows_differ(tmp_path, table1_files):
    table1_files.append(
        eval_file(
            tmp_path, "mnist", "mnist", 0, [0.1] * 9 + [0.5], num_sequences=384, method="lstm"
        )
    )
    table1_files.append(
        eval_file(
            tmp_path, "mnist", "random", 0, [0.5] * 10, num_sequences=384, method="sgd", tier="ci"
        )
    )
    table1_files.append(
        eval_file(
            tmp_path,
            "mnist",
            "mnist",
            0,
            [0.25] * 10,
            num_sequences=384,
            method="sgd",
            tier="paper",
        )
    )
    out = tmp_path / "table1"
    table1.make(table1_files, out)
    rows = read_rows(out.with_suffix(".csv"))
    tiers = {(r["method"], r["dataset"]): r["tier"] for r in rows if r["status"] == "ok"}
    assert tiers == {
        ("sgd", "mnist"): "paper",
        ("sgd", "random"): "ci",
        ("lstm", "mnist"): "cpu",
        ("transformer", "mnist"): "cpu",
        ("transformer", "fashion_mnist"): "cpu",
    }
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "Tiers: ci, cpu, paper;" in md
    assert "| LSTM (ours, tier cpu) |" in md
    assert "| GPICL Transformer (ours, tier cpu) |" in md
    sgd = md_cells(md, "| SGD (ours) |")  # two tiers in one row: named per cell
    assert sgd[0].endswith("(n=384, 1 seed, tier paper)")
    assert sgd[3].endswith("(n=384, 1 seed, tier ci)")


def test_table1_rejects_seeds_of_different_tiers_in_one_cell(tmp_path, table1_files):
    table1_files.append(
        eval_file(tmp_path, "mnist", "mnist", 7, [0.1] * 9 + [0.5], num_sequences=384, tier="ci")
    )
    with pytest.raises(ValueError, match="transformer on mnist pools seeds of tiers"):
        table1.make(table1_files, tmp_path / "table1")


def test_save_figure_leaves_out_dates_and_versions(tmp_path):
    fig = new_figure()
    fig.subplots().plot([0, 1], [0, 1])
    png, svg = save_figure(fig, tmp_path / "plain")
    assert (png.name, svg.name) == ("plain.png", "plain.svg")
    assert b"Software" not in png.read_bytes()
    text = svg.read_text(encoding="utf-8")
    assert "<dc:date>" not in text and "Matplotlib v" not in text
    assert not list(tmp_path.glob("*.tmp"))


def test_write_csv_fixed_float_format(tmp_path):
    path = write_csv([{"a": 1, "b": 1 / 3}, {"a": 2, "b": None}], tmp_path / "x.csv")
    assert path.read_bytes() == b"a,b\n1,0.333333\n2,NA\n"


RUN_BOTH = """
import sys
from pathlib import Path
from gpicl.figures import FIGURES
out, files = Path(sys.argv[1]), sys.argv[2:]
FIGURES["fig3"](files, out / "fig3")
FIGURES["table1"](files, out / "table1")
"""


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_outputs_are_byte_identical_across_processes(tmp_path, fig3_files):
    """Two fresh interpreters with different hash seeds and reversed file order: same bytes."""
    files = [str(p) for p in fig3_files]
    results = []
    for hash_seed, order in (("1", files), ("2", files[::-1])):
        out = tmp_path / f"out{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "MPLBACKEND": "agg"}
        subprocess.run([sys.executable, "-c", RUN_BOTH, str(out), *order], check=True, env=env)
        results.append(outputs(out))
    assert set(results[0]) == {
        "fig3.png",
        "fig3.svg",
        "fig3.csv",
        "table1.md",
        "table1.csv",
        "table1_pairs.csv",
    }
    for name in results[0]:
        assert results[0][name] == results[1][name], name


def test_same_process_twice_gives_same_bytes(tmp_path, fig3_files):
    for name in ("a", "b"):
        fig3_learning_curves.make(fig3_files, tmp_path / name / "fig3")
        table1.make(fig3_files, tmp_path / name / "table1")
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_fig3_without_files_still_draws_empty_panels(tmp_path):
    out = tmp_path / "fig3"
    fig3_learning_curves.make([], out)
    assert out.with_suffix(".csv").read_text(encoding="utf-8") == (
        ",".join(fig3_learning_curves.CSV_COLUMNS) + "\n"
    )
    assert "no evaluation files" in out.with_suffix(".svg").read_text(encoding="utf-8")


def test_table1_has_not_meta_learned_rows_and_paired_differences(tmp_path, table1_files):
    outcomes = ["1" * 30 + "0" * 2] * 8 + ["1" * 16 + "0" * 16] * 4  # 12 tasks x 32
    correct = sum(s.count("1") for s in outcomes)
    stats = {
        "num_tasks": 12,
        "num_sequences": 384,
        "accuracy": [0.1] * 9 + [correct / 384],
        "loss": None,
        "correct_last": correct,
        "last_outcomes": outcomes,
    }
    base = {"train_dataset": None, "dataset": "mnist", "seed": 0, "tier": "cpu"}
    base |= {"curriculum": False, "sequence_length": 10, "split": "test"}
    records = [
        {**base, "run": f"baselines/{m}", "method": m, "task_sets": {"unseen": stats}}
        for m in ("nearest_neighbour", "ridge")
    ]
    path = tmp_path / "baselines" / "mnist.json"
    write_json(path, {"kind": "baselines", "dataset": "mnist", "records": records})
    out = tmp_path / "table1"
    table1.make(table1_files, out, baseline_files=[path])
    rows = read_rows(out.with_suffix(".csv"))
    nn = next(r for r in rows if r["method"] == "nearest_neighbour" and r["dataset"] == "mnist")
    assert nn["group"] == "not meta-learned" and nn["count"] == "384"
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert md_cells(md, "| 1-nearest neighbour (not meta-learned) |")[0].startswith(
        f"{100 * correct / 384:.2f}% ["
    )
    assert "| 1-nearest neighbour (paper)" not in md
    pairs = read_rows(tmp_path / "table1_pairs.csv")
    # identical rows: not resolved; the Transformer files lack per-sequence outcomes: no pair
    assert [(p["method_a"], p["method_b"], p["resolved"]) for p in pairs] == [
        ("nearest_neighbour", "ridge", "False")
    ]
    assert float(pairs[0]["ci_low"]) == float(pairs[0]["ci_high"]) == 0.0
