"""Figures 2 and 4 and their metrics, from hand-built evaluation files and synthetic curves."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpicl.figures import FIGURES, fig2_heatmaps, fig4_transitions
from gpicl.io import read_json, write_json
from gpicl.metrics import (
    CHANCE_LOSS,
    GENERAL_LEARNING,
    INSTANCE_MEMORISATION,
    TASK_IDENTIFICATION,
    TRANSITION,
    classify_regimes,
    plateau_length,
    within_sequence_gain,
)
from gpicl.plotting import UNLIMITED_LOG2

CURRICULUM_TEXT = "exemplar-repetition curriculum (deviation"


def sweep_file(
    root: Path,
    *,
    method: str = "transformer",
    size: int = 64,
    k: int = 4,
    seed: int = 0,
    train: str = "mnist",
    test: str = "mnist",
    seen: list[float],
    unseen: list[float],
    identity: list[float] | None = None,
    curriculum: bool = False,
    tier: str = "cpu",
    num_tasks: int | None = None,
) -> Path:
    """One file in the evaluation contract, with its own accuracy curve per task set."""
    task_sets = {}
    for name, acc in (("seen", seen), ("unseen", unseen), ("identity", identity or unseen)):
        task_sets[name] = {
            "num_tasks": 8,
            "num_sequences": 100,
            "accuracy": acc,
            "loss": [2.3] * len(acc),
            "correct_last": round(acc[-1] * 100),
        }
    run = f"transitions/{train}-{method}{size}-t{k}-s{seed}"
    record = {
        "run": run,
        "experiment": "transitions",
        "train_dataset": train,
        "dataset": test,
        "seed": seed,
        "tier": tier,
        "method": method,
        "model_size": size,
        "num_tasks": 2**k if num_tasks is None else num_tasks,
        "curriculum": curriculum,
        "sequence_length": len(seen),
        "num_params": 1000,
        "task_sets": task_sets,
    }
    path = root / "eval" / run / f"{test}.json"
    write_json(path, record)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def curve(first: float, middle: float, last: float) -> list[float]:
    """Four positions: first, two middle ones (a trap for position-1 or mean metrics), last."""
    return [first, middle, middle, last]


# ----------------------------------------------------------------------------------- metrics


def test_within_sequence_gain_is_last_minus_first_position():
    assert within_sequence_gain([0.1, 0.6, 0.2, 0.5]) == pytest.approx(0.4)
    assert within_sequence_gain([0.9, 0.1]) == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="at least 2"):
        within_sequence_gain([0.5])


def test_classify_regimes_finds_three_regimes_in_order():
    points = [  # (log2 tasks, seen gain, unseen gain), given out of order
        (14, 0.60, 0.58),
        (0, 0.01, 0.00),
        (9, 0.45, 0.01),
        (4, 0.03, -0.02),
        (12, 0.50, 0.03),
        (16, 0.62, 0.61),
    ]
    assert classify_regimes(points) == [
        (0, INSTANCE_MEMORISATION),
        (4, INSTANCE_MEMORISATION),
        (9, TASK_IDENTIFICATION),
        (12, TASK_IDENTIFICATION),
        (14, GENERAL_LEARNING),
        (16, GENERAL_LEARNING),
    ]


def test_classify_regimes_thresholds_are_arguments():
    # unseen tasks learned, but far below seen ones: neither identification nor general learning
    assert classify_regimes([(13, 0.60, 0.30)]) == [(13, TRANSITION)]
    assert classify_regimes([(13, 0.60, 0.30)], gap_threshold=0.4) == [(13, GENERAL_LEARNING)]
    assert classify_regimes([(7, 0.08, 0.0)]) == [(7, TRANSITION)]  # seen - unseen below gap
    assert classify_regimes([(7, 0.08, 0.0)], gain_threshold=0.1) == [(7, INSTANCE_MEMORISATION)]
    assert classify_regimes([(7, 0.30, 0.0)], gain_threshold=0.1) == [(7, TASK_IDENTIFICATION)]
    with pytest.raises(ValueError, match="repeated"):
        classify_regimes([(7, 0.0, 0.0), (7, 0.5, 0.5)])


def plateau_curve(
    drop_step: int | None, steps: int = 600, transient: bool = True, seed: int = 0
) -> list[float]:
    """Loss per step (step s at index s-1): a transient from 2.6 down to ln 10 over the first 30
    steps, the plateau at ln 10 with small noise, then from `drop_step` on a sharp fall to 1.0."""
    rng = np.random.default_rng(seed)
    s = np.arange(1, steps + 1)
    loss = CHANCE_LOSS + 0.005 * rng.standard_normal(steps)
    if transient:
        loss += (2.6 - CHANCE_LOSS) * np.clip(1 - (s - 1) / 30, 0, 1)
    if drop_step is not None:
        loss[s >= drop_step] = 1.0
    return loss.tolist()


def test_plateau_length_finds_the_drop_within_the_window_lag():
    found = plateau_length(plateau_curve(300))
    assert found is not None and 300 <= found < 300 + 25
    # a gradual fall (ln 10 -> 1.0 over 200 steps) is found later, still within one window
    losses = np.array(plateau_curve(None))
    s = np.arange(1, len(losses) + 1)
    losses -= np.clip((s - 300) / 200, 0, 1) * (CHANCE_LOSS - 1.0)
    found = plateau_length(losses.tolist())
    assert found is not None and 300 <= found < 300 + 25


def test_plateau_length_none_when_the_loss_stays_on_the_plateau():
    assert plateau_length(plateau_curve(None)) is None
    assert plateau_length(plateau_curve(300)[:24]) is None  # shorter than one window


def test_plateau_length_ignores_the_initial_transient_from_2_6():
    losses = plateau_curve(None)
    assert losses[0] > 2.55 and abs(np.mean(losses[40:]) - CHANCE_LOSS) < 0.01
    assert plateau_length(losses) is None
    # the literal "below the starting value" would end the plateau during the transient
    literal = plateau_length(losses, reference="start")
    assert literal is not None and literal < 60


def test_plateau_length_reports_step_numbers_and_checks_arguments():
    losses = plateau_curve(300)
    assert plateau_length(losses, steps=[10 * (i + 1) for i in range(len(losses))]) == 3000
    assert plateau_length(losses, window=1) == 300
    with pytest.raises(ValueError, match="steps"):
        plateau_length(losses, steps=[1, 2, 3])
    with pytest.raises(ValueError, match="reference"):
        plateau_length(losses, reference="end")


# ------------------------------------------------------------------------------------ fig 4


@pytest.fixture
def fig4_files(tmp_path: Path) -> list[Path]:
    """Two seeds at 2^4 tasks, width 64; distinct gains per task set and dataset, plus files the
    figure must ignore."""
    root = tmp_path / "fig4_inputs"
    files = []
    for seed, shift in ((0, 0.0), (1, 0.1)):
        # MNIST: seen gain 0.4 + shift, unseen 0.2 + shift, identity 0.8 (must not be used)
        files.append(
            sweep_file(
                root,
                seed=seed,
                seen=curve(0.1, 0.9, 0.5 + shift),
                unseen=curve(0.1, 0.0, 0.3 + shift),
                identity=curve(0.1, 0.5, 0.9),
            )
        )
        # Fashion-MNIST: seen gain 0.7 (not a curve), unseen 0.05 + shift
        files.append(
            sweep_file(
                root,
                seed=seed,
                test="fashion_mnist",
                seen=curve(0.2, 0.2, 0.9),
                unseen=curve(0.2, 0.8, 0.25 + shift),
                identity=curve(0.0, 0.0, 1.0),
            )
        )
    ignored = dict(seen=curve(0.0, 0.0, 1.0), unseen=curve(0.0, 0.0, 1.0))
    files += [
        sweep_file(root, test="kmnist", **ignored),
        sweep_file(root, train="fashion_mnist", test="fashion_mnist", **ignored),
        sweep_file(root, method="mlp", **ignored),
    ]
    return files


def mean_gains(rows: list[dict[str, str]]) -> dict[str, float]:
    return {r["curve"]: float(r["gain"]) for r in rows if r["statistic"] == "mean"}


def test_fig4_gains_use_last_and_first_positions_of_the_right_task_sets(tmp_path, fig4_files):
    out = tmp_path / "figures" / "fig4"
    fig4_transitions.make(fig4_files, out)
    assert {p.name for p in out.parent.iterdir()} == {"fig4.png", "fig4.svg", "fig4.csv"}
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(fig4_transitions.CSV_COLUMNS)
    assert mean_gains(rows) == pytest.approx(
        {"seen_mnist": 0.45, "unseen_mnist": 0.25, "unseen_fashion_mnist": 0.10}
    )
    seeds = {(r["curve"], r["seed"]): float(r["gain"]) for r in rows if r["statistic"] == "seed"}
    assert seeds == pytest.approx(
        {
            ("seen_mnist", "0"): 0.4,
            ("seen_mnist", "1"): 0.5,
            ("unseen_mnist", "0"): 0.2,
            ("unseen_mnist", "1"): 0.3,
            ("unseen_fashion_mnist", "0"): 0.05,
            ("unseen_fashion_mnist", "1"): 0.15,
        }
    )
    assert [(r["curve"], r["statistic"], r["seed"]) for r in rows[:3]] == [
        ("seen_mnist", "mean", "NA"),
        ("seen_mnist", "seed", "0"),
        ("seen_mnist", "seed", "1"),
    ]
    assert {(r["log2_tasks"], r["num_tasks"]) for r in rows} == {("4", "16")}
    assert {r["n_seeds"] for r in rows if r["statistic"] == "mean"} == {"2"}
    # regime of the means (0.45 vs 0.25: unseen learned, but 0.2 below seen) and of each seed
    assert {r["regime"] for r in rows if r["statistic"] == "mean"} == {TRANSITION}
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert "tier: cpu" in svg and "width 64" in svg and "largest" not in svg
    assert CURRICULUM_TEXT not in svg


def test_fig4_regimes_come_from_the_data(tmp_path):
    root = tmp_path / "in"
    gains = {0: (0.0, 0.0, 0.0), 4: (0.02, 0.01, 0.0), 8: (0.45, 0.0, 0.0), 14: (0.6, 0.6, 0.4)}
    files = []
    for k, (seen, unseen, fashion) in gains.items():
        files.append(sweep_file(root, k=k, seen=[0.1, 0.1 + seen], unseen=[0.1, 0.1 + unseen]))
        files.append(
            sweep_file(
                root, k=k, test="fashion_mnist", seen=[0.1, 0.1], unseen=[0.1, 0.1 + fashion]
            )
        )
    out = tmp_path / "fig4"
    fig4_transitions.make(files, out)
    rows = read_rows(out.with_suffix(".csv"))
    regimes = {r["log2_tasks"]: r["regime"] for r in rows if r["statistic"] == "mean"}
    assert regimes == {
        "0": INSTANCE_MEMORISATION,
        "4": INSTANCE_MEMORISATION,
        "8": TASK_IDENTIFICATION,
        "14": GENERAL_LEARNING,
    }
    # moving the threshold moves the regimes: nothing is hard-coded per task count
    fig4_transitions.make(files, out, gain_threshold=0.5)
    rows = read_rows(out.with_suffix(".csv"))
    regimes = {r["log2_tasks"]: r["regime"] for r in rows if r["statistic"] == "mean"}
    assert regimes["8"] == INSTANCE_MEMORISATION and regimes["14"] == GENERAL_LEARNING
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert "threshold 0.5" in svg


def test_fig4_regime_spans_merge_neighbours_and_split_halfway():
    spans = fig4_transitions.regime_spans([(0, "a"), (2, "a"), (4, "b"), (8, "c"), (10, "c")])
    assert spans == [(-0.5, 3.0, "a"), (3.0, 6.0, "b"), (6.0, 10.5, "c")]


def test_fig4_uses_the_largest_width_unless_told(tmp_path):
    root = tmp_path / "in"
    files = [
        sweep_file(root, size=16, seen=[0.1, 0.2], unseen=[0.1, 0.2]),
        sweep_file(root, size=256, seen=[0.1, 0.7], unseen=[0.1, 0.6]),
    ]
    out = tmp_path / "fig4"
    fig4_transitions.make(files, out)
    assert mean_gains(read_rows(out.with_suffix(".csv"))) == pytest.approx(
        {"seen_mnist": 0.6, "unseen_mnist": 0.5}
    )
    assert "width 256, largest of 16, 256" in out.with_suffix(".svg").read_text(encoding="utf-8")
    fig4_transitions.make(files, out, model_size=16)
    assert mean_gains(read_rows(out.with_suffix(".csv"))) == pytest.approx(
        {"seen_mnist": 0.1, "unseen_mnist": 0.1}
    )
    with pytest.raises(ValueError, match="model_size 32"):
        fig4_transitions.make(files, out, model_size=32)


def test_fig4_names_curriculum_and_rejects_duplicates(tmp_path, fig4_files):
    out = tmp_path / "fig4"
    with pytest.raises(ValueError, match="both give"):
        fig4_transitions.make([*fig4_files, fig4_files[0]], out)
    fig4_files.append(
        sweep_file(tmp_path, seed=7, seen=[0.1] * 4, unseen=[0.1] * 4, curriculum=True)
    )
    fig4_transitions.make(fig4_files, out)
    assert CURRICULUM_TEXT in out.with_suffix(".svg").read_text(encoding="utf-8")


def test_fig4_without_files_writes_header_only(tmp_path):
    out = tmp_path / "fig4"
    fig4_transitions.make([], out)
    text = out.with_suffix(".csv").read_text(encoding="utf-8")
    assert text == ",".join(fig4_transitions.CSV_COLUMNS) + "\n"
    assert "no evaluation files" in out.with_suffix(".svg").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ fig 2


@pytest.fixture
def fig2_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "fig2_inputs"
    files = []
    # transformer width 64 at 2^4 tasks, two seeds: seen last 0.5/0.7, unseen last 0.2/0.4
    for seed, (s, u) in enumerate(((0.5, 0.2), (0.7, 0.4))):
        files.append(sweep_file(root, seed=seed, seen=curve(0.9, 0.9, s), unseen=curve(0.9, 0, u)))
    # transformer width 64 at 2^8 tasks, one seed; width 16 only at 2^8
    files.append(sweep_file(root, k=8, seen=curve(0.1, 0.1, 0.6), unseen=curve(0.1, 0.1, 0.55)))
    files.append(
        sweep_file(root, size=16, k=8, seen=curve(0.1, 0.1, 0.3), unseen=curve(0.1, 0.1, 0.25))
    )
    # MLP hidden size 32 at 2^4 tasks: seen last 0.8 (unseen is not drawn)
    files.append(
        sweep_file(root, method="mlp", size=32, seen=curve(0.1, 0.1, 0.8), unseen=[0.0] * 4)
    )
    # meta-test on another dataset: must not enter any cell
    files.append(
        sweep_file(root, test="fashion_mnist", seen=curve(0, 0, 0.01), unseen=curve(0, 0, 0.01))
    )
    files.append(sweep_file(root, method="lstm", seen=[0.0] * 4, unseen=[0.0] * 4))  # ignored
    return files


def cell(rows, panel, size, k):
    [row] = [
        r
        for r in rows
        if (r["panel"], r["model_size"], r["log2_tasks"]) == (panel, str(size), str(k))
    ]
    return row


def test_fig2_cells_average_last_accuracy_over_seeds(tmp_path, fig2_files):
    out = tmp_path / "figures" / "fig2"
    fig2_heatmaps.make(fig2_files, out)
    assert {p.name for p in out.parent.iterdir()} == {"fig2.png", "fig2.svg", "fig2.csv"}
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(fig2_heatmaps.CSV_COLUMNS)
    b = cell(rows, "b", 64, 4)
    assert (b["method"], b["task_set"], b["num_tasks"], b["n_seeds"]) == (
        "transformer",
        "seen",
        "16",
        "2",
    )
    assert [float(b[c]) for c in ("accuracy_mean", "accuracy_min", "accuracy_max")] == (
        pytest.approx([0.6, 0.5, 0.7])
    )
    c = cell(rows, "c", 64, 4)
    assert c["task_set"] == "unseen" and float(c["accuracy_mean"]) == pytest.approx(0.3)
    assert float(cell(rows, "c", 64, 8)["accuracy_mean"]) == pytest.approx(0.55)
    assert float(cell(rows, "b", 16, 8)["accuracy_mean"]) == pytest.approx(0.3)
    a = cell(rows, "a", 32, 4)
    assert (a["method"], a["task_set"], a["accuracy_mean"]) == ("mlp", "seen", "0.800000")
    # grid cells without files: NA, 0 seeds, and "no run" in the drawing
    missing = cell(rows, "b", 16, 4)
    assert (missing["accuracy_mean"], missing["n_seeds"]) == ("NA", "0")
    assert cell(rows, "a", 32, 8)["n_seeds"] == "0"
    # a panel per (method, task set), each with its sizes x the task counts found anywhere
    assert [(r["panel"], r["model_size"], r["log2_tasks"]) for r in rows] == [
        ("a", "32", "4"),
        ("a", "32", "8"),
        ("b", "16", "4"),
        ("b", "16", "8"),
        ("b", "64", "4"),
        ("b", "64", "8"),
        ("c", "16", "4"),
        ("c", "16", "8"),
        ("c", "64", "4"),
        ("c", "64", "8"),
    ]
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert "no run" in svg and "chance 0.1" in svg and "0.60" in svg
    assert "tier: cpu" in svg and "tested on MNIST" in svg
    assert CURRICULUM_TEXT not in svg


def test_fig2_uses_only_files_tested_on_the_training_dataset(tmp_path, fig2_files):
    out = tmp_path / "fig2"
    fig2_heatmaps.make(fig2_files, out)
    rows = read_rows(out.with_suffix(".csv"))
    # the Fashion-MNIST file (last accuracy 0.01, seed 0, width 64, 2^4 tasks) would be a third
    # file in that cell (or a duplicate seed) and the lowest value anywhere; the lowest is 0.2
    assert cell(rows, "b", 64, 4)["n_seeds"] == "2"
    assert min(float(r["accuracy_min"]) for r in rows if r["accuracy_min"] != "NA") == 0.2
    # two meta-training datasets in one heat map are an error, not an average
    fig2_files.append(
        sweep_file(
            tmp_path, train="fashion_mnist", test="fashion_mnist", seen=[0.1] * 4, unseen=[0.1] * 4
        )
    )
    with pytest.raises(ValueError, match="train_dataset"):
        fig2_heatmaps.make(fig2_files, out)


def test_fig2_names_curriculum_and_unlimited_tasks(tmp_path, fig2_files):
    fig2_files.append(
        sweep_file(
            tmp_path,
            seed=3,
            seen=[0.1] * 4,
            unseen=[0.1] * 4,
            curriculum=True,
            num_tasks=2**UNLIMITED_LOG2,
        )
    )
    out = tmp_path / "fig2"
    fig2_heatmaps.make(fig2_files, out)
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert CURRICULUM_TEXT in svg and "(unlimited)" in svg
    assert "62" in {r["log2_tasks"] for r in read_rows(out.with_suffix(".csv"))}


def test_unlimited_task_pool_matches_training():
    from gpicl.augment import UNLIMITED_TASKS

    assert 2**UNLIMITED_LOG2 == UNLIMITED_TASKS


def test_sweep_files_need_model_size_and_power_of_two_tasks(tmp_path):
    path = sweep_file(tmp_path, seen=[0.1] * 4, unseen=[0.1] * 4, num_tasks=12)
    with pytest.raises(ValueError, match="not a power of two"):
        fig2_heatmaps.make([path], tmp_path / "fig2")
    record = read_json(path)
    record["width"] = record.pop("model_size")
    write_json(path, record)
    with pytest.raises(ValueError, match=r"lacks keys \['model_size'\]"):
        fig4_transitions.make([path], tmp_path / "fig4")


def test_fig2_without_files_writes_header_only(tmp_path):
    out = tmp_path / "fig2"
    fig2_heatmaps.make([], out)
    text = out.with_suffix(".csv").read_text(encoding="utf-8")
    assert text == ",".join(fig2_heatmaps.CSV_COLUMNS) + "\n"
    assert "no MLP runs" in out.with_suffix(".svg").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- determinism


def test_registry_has_fig2_and_fig4():
    assert FIGURES["fig2"] is fig2_heatmaps.make
    assert FIGURES["fig4"] is fig4_transitions.make


RUN_BOTH = """
import sys
from pathlib import Path
from gpicl.figures import FIGURES
out, args = Path(sys.argv[1]), sys.argv[2:]
split = args.index("--")
FIGURES["fig2"](args[:split], out / "fig2")
FIGURES["fig4"](args[split + 1 :], out / "fig4")
"""


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_outputs_are_byte_identical_on_a_rerun(tmp_path, fig2_files, fig4_files):
    """Here, then in a fresh interpreter with another hash seed and the files reversed."""
    fig2_args, fig4_args = [str(p) for p in fig2_files], [str(p) for p in fig4_files]
    here = tmp_path / "here"
    fig2_heatmaps.make(fig2_args, here / "fig2")
    fig4_transitions.make(fig4_args, here / "fig4")
    there = tmp_path / "there"
    env = {**os.environ, "PYTHONHASHSEED": "7", "MPLBACKEND": "agg"}
    argv = [str(there), *fig2_args[::-1], "--", *fig4_args[::-1]]
    subprocess.run([sys.executable, "-c", RUN_BOTH, *argv], check=True, env=env)
    first, second = outputs(here), outputs(there)
    assert set(first) == {f"fig{n}.{ext}" for n in (2, 4) for ext in ("png", "svg", "csv")}
    for name in first:
        assert first[name] == second[name], name
