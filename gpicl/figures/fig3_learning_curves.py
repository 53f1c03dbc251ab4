"""Figure 3: meta-test learning curves on unseen tasks.

Two panels (meta-test on MNIST, on Fashion-MNIST), one curve per meta-training dataset: accuracy
of the prediction at position t (after t examples) on unseen tasks, mean over seeds, band from the
lowest to the highest seed. Dashed: the reference learners that are not meta-learned
(`gpicl.baselines`: 1-nearest neighbour, nearest class mean, ridge), fitted at each position on
the examples before it, on the same sequences. Reads evaluation and baseline JSON files; writes
`<prefix>.{png,svg,csv}`, the CSV holding exactly the numbers drawn (baseline rows: train_dataset
"none", method the learner).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gpicl.metrics import CHANCE
from gpicl.plotting import (
    BASELINE_METHODS,
    CURRICULUM_NOTE,
    DATASET_LABELS,
    METHOD_LABELS,
    figure_style,
    new_figure,
    reject_duplicates,
    save_figure,
    single_value,
    write_csv,
)
from gpicl.results import read_baseline_results, read_eval_results

TEST_DATASETS = ("mnist", "fashion_mnist")  # panels, left to right
TRAIN_DATASETS = ("mnist", "fashion_mnist")  # curves, in legend order
TASK_SET = "unseen"
CSV_COLUMNS = (
    "test_dataset",
    "train_dataset",
    "method",
    "position",
    "mean",
    "low",
    "high",
    "n_seeds",
)
NOT_META_TRAINED = "none"  # train_dataset of the reference learners' rows
BAND = "band: min to max over seeds"


def baseline_curves(baselines: list[tuple[Path, dict]]) -> list[dict]:
    """Per (test dataset, learner, position): the reference learner's accuracy (CSV rows)."""
    rows = []
    for test in TEST_DATASETS:
        for method in BASELINE_METHODS:
            for _, r in baselines:
                if r["dataset"] != test or r["method"] != method:
                    continue
                for t, acc in enumerate(r["task_sets"][TASK_SET]["accuracy"]):
                    rows.append(
                        {
                            "test_dataset": test,
                            "train_dataset": NOT_META_TRAINED,
                            "method": method,
                            "position": t,
                            "mean": float(acc),
                            "low": float(acc),
                            "high": float(acc),
                            "n_seeds": 1,
                        }
                    )
    return rows


def curves(results: list[tuple[Path, dict]]) -> list[dict]:
    """Per (test dataset, train dataset, position): mean, min and max over seeds (CSV rows)."""
    rows = []
    for test in TEST_DATASETS:
        for train in TRAIN_DATASETS:
            group = sorted(
                (r for _, r in results if r["dataset"] == test and r["train_dataset"] == train),
                key=lambda r: r["seed"],
            )
            if not group:
                continue
            lengths = {r["sequence_length"] for r in group}
            if len(lengths) > 1:
                raise ValueError(
                    f"fig3: meta-trained on {train}, tested on {test}: sequence lengths {lengths}"
                )
            acc = np.array([r["task_sets"][TASK_SET]["accuracy"] for r in group], dtype=np.float64)
            mean, low, high = acc.mean(axis=0), acc.min(axis=0), acc.max(axis=0)
            for t in range(acc.shape[1]):
                rows.append(
                    {
                        "test_dataset": test,
                        "train_dataset": train,
                        "method": group[0]["method"],
                        "position": t,
                        "mean": float(mean[t]),
                        "low": float(low[t]),
                        "high": float(high[t]),
                        "n_seeds": len(group),
                    }
                )
    return rows


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    baseline_files: Iterable[str | os.PathLike] = (),
) -> None:
    """Draw Figure 3 from evaluation files (and the reference learners' files, dashed); files
    for other meta-test datasets are ignored."""
    out_prefix = Path(out_prefix)
    results = [
        (path, record)
        for path, record in read_eval_results(eval_files, TASK_SET)
        if record["dataset"] in TEST_DATASETS and record["train_dataset"] in TRAIN_DATASETS
    ]
    reject_duplicates(results, ("dataset", "train_dataset", "seed"), "fig3")
    tier = single_value(results, "tier", "fig3")
    method = single_value(results, "method", "fig3")
    curriculum = any(record["curriculum"] for _, record in results)
    rows = curves(results)
    baselines = [
        (path, record)
        for path, record in read_baseline_results(baseline_files, TASK_SET)
        if record["dataset"] in TEST_DATASETS and record.get("split", "test") == "test"
    ]
    reject_duplicates(baselines, ("dataset", "method"), "fig3")
    reference = baseline_curves(baselines)

    with figure_style():
        fig = new_figure(figsize=(7.0, 3.4), layout="constrained")
        axes = fig.subplots(1, len(TEST_DATASETS), sharey=True)
        colors = {train: f"C{i}" for i, train in enumerate(TRAIN_DATASETS)}
        for ax, test in zip(axes, TEST_DATASETS, strict=True):
            drawn = False
            for train in TRAIN_DATASETS:
                sel = [r for r in rows if r["test_dataset"] == test and r["train_dataset"] == train]
                if not sel:
                    continue
                drawn = True
                x = [r["position"] for r in sel]
                n = sel[0]["n_seeds"]
                label = f"meta-trained on {DATASET_LABELS[train]} ({n} seed{'s' * (n != 1)})"
                ax.fill_between(
                    x,
                    [r["low"] for r in sel],
                    [r["high"] for r in sel],
                    color=colors[train],
                    alpha=0.2,
                    linewidth=0,
                )
                ax.plot(x, [r["mean"] for r in sel], color=colors[train], label=label)
            for i, learner in enumerate(BASELINE_METHODS):
                sel = [r for r in reference if r["test_dataset"] == test and r["method"] == learner]
                if sel:
                    ax.plot(
                        [r["position"] for r in sel],
                        [r["mean"] for r in sel],
                        color=f"C{len(TRAIN_DATASETS) + i}",
                        linestyle="--",
                        linewidth=1.0,
                        label=f"{METHOD_LABELS[learner]} (not meta-learned)",
                    )
            ax.axhline(CHANCE, color="0.4", linestyle=":", linewidth=1.0, label="chance")
            if not drawn:
                ax.text(
                    0.5,
                    0.5,
                    "no evaluation files",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                )
            ax.set_title(f"meta-test on {DATASET_LABELS[test]}")
            ax.set_xlabel("number of examples seen")
            ax.set_ylim(0.0, 1.0)
            ax.legend(loc="upper left", fontsize="x-small")
        axes[0].set_ylabel("accuracy on unseen tasks")

        name = METHOD_LABELS.get(method, method) if method else "no evaluation files"
        title = f"{name}: meta-test learning curves (tier: {tier})"
        lines = [title, f"line: mean over seeds, {BAND}"]
        if curriculum:
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines))
        save_figure(fig, out_prefix)

    write_csv(rows + reference, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
