"""Figure 2: accuracy over number of meta-training tasks x model capacity.

Three heat maps, colour = accuracy of the last prediction, mean over seeds: (a) MLP on seen tasks,
x = hidden size; (b) Transformer on seen tasks, x = model width; (c) Transformer on unseen tasks.
y = size of the meta-training task pool, 2^k. Only files that meta-test on the meta-training
dataset (`dataset == train_dataset`, MNIST in the paper) count; rows are the task counts found in
any panel, columns the sizes found for the panel's method; a cell without files is grey, "no run".

CSV `<prefix>.csv`, one row per drawn cell (missing cells too, with NA and n_seeds 0):
panel (a/b/c), method, task_set, model_size, log2_tasks, num_tasks, accuracy_mean, accuracy_min,
accuracy_max (over seeds), n_seeds. Also writes `<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np

from gpicl.metrics import CHANCE
from gpicl.plotting import (
    CURRICULUM_NOTE,
    DATASET_LABELS,
    figure_style,
    new_figure,
    reject_duplicates,
    save_figure,
    single_value,
    tasks_label,
    write_csv,
)
from gpicl.results import log2_tasks, read_sweep_results

# (panel, method, task set, x-axis label), left to right
PANELS = (
    ("a", "mlp", "seen", "MLP hidden size"),
    ("b", "transformer", "seen", "Transformer model width"),
    ("c", "transformer", "unseen", "Transformer model width"),
)
PANEL_METHOD_LABELS = {"mlp": "MLP", "transformer": "Transformer"}
METHODS = ("mlp", "transformer")
COLORMAP = "viridis"
MISSING_COLOR = "0.85"
CSV_COLUMNS = (
    "panel",
    "method",
    "task_set",
    "model_size",
    "log2_tasks",
    "num_tasks",
    "accuracy_mean",
    "accuracy_min",
    "accuracy_max",
    "n_seeds",
)


def cells(results: list[tuple[Path, dict]]) -> list[dict]:
    """Per panel x task count x size: last-position accuracy over seeds (the CSV rows)."""
    rows_k = sorted({log2_tasks(r["num_tasks"]) for _, r in results})
    out = []
    for panel, method, task_set, _ in PANELS:
        group = [r for _, r in results if r["method"] == method]
        for size in sorted({int(r["model_size"]) for r in group}):
            for k in rows_k:
                last = [
                    float(r["task_sets"][task_set]["accuracy"][-1])
                    for r in sorted(group, key=lambda r: r["seed"])
                    if int(r["model_size"]) == size and log2_tasks(r["num_tasks"]) == k
                ]
                out.append(
                    {
                        "panel": panel,
                        "method": method,
                        "task_set": task_set,
                        "model_size": size,
                        "log2_tasks": k,
                        "num_tasks": 2**k,
                        "accuracy_mean": float(np.mean(last)) if last else None,
                        "accuracy_min": min(last) if last else None,
                        "accuracy_max": max(last) if last else None,
                        "n_seeds": len(last),
                    }
                )
    return out


def draw_panel(ax, rows: list[dict], rows_k: list[int], cmap, norm, empty_text: str):
    """One heat map: cells in a size x task-count grid, value written in each; None if empty."""
    sizes = sorted({r["model_size"] for r in rows})
    ax.grid(False)
    if not sizes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(
            0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center", color="0.35"
        )
        ax.set_facecolor(MISSING_COLOR)
        ax.spines[:].set_visible(False)
        return None
    grid = np.full((len(rows_k), len(sizes)), np.nan)
    for r in rows:
        if r["accuracy_mean"] is not None:
            grid[rows_k.index(r["log2_tasks"]), sizes.index(r["model_size"])] = r["accuracy_mean"]
    mesh = ax.pcolormesh(
        np.arange(len(sizes) + 1),
        np.arange(len(rows_k) + 1),
        np.ma.masked_invalid(grid),
        cmap=cmap,
        norm=norm,
        edgecolors="white",
        linewidth=0.5,
    )
    fontsize = 7 if len(rows_k) <= 12 and len(sizes) <= 8 else 5
    for i in range(len(rows_k)):
        for j in range(len(sizes)):
            value = grid[i, j]
            if np.isnan(value):
                text, color = "no run", "0.35"
            else:
                text, color = f"{value:.2f}", "black" if value > 0.55 else "white"
            ax.text(
                j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=fontsize, color=color
            )
    ax.set_xticks(np.arange(len(sizes)) + 0.5, [str(s) for s in sizes])
    ax.set_yticks(np.arange(len(rows_k)) + 0.5, [tasks_label(k) for k in rows_k])
    ax.set_xlim(0, len(sizes))
    ax.set_ylim(0, len(rows_k))
    ax.spines[:].set_visible(False)
    ax.tick_params(length=0)
    return mesh


def make(
    eval_files: Iterable[str | os.PathLike], out_prefix: str | os.PathLike, budget_note: str = ""
) -> None:
    """Draw Figure 2 from evaluation files; other methods and cross-dataset files are ignored."""
    out_prefix = Path(out_prefix)
    results = [
        (path, record)
        for path, record in read_sweep_results(eval_files)
        if record["method"] in METHODS and record["dataset"] == record["train_dataset"]
    ]
    reject_duplicates(
        results, ("train_dataset", "method", "model_size", "num_tasks", "seed"), "fig2"
    )
    tier = single_value(results, "tier", "fig2")
    dataset = single_value(results, "train_dataset", "fig2")
    single_value(results, "sequence_length", "fig2")
    curriculum = any(record["curriculum"] for _, record in results)
    rows = cells(results)
    rows_k = sorted({r["log2_tasks"] for r in rows})

    with figure_style():
        width = max(
            7.5,
            sum(
                max(2.2, 0.5 * len({r["model_size"] for r in rows if r["panel"] == p}) + 1.2)
                for p, *_ in PANELS
            ),
        )
        height = max(3.4, 0.26 * len(rows_k) + 2.0)
        fig = new_figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, len(PANELS), sharey=False)
        cmap = matplotlib.colormaps[COLORMAP].with_extremes(bad=MISSING_COLOR)
        norm = matplotlib.colors.Normalize(vmin=0.0, vmax=1.0)
        mesh = None
        for ax, (panel, method, task_set, xlabel) in zip(axes, PANELS, strict=True):
            name = PANEL_METHOD_LABELS[method]
            sel = [r for r in rows if r["panel"] == panel]
            drawn = draw_panel(ax, sel, rows_k, cmap, norm, f"no {name} runs")
            if drawn is not None and mesh is not None:
                ax.tick_params(labelleft=False)  # the first drawn panel labels the rows
            elif drawn is not None:
                mesh = drawn
                ax.set_ylabel("number of meta-training tasks")
            ax.set_title(f"({panel}) {name}\n{task_set} tasks")
            ax.set_xlabel(xlabel)
        if mesh is None:  # no data: the colour bar still shows the scale and chance
            mesh = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        cbar = fig.colorbar(mesh, ax=list(axes), shrink=0.9, pad=0.02)
        cbar.set_label("last-position accuracy")
        cbar.ax.axhline(CHANCE, color="red", linewidth=1.5)
        cbar.set_ticks([0.0, CHANCE, 0.2, 0.4, 0.6, 0.8, 1.0])
        cbar.set_ticklabels(["0", f"chance {CHANCE:g}", "0.2", "0.4", "0.6", "0.8", "1"])
        cbar.ax.grid(False)

        where = (
            f"meta-trained and tested on {DATASET_LABELS.get(dataset, dataset)}"
            if dataset
            else "no evaluation files"
        )
        lines = [
            f"Accuracy vs number of tasks and model size, {where} (tier: {tier})",
            "cell: last-position accuracy, mean over seeds; grey: no run",
        ]
        if curriculum:
            lines.append(CURRICULUM_NOTE)
        if budget_note:
            lines.append(budget_note)
        fig.suptitle("\n".join(lines))
        save_figure(fig, out_prefix)

    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
