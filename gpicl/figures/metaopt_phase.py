"""Meta-optimisation phase diagram: number of tasks x batch size -> memorise / generalise / stuck.

Each finished run is classified at the end of meta-training from three numbers
(`metrics.classify_phase`; `s`, `u`, `m`, `w` = seen_threshold, unseen_threshold, margin,
window, passed from params.yaml):

1. "stuck": the smoothed final training loss (mean of the last `w` losses of the run's log.csv,
   all of them if the log is shorter) is still above ln(10) - m, i.e. on the plateau;
2. "generalising": else, if the unseen-task accuracy of the last prediction is >= u;
3. "memorising": else, if the seen-task accuracy of the last prediction is >= s;
4. "unclassified": none of these.

Accuracies come from the evaluation files (one per run, all on one meta-test dataset), the loss
from the run's `log.csv` beside its `done.json` (`results.read_runs`); the two are matched by run
name. A cell is (num_tasks, batch size = tasks_per_step x seqs_per_task); it is coloured by the
majority class of its seeds (a tie goes to the class that comes first in the order above) and
says e.g. "gen 2/2", with the unseen- and seen-task last-position accuracy, mean over the cell's
seeds. Rows are the task counts found; columns every power of two between the smallest and
largest batch size (the sizes found if any is not a power of two). Grid cells without a run are
blank.

CSV `<prefix>.csv`, one row per run, sorted by num_tasks, batch_size, seed, run: run, seed,
num_tasks, log2_tasks, batch_size, final_loss_smoothed, seen_accuracy_last, unseen_accuracy_last,
class; then the cell's verdict: cell_class, cell_votes (seeds of the cell in cell_class),
cell_runs; then the settings used, repeated on every row so the file stands alone:
seen_threshold, unseen_threshold, window, margin, stuck_loss (= ln(10) - margin). Also writes
`<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.patches import Patch

from gpicl.metrics import (
    CHANCE_LOSS,
    GENERALISING,
    MEMORISING,
    PHASES,
    PLATEAU_MARGIN,
    PLATEAU_WINDOW,
    SEEN_THRESHOLD,
    STUCK,
    UNCLASSIFIED,
    UNSEEN_THRESHOLD,
    classify_phase,
    final_loss,
    majority_phase,
)
from gpicl.plotting import (
    CURRICULUM_NOTE,
    DATASET_LABELS,
    figure_style,
    new_figure,
    save_figure,
    single_value,
    tasks_label,
    write_csv,
)
from gpicl.results import log2_tasks, read_eval_results, read_runs

SHORT = {STUCK: "stuck", GENERALISING: "gen", MEMORISING: "mem", UNCLASSIFIED: "uncl"}
# Fixed colour-blind-safe colours (seaborn "colorblind" / the repo's cycle), one per class, and a
# text colour that reads on each.
COLORS = {STUCK: "#0173b2", GENERALISING: "#029e73", MEMORISING: "#de8f05", UNCLASSIFIED: "#949494"}
TEXT_COLORS = {STUCK: "white", GENERALISING: "white", MEMORISING: "black", UNCLASSIFIED: "black"}

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
    results = read_eval_results(eval_files, "seen", "unseen", keys=("num_tasks",))
    dataset = single_value(results, "dataset", "metaopt_phase")
    train_dataset = single_value(results, "train_dataset", "metaopt_phase")
    tier = single_value(results, "tier", "metaopt_phase")
    evals: dict[str, tuple[Path, dict]] = {}
    for path, record in results:
        name = record["run"]
        if name in evals:
            raise ValueError(f"run {name}: two evaluation files, {evals[name][0]} and {path}")
        evals[name] = (path, record)
    runs = {run.name: run for run in read_runs(run_files, window, margin)}
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
        if "num_tasks" not in run.done:
            raise ValueError(f"run {name}: {run.path} lacks keys ['num_tasks']")
        for key in ("num_tasks", "seed"):
            if int(run.done[key]) != int(ev[key]):
                raise ValueError(
                    f"run {name}: {key} {run.done[key]} in {run.path} but {ev[key]} in {path}"
                )
        loss = final_loss(run.log["loss"].to_numpy(dtype=np.float64), window)
        seen = float(ev["task_sets"]["seen"]["accuracy"][-1])
        unseen = float(ev["task_sets"]["unseen"]["accuracy"][-1])
        rows.append(
            {
                "run": name,
                "seed": run.seed,
                "num_tasks": int(run.done["num_tasks"]),
                "log2_tasks": log2_tasks(run.done["num_tasks"], path),
                "batch_size": run.batch_size,
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
        winner, votes = majority_phase([r["class"] for r in group])
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
        codes[rows_k.index(k), batches.index(b)] = PHASES.index(cell["class"])
    cmap = matplotlib.colors.ListedColormap([COLORS[c] for c in PHASES]).with_extremes(bad="white")
    norm = matplotlib.colors.BoundaryNorm(np.arange(len(PHASES) + 1) - 0.5, len(PHASES))
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
    seen_threshold: float = SEEN_THRESHOLD,
    unseen_threshold: float = UNSEEN_THRESHOLD,
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
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
        handles = [Patch(facecolor=COLORS[c], label=legend[c]) for c in PHASES]
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
