"""Meta-optimisation phase diagram: number of tasks x batch size -> memorise / generalise / stuck.

Each finished run is classified at the end of meta-training from three numbers (`classify_phase`;
`s`, `u`, `m`, `w` = seen_threshold, unseen_threshold, margin, window, passed from params.yaml):

1. "stuck": the smoothed final training loss (mean of the last `w` losses of the run's log.csv,
   all of them if the log is shorter) is still above ln(10) - m, i.e. on the plateau;
2. "generalising": else, if the unseen-task accuracy of the last prediction is >= u;
3. "memorising": else, if the seen-task accuracy of the last prediction is >= s;
4. "unclassified": none of these (see `classify_phase`).

Accuracies come from the evaluation files (one per run, all on one meta-test dataset), the loss
from the run's `log.csv` beside its `done.json`; the two are matched by run name. A cell is
(num_tasks, batch size = tasks_per_step x seqs_per_task); it is coloured by the majority class of
its seeds (a tie goes to the class that comes first in the order above) and says e.g. "gen 2/2",
with the unseen- and seen-task last-position accuracy, mean over the cell's seeds. Rows are the
task counts found; columns every power of two between the smallest and largest batch size (the
sizes found if any is not a power of two). Grid cells without a run are blank.

CSV `<prefix>.csv`, one row per run, sorted by num_tasks, batch_size, seed, run: run, seed,
num_tasks, log2_tasks, batch_size, final_loss_smoothed, seen_accuracy_last, unseen_accuracy_last,
class; then the cell's verdict: cell_class, cell_votes (seeds of the cell in cell_class),
cell_runs; then the settings used, repeated on every row so the file stands alone:
seen_threshold, unseen_threshold, window, margin, stuck_loss (= ln(10) - margin). Also writes
`<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.patches import Patch

from gpicl.figures.fig2_heatmaps import log2_tasks, tasks_label
from gpicl.io import read_json
from gpicl.metrics import CHANCE_LOSS
from gpicl.plotting import (
    CURRICULUM_NOTE,
    DATASET_LABELS,
    figure_style,
    new_figure,
    read_eval_results,
    save_figure,
    single_value,
    write_csv,
)

STUCK = "stuck"
GENERALISING = "generalising"
MEMORISING = "memorising"
UNCLASSIFIED = "unclassified"
# Classification order; also the tie-break order of a cell's majority vote.
CLASSES = (STUCK, GENERALISING, MEMORISING, UNCLASSIFIED)
SHORT = {STUCK: "stuck", GENERALISING: "gen", MEMORISING: "mem", UNCLASSIFIED: "uncl"}
# Fixed colour-blind-safe colours (seaborn "colorblind" / the repo's cycle), one per class, and a
# text colour that reads on each.
COLORS = {STUCK: "#0173b2", GENERALISING: "#029e73", MEMORISING: "#de8f05", UNCLASSIFIED: "#949494"}
TEXT_COLORS = {STUCK: "white", GENERALISING: "white", MEMORISING: "black", UNCLASSIFIED: "black"}

RUN_KEYS = ("name", "finished", "seed", "num_tasks", "train")
TRAIN_KEYS = ("tasks_per_step", "seqs_per_task")
CSV_COLUMNS = (
    "run",
    "seed",
    "num_tasks",
    "log2_tasks",
    "batch_size",
    "final_loss_smoothed",
    "seen_accuracy_last",
    "unseen_accuracy_last",
    "class",
    "cell_class",
    "cell_votes",
    "cell_runs",
    "seen_threshold",
    "unseen_threshold",
    "window",
    "margin",
    "stuck_loss",
)


def classify_phase(
    final_loss_smoothed: float,
    seen_acc: float,
    unseen_acc: float,
    seen_threshold: float = 0.3,
    unseen_threshold: float = 0.2,
    margin: float = 0.05,
) -> str:
    """Where one run ended up: "stuck", "generalising", "memorising" or "unclassified".

    In this order: stuck if final_loss_smoothed > ln(10) - margin (meta-training never left the
    plateau, so the accuracies say nothing about what it would learn); generalising if
    unseen_acc >= unseen_threshold (it learns tasks it never saw); memorising if
    seen_acc >= seen_threshold (it only knows its training tasks). "unclassified": the loss left
    the plateau but neither accuracy reached its threshold, e.g. a run caught mid-transition or
    one that fits its training batches without solving seen tasks at the last position; the
    figure shows such runs rather than forcing them into a class.
    """
    values = (final_loss_smoothed, seen_acc, unseen_acc)
    if not all(math.isfinite(float(v)) for v in values):
        raise ValueError(f"classify_phase: non-finite input {values}")
    if final_loss_smoothed > CHANCE_LOSS - margin:
        return STUCK
    if unseen_acc >= unseen_threshold:
        return GENERALISING
    if seen_acc >= seen_threshold:
        return MEMORISING
    return UNCLASSIFIED


def majority(classes: Sequence[str]) -> tuple[str, int]:
    """The most frequent class and its count; a tie goes to the class first in `CLASSES`, so the
    cell's verdict does not depend on file order (the count, e.g. "1/2", shows the split)."""
    if not classes:
        raise ValueError("majority of no classes")
    counts = Counter(classes)
    best = max(counts.values())
    winner = next(c for c in CLASSES if counts.get(c, 0) == best)
    return winner, best


