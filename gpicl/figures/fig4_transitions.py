"""Figure 4: accuracy improvement within the sequence vs number of meta-training tasks.

Improvement = accuracy of the last prediction minus that of the first
(`metrics.within_sequence_gain`), for Transformers meta-trained on MNIST. Three curves: seen MNIST
tasks, unseen MNIST tasks, unseen Fashion-MNIST tasks; line: mean over seeds, dots: each seed.
One model width per figure: the `model_size` argument, or by default the largest width among the
files (the title says which and of what). Background: the regime of each task count, classified
from the mean seen and unseen MNIST gains by `metrics.classify_regimes` (thresholds in the title);
contiguous task counts with one regime share a band whose edges lie halfway between task counts.

CSV `<prefix>.csv`, long form, sorted by log2_tasks, then curve (seen_mnist, unseen_mnist,
unseen_fashion_mnist), then the mean row before the seeds in ascending order. Columns:
log2_tasks, num_tasks, curve, statistic
("mean" or "seed"), seed (NA on mean rows), gain, n_seeds (seeds in the mean; 1 on seed rows),
regime: on a mean row the regime of the mean gains at that task count (the shaded one), on a seed
row that seed's own regime (NA where its seen or unseen MNIST file is missing). Also writes
`<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from gpicl.metrics import (
    GAIN_THRESHOLD,
    GAP_THRESHOLD,
    GENERAL_LEARNING,
    INSTANCE_MEMORISATION,
    TASK_IDENTIFICATION,
    TRANSITION,
    classify_regime,
    classify_regimes,
    within_sequence_gain,
)
from gpicl.plotting import (
    CURRICULUM_NOTE,
    METHOD_LABELS,
    UNLIMITED_LOG2,
    figure_style,
    new_figure,
    reject_duplicates,
    save_figure,
    single_value,
    write_csv,
)
from gpicl.results import log2_tasks, read_sweep_results

TRAIN_DATASET = "mnist"
METHOD = "transformer"
# (curve, meta-test dataset, task set, legend label), in legend order
CURVES = (
    ("seen_mnist", "mnist", "seen", "seen tasks, MNIST"),
    ("unseen_mnist", "mnist", "unseen", "unseen tasks, MNIST"),
    ("unseen_fashion_mnist", "fashion_mnist", "unseen", "unseen tasks, Fashion MNIST"),
)
REGIME_CURVES = ("seen_mnist", "unseen_mnist")  # the gains classify_regimes compares
REGIME_COLORS = {
    INSTANCE_MEMORISATION: "0.90",
    TASK_IDENTIFICATION: "#fbe3c4",
    GENERAL_LEARNING: "#d3eedf",
    TRANSITION: "#ece0ef",
}
CSV_COLUMNS = (
    "log2_tasks",
    "num_tasks",
    "curve",
    "statistic",
    "seed",
    "gain",
    "n_seeds",
    "regime",
)


def select(results: list[tuple[Path, dict]], model_size: int | None) -> tuple[list, int | None]:
    """MNIST-trained Transformer files on the figure's datasets, at `model_size` (default: the
    largest width present); returns them and the width used."""
    datasets = {dataset for _, dataset, _, _ in CURVES}
    results = [
        (path, r)
        for path, r in results
        if r["method"] == METHOD
        and r["train_dataset"] == TRAIN_DATASET
        and r["dataset"] in datasets
    ]
    sizes = sorted({int(r["model_size"]) for _, r in results})
    if model_size is None:
        model_size = sizes[-1] if sizes else None
    elif int(model_size) not in sizes:
        raise ValueError(f"fig4: no evaluation file with model_size {model_size}; found {sizes}")
    return [(p, r) for p, r in results if int(r["model_size"]) == model_size], model_size


def gains(results: list[tuple[Path, dict]]) -> dict[tuple[str, int], dict[int, float]]:
    """{(curve, log2_tasks): {seed: gain}}."""
    out: dict[tuple[str, int], dict[int, float]] = {}
    for curve, dataset, task_set, _ in CURVES:
        for _, r in results:
            if r["dataset"] == dataset:
                gain = within_sequence_gain(r["task_sets"][task_set]["accuracy"])
                out.setdefault((curve, log2_tasks(r["num_tasks"])), {})[int(r["seed"])] = gain
    return out


def table(
    per_seed: dict[tuple[str, int], dict[int, float]],
    gain_threshold: float = GAIN_THRESHOLD,
    gap_threshold: float = GAP_THRESHOLD,
) -> list[dict]:
    """CSV rows: per task count and curve, the mean row then one row per seed, with regimes."""
    ks = sorted({k for _, k in per_seed})
    means = {key: float(np.mean(list(v.values()))) for key, v in per_seed.items()}
    points = [
        (k, means[(REGIME_CURVES[0], k)], means[(REGIME_CURVES[1], k)])
        for k in ks
        if all((c, k) in means for c in REGIME_CURVES)
    ]
    mean_regime = dict(classify_regimes(points, gain_threshold, gap_threshold))
    rows = []
    for k in ks:
        for curve, *_ in CURVES:
            seeds = per_seed.get((curve, k))
            if not seeds:
                continue
            common = {"log2_tasks": k, "num_tasks": 2**k, "curve": curve}
            rows.append(
                {
                    **common,
                    "statistic": "mean",
                    "seed": None,
                    "gain": means[(curve, k)],
                    "n_seeds": len(seeds),
                    "regime": mean_regime.get(k),
                }
            )
            for seed in sorted(seeds):
                seen = per_seed.get((REGIME_CURVES[0], k), {}).get(seed)
                unseen = per_seed.get((REGIME_CURVES[1], k), {}).get(seed)
                regime = None
                if seen is not None and unseen is not None:
                    regime = classify_regime(seen, unseen, gain_threshold, gap_threshold)
                rows.append(
                    {
                        **common,
                        "statistic": "seed",
                        "seed": seed,
                        "gain": seeds[seed],
                        "n_seeds": 1,
                        "regime": regime,
                    }
                )
    return rows


def x_position(k: int, finite: list[int]) -> float:
    """Position on the x axis: log2 of the task count; the unlimited pool (2^62) two steps to the
    right of the largest finite one, so it does not stretch the axis."""
    if k == UNLIMITED_LOG2:
        return (max(finite) if finite else 0) + 2
    return k


def regime_spans(regimes: list[tuple[float, str]]) -> list[tuple[float, float, str]]:
    """Contiguous runs of one regime as (left, right, regime), edges halfway between points."""
    spans: list[tuple[float, float, str]] = []
    for i, (x, regime) in enumerate(regimes):
        left = x - 0.5 if i == 0 else (regimes[i - 1][0] + x) / 2
        right = x + 0.5 if i == len(regimes) - 1 else (x + regimes[i + 1][0]) / 2
        if spans and spans[-1][2] == regime:
            spans[-1] = (spans[-1][0], right, regime)
        else:
            spans.append((left, right, regime))
    return spans


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    model_size: int | None = None,
    gain_threshold: float = GAIN_THRESHOLD,
    gap_threshold: float = GAP_THRESHOLD,
    budget_note: str = "",
) -> None:
    """Draw Figure 4 from evaluation files; other methods, meta-training datasets, meta-test
    datasets and (with several) model widths are ignored."""
    out_prefix = Path(out_prefix)
    all_results = read_sweep_results(eval_files)
    results, width = select(all_results, model_size)
    all_sizes = sorted(
        {
            int(r["model_size"])
            for _, r in all_results
            if r["method"] == METHOD
            and r["train_dataset"] == TRAIN_DATASET
            and r["dataset"] in {dataset for _, dataset, _, _ in CURVES}
        }
    )
    reject_duplicates(results, ("dataset", "num_tasks", "seed"), "fig4")
    tier = single_value(results, "tier", "fig4")
    single_value(results, "sequence_length", "fig4")
    curriculum = any(record["curriculum"] for _, record in results)
    rows = table(gains(results), gain_threshold, gap_threshold)

    finite = sorted({r["log2_tasks"] for r in rows if r["log2_tasks"] != UNLIMITED_LOG2})
    ks = sorted({r["log2_tasks"] for r in rows})
    with figure_style():
        fig = new_figure(figsize=(7.0, 5.0), layout="constrained")
        ax = fig.subplots()
        means = [r for r in rows if r["statistic"] == "mean"]
        regimes = sorted(
            {(x_position(r["log2_tasks"], finite), r["regime"]) for r in means if r["regime"]}
        )
        for left, right, regime in regime_spans(regimes):
            ax.axvspan(left, right, color=REGIME_COLORS[regime], linewidth=0, zorder=0)
            ax.text(
                (left + right) / 2,
                0.98,
                regime.replace(" ", "\n"),
                transform=matplotlib.transforms.blended_transform_factory(
                    ax.transData, ax.transAxes
                ),
                ha="center",
                va="top",
                fontsize=7,
                color="0.3",
            )
        for i, (curve, _, _, label) in enumerate(CURVES):
            color = f"C{i}"
            sel = [r for r in means if r["curve"] == curve]
            if not sel:
                continue
            ax.plot(
                [x_position(r["log2_tasks"], finite) for r in sel],
                [r["gain"] for r in sel],
                color=color,
                marker="o",
                markersize=3,
                label=label,
                zorder=3,
            )
            dots = [r for r in rows if r["statistic"] == "seed" and r["curve"] == curve]
            ax.scatter(
                [x_position(r["log2_tasks"], finite) for r in dots],
                [r["gain"] for r in dots],
                s=10,
                color=color,
                alpha=0.5,
                linewidths=0,
                zorder=2,
            )
        ax.axhline(0.0, color="0.4", linestyle="--", linewidth=1.0, label="no improvement")
        if not rows:
            ax.text(0.5, 0.5, "no evaluation files", transform=ax.transAxes, ha="center")
        else:
            ticks = [x_position(k, finite) for k in ks]
            labels = [f"$2^{{{k}}}$" + ("\n(unlimited)" if k == UNLIMITED_LOG2 else "") for k in ks]
            ax.set_xticks(ticks, labels)
            ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)
        values = [r["gain"] for r in rows]
        ax.set_ylim(
            min([-0.1, *(v - 0.05 for v in values)]), max([1.0, *(v + 0.05 for v in values)])
        )
        ax.set_xlabel("number of meta-training tasks")
        ax.set_ylabel("accuracy improvement within sequence\n(last minus first prediction)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)

        name = METHOD_LABELS[METHOD]
        if width is None:
            what = "no evaluation files"
        elif model_size is None and len(all_sizes) > 1:
            what = f"width {width}, largest of {', '.join(map(str, all_sizes))}"
        else:
            what = f"width {width}"
        lines = [
            f"{name} ({what}), meta-trained on MNIST (tier: {tier})",
            "accuracy improvement within the sequence; line: mean over seeds, dots: single seeds",
            f"background: regime of the mean seen and unseen MNIST gains "
            f"(threshold {gain_threshold:g}, gap {gap_threshold:g})",
        ]
        if curriculum:
            lines.append(CURRICULUM_NOTE)
        if budget_note:
            lines.append(budget_note)
        fig.suptitle("\n".join(lines))
        save_figure(fig, out_prefix)

    frame = pd.DataFrame.from_records(rows, columns=CSV_COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")  # integers beside NA, not floats
    write_csv(frame, out_prefix.with_name(out_prefix.name + ".csv"))