def smoothed_final_loss(losses: Sequence[float], window: int) -> float:
    """Mean of the last `window` losses (all of them if fewer): the loss where training ended,
    without the step-to-step noise of the last batch."""
    if not losses:
        raise ValueError("no losses")
    return float(np.mean(np.asarray(losses[-window:], dtype=np.float64)))


def read_log_losses(path: Path, name: str) -> tuple[list[int], list[float]]:
    """Steps and losses of one run's log.csv; a missing or empty log is an error naming the run."""
    if not path.is_file():
        raise FileNotFoundError(f"run {name}: no training log {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"step", "loss"} <= set(reader.fieldnames):
            raise ValueError(f"run {name}: {path} lacks step/loss columns")
        rows = [(int(r["step"]), float(r["loss"])) for r in reader]
    if not rows:
        raise ValueError(f"run {name}: {path} has no rows")
    return [s for s, _ in rows], [v for _, v in rows]


def read_runs(run_files: Iterable[str | os.PathLike]) -> dict[str, dict[str, Any]]:
    """done.json of each run, checked, by run name, with its log.csv losses attached."""
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(map(Path, run_files)):
        if not path.is_file():
            raise FileNotFoundError(f"no done.json {path}")
        record = read_json(path)
        missing = [k for k in RUN_KEYS if k not in record]
        missing += [f"train.{k}" for k in TRAIN_KEYS if k not in record.get("train", {})]
        label = record.get("name", path)
        if missing:
            raise ValueError(f"run {label}: {path} lacks keys {missing}")
        name = record["name"]
        if not record["finished"]:
            raise ValueError(f"run {name}: {path} says the run is not finished")
        if name in runs:
            raise ValueError(f"run {name}: two done.json files, {runs[name]['path']} and {path}")
        steps, losses = read_log_losses(path.with_name("log.csv"), name)
        expected = record["train"].get("steps")
        if expected is not None and steps[-1] != int(expected):
            raise ValueError(
                f"run {name}: log.csv ends at step {steps[-1]}, the run has {expected} steps"
            )
        runs[name] = {"path": path, "record": record, "losses": losses}
    return runs


def run_rows(
    eval_files: Iterable[str | os.PathLike],
    run_files: Iterable[str | os.PathLike],
    seen_threshold: float,
    unseen_threshold: float,
    window: int,
    margin: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One classified row per run (the CSV rows, without the cell columns), and what the figure
    title needs (tier, datasets, curriculum)."""
    paths = list(eval_files)
    read_eval_results(paths, "seen")
    results = read_eval_results(paths, "unseen")
    dataset = single_value(results, "dataset", "metaopt_phase")
    train_dataset = single_value(results, "train_dataset", "metaopt_phase")
    tier = single_value(results, "tier", "metaopt_phase")
    evals: dict[str, tuple[Path, dict]] = {}
    for path, record in results:
        name = record["run"]
        if name in evals:
            raise ValueError(f"run {name}: two evaluation files, {evals[name][0]} and {path}")
        if "num_tasks" not in record:
            raise ValueError(f"run {name}: {path} lacks key num_tasks")
        evals[name] = (path, record)
    runs = read_runs(run_files)
    no_run = sorted(set(evals) - set(runs))
    if no_run:
        raise ValueError(f"runs {no_run}: evaluation file but no done.json among run_files")
    no_eval = sorted(set(runs) - set(evals))
    if no_eval:
        raise ValueError(
            f"runs {no_eval}: done.json but no {dataset or 'evaluation'} file among eval_files"
        )
    rows = []
    for name in sorted(runs):
        run, (path, ev) = runs[name], evals[name]
        done = run["record"]
        for key in ("num_tasks", "seed"):
            if int(done[key]) != int(ev[key]):
                raise ValueError(
                    f"run {name}: {key} {done[key]} in {run['path']} but {ev[key]} in {path}"
                )
        train = done["train"]
        loss = smoothed_final_loss(run["losses"], window)
        seen = float(ev["task_sets"]["seen"]["accuracy"][-1])
        unseen = float(ev["task_sets"]["unseen"]["accuracy"][-1])
        rows.append(
            {
                "run": name,
                "seed": int(done["seed"]),
                "num_tasks": int(done["num_tasks"]),
                "log2_tasks": log2_tasks(done["num_tasks"], path),
                "batch_size": int(train["tasks_per_step"]) * int(train["seqs_per_task"]),
                "final_loss_smoothed": loss,
                "seen_accuracy_last": seen,
                "unseen_accuracy_last": unseen,
                "class": classify_phase(
                    loss, seen, unseen, seen_threshold, unseen_threshold, margin
                ),
                "curriculum": bool(ev["curriculum"]),
            }
        )
    rows.sort(key=lambda r: (r["num_tasks"], r["batch_size"], r["seed"], r["run"]))
    context = {"dataset": dataset, "train_dataset": train_dataset, "tier": tier}
    return rows, context


def cells(rows: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """(log2_tasks, batch_size) -> majority class, votes, runs, mean seen/unseen accuracy."""
    out = {}
    for key in sorted({(r["log2_tasks"], r["batch_size"]) for r in rows}):
        group = [r for r in rows if (r["log2_tasks"], r["batch_size"]) == key]
        winner, votes = majority([r["class"] for r in group])
        out[key] = {
            "class": winner,
            "votes": votes,
            "runs": len(group),
            "seen": float(np.mean([r["seen_accuracy_last"] for r in group])),
            "unseen": float(np.mean([r["unseen_accuracy_last"] for r in group])),
        }
    return out


def batch_label(b: int) -> str:
    """2^k for a power of two (the sweep doubles the batch), the number otherwise."""
    return f"$2^{{{b.bit_length() - 1}}}$" if is_power_of_two(b) else str(b)


def is_power_of_two(n: int) -> bool:
    return n > 0 and not n & (n - 1)


def batch_columns(batches: set[int]) -> list[int]:
    """The x-axis columns: every power of two from the smallest to the largest batch size when
    all are powers of two (an evenly spaced log2 axis, columns without runs blank), else just the
    sizes found."""
    if batches and all(is_power_of_two(b) for b in batches):
        lo, hi = min(batches).bit_length() - 1, max(batches).bit_length() - 1
        return [2**k for k in range(lo, hi + 1)]
    return sorted(batches)


def draw(ax, grid_cells: dict[tuple[int, int], dict[str, Any]]) -> None:
    """The class grid: one coloured cell per (task count, batch size) with a run, blank else."""
    rows_k = sorted({k for k, _ in grid_cells})
    batches = batch_columns({b for _, b in grid_cells})
    ax.grid(False)
    ax.spines[:].set_visible(False)
    if not grid_cells:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
        return
    codes = np.full((len(rows_k), len(batches)), np.nan)
    for (k, b), cell in grid_cells.items():
        codes[rows_k.index(k), batches.index(b)] = CLASSES.index(cell["class"])
    cmap = matplotlib.colors.ListedColormap([COLORS[c] for c in CLASSES]).with_extremes(bad="white")
    norm = matplotlib.colors.BoundaryNorm(np.arange(len(CLASSES) + 1) - 0.5, len(CLASSES))
    ax.pcolormesh(
        np.arange(len(batches) + 1),
        np.arange(len(rows_k) + 1),
        np.ma.masked_invalid(codes),
        cmap=cmap,
        norm=norm,
        edgecolors="white",
        linewidth=1.0,
    )
    fontsize = 7 if len(rows_k) <= 10 and len(batches) <= 8 else 5
    for (k, b), cell in grid_cells.items():
        text = (
            f"{SHORT[cell['class']]} {cell['votes']}/{cell['runs']}\n"
            f"unseen {cell['unseen']:.2f}\nseen {cell['seen']:.2f}"
        )
        ax.text(
            batches.index(b) + 0.5,
            rows_k.index(k) + 0.5,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            color=TEXT_COLORS[cell["class"]],
        )
    ax.set_xticks(np.arange(len(batches)) + 0.5, [batch_label(b) for b in batches])
    ax.set_yticks(np.arange(len(rows_k)) + 0.5, [tasks_label(k) for k in rows_k])
    ax.set_xlim(0, len(batches))
    ax.set_ylim(0, len(rows_k))
    ax.tick_params(length=0)


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    run_files: Iterable[str | os.PathLike],
    seen_threshold: float = 0.3,
    unseen_threshold: float = 0.2,
    window: int = 25,
    margin: float = 0.05,
) -> None:
    """Draw the phase diagram from evaluation files (one meta-test dataset) and the runs'
    done.json files (their log.csv beside them); every run must have both."""
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    window = int(window)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    for label, value in (
        ("seen_threshold", seen_threshold),
        ("unseen_threshold", unseen_threshold),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{label} must be in [0, 1], got {value}")
    out_prefix = Path(out_prefix)
    rows, context = run_rows(
        eval_files, run_files, seen_threshold, unseen_threshold, window, margin
    )
    grid_cells = cells(rows)
    stuck_loss = CHANCE_LOSS - margin
    for r in rows:
        cell = grid_cells[(r["log2_tasks"], r["batch_size"])]
        r.update(
            cell_class=cell["class"],
            cell_votes=cell["votes"],
            cell_runs=cell["runs"],
            seen_threshold=seen_threshold,
            unseen_threshold=unseen_threshold,
            window=window,
            margin=margin,
            stuck_loss=stuck_loss,
        )

    n_k = len({k for k, _ in grid_cells})
    n_b = len(batch_columns({b for _, b in grid_cells}))
    with figure_style():
        fig = new_figure(
            figsize=(max(6.5, 0.9 * n_b + 2.0), max(4.0, 0.5 * n_k + 2.6)), layout="constrained"
        )
        ax = fig.subplots()
        draw(ax, grid_cells)
        ax.set_xlabel("batch size (sequences per step = tasks per step x sequences per task)")
        ax.set_ylabel("number of meta-training tasks")
        legend = {
            STUCK: f"stuck on the plateau: mean of last {window} losses > ln 10 - {margin:g}",
            GENERALISING: f"generalising: unseen accuracy >= {unseen_threshold:g}",
            MEMORISING: f"memorising: seen accuracy >= {seen_threshold:g}, unseen below",
            UNCLASSIFIED: "unclassified: off the plateau, neither accuracy threshold",
        }
        handles = [Patch(facecolor=COLORS[c], label=legend[c]) for c in CLASSES]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=2,
            title="class at the end of training",
        )
        dataset, train_dataset = context["dataset"], context["train_dataset"]
        if dataset:
            where = (
                f"meta-trained on {DATASET_LABELS.get(train_dataset, train_dataset)}, "
                f"tested on {DATASET_LABELS.get(dataset, dataset)}"
            )
        else:
            where = "no evaluation files"
        lines = [
            f"Meta-optimisation phase diagram, {where} (tier: {context['tier']})",
            "cell: majority class over seeds (a tie goes to the first in legend order), its count,",
            "unseen- / seen-task accuracy of the last prediction, mean over seeds; blank: no run",
        ]
        if any(r["curriculum"] for r in rows):
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines))
        save_figure(fig, out_prefix)

    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
