"""Meta-optimisation (v): biasing the training distribution towards one task.

A fraction `bias_fraction` of every batch uses task id 0. Drawn: the runs of `reference_variant`
(fraction 0, normally) and the runs that differ from them only in `bias_fraction`; other runs
among `eval_files` are ignored. One colour per fraction, every seed drawn.

Top panel: training loss (`window`-step trailing mean) with ln 10; dashed verticals: plateau
ends (`metrics.plateau_length` via `results.read_runs`). Bottom panel: the probe accuracies
over training (probe.csv: mean accuracy over all positions of a fixed set of test-split
sequences): under unseen task ids (solid) and under task 0, the biased task (dashed), with chance
(0.1). The claim to check: task 0 is memorised first (dashed rises), then unseen tasks are
learned (solid rises). Without probe rows in any run the panel says "no probe data
(probe_every = 0)".

CSV `<prefix>.csv`, long form, sorted by bias_fraction, seed, run, step. Columns: bias_fraction,
run, variant, seed, plateau_step (NA when censored), censored, budget, step, unseen_accuracy,
task0_accuracy; one row per probe row, and a single row with NA probe columns for a run without
probe rows. Also writes `<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from gpicl.metrics import CHANCE, CHANCE_LOSS, PLATEAU_MARGIN, PLATEAU_WINDOW
from gpicl.plotting import (
    CURRICULUM_NOTE,
    describe_settings,
    figure_style,
    format_number,
    new_figure,
    plateau_rule,
    reference_group,
    save_figure,
    setting_differences,
    write_csv,
)
from gpicl.results import Run, read_runs

NO_PROBE_TEXT = "no probe data (probe_every = 0)"
CSV_COLUMNS = (
    "bias_fraction",
    "run",
    "variant",
    "seed",
    "plateau_step",
    "censored",
    "budget",
    "step",
    "unseen_accuracy",
    "task0_accuracy",
)


def bias_runs(runs: Sequence[Run], reference_variant: str | None) -> dict[float, list[Run]]:
    """{bias_fraction: runs sorted by seed}: the reference runs and those differing from them
    only in bias_fraction."""
    reference = reference_group(runs, reference_variant, "metaopt_bias")
    ref_train = reference[0].train
    selected = list(reference)
    for run in runs:
        if run not in reference and [
            key for key, _ in setting_differences(run.train, ref_train)
        ] == ["bias_fraction"]:
            selected.append(run)
    by_fraction: dict[float, list[Run]] = {}
    for run in selected:
        by_fraction.setdefault(float(run.train["bias_fraction"]), []).append(run)
    return {f: sorted(by_fraction[f], key=lambda r: (r.seed, r.name)) for f in sorted(by_fraction)}


def table(by_fraction: dict[float, list[Run]]) -> list[dict]:
    rows = []
    for fraction, group in by_fraction.items():
        for run in group:
            common = {
                "bias_fraction": fraction,
                "run": run.name,
                "variant": run.variant,
                "seed": run.seed,
                "plateau_step": run.plateau_step,
                "censored": run.censored,
                "budget": run.steps,
            }
            if not len(run.probe):
                rows.append({**common, "step": None})
            for probe in run.probe.itertuples(index=False):
                rows.append(
                    {
                        **common,
                        "step": int(probe.step),
                        "unseen_accuracy": float(probe.unseen_accuracy),
                        "task0_accuracy": float(probe.task0_accuracy),
                    }
                )
    return rows


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    reference_variant: str | None,
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
) -> None:
    """Draw the biased-training figure from run folders (`eval_files`: their done.json)."""
    out_prefix = Path(out_prefix)
    by_fraction = bias_runs(read_runs(eval_files, window, margin), reference_variant)
    rows = table(by_fraction)
    any_probe = any(len(r.probe) for group in by_fraction.values() for r in group)

    with figure_style():
        fig = new_figure(figsize=(7.0, 6.5), layout="constrained")
        ax_loss, ax_probe = fig.subplots(2, 1, sharex=True)
        fraction_handles = []
        for i, (fraction, group) in enumerate(by_fraction.items()):
            color = f"C{i % 10}"
            seeds = f"{len(group)} seed" + ("s" if len(group) > 1 else "")
            label = f"bias_fraction {format_number(fraction)} ({seeds})"
            fraction_handles.append(Line2D([], [], color=color, label=label))
            for run in group:
                x, smooth = run.trailing_loss(window)
                ax_loss.plot(x, smooth, color=color, linewidth=1.2)
                if not run.censored:
                    ax_loss.axvline(run.plateau_step, color=color, linestyle="--", linewidth=0.8)
                if len(run.probe):
                    steps = run.probe["step"].to_numpy()
                    ax_probe.plot(steps, run.probe["unseen_accuracy"], color=color)
                    ax_probe.plot(steps, run.probe["task0_accuracy"], color=color, linestyle="--")
        ax_loss.axhline(CHANCE_LOSS, color="0.3", linestyle=":", linewidth=1.0)
        losses = [r.log["loss"].to_numpy(dtype=np.float64) for g in by_fraction.values() for r in g]
        losses = np.concatenate(losses) if losses else np.zeros(0)
        if len(losses):
            ax_loss.set_ylim(
                max(0.0, float(np.min(losses)) - 0.05),
                min(float(np.max(losses)), CHANCE_LOSS + 1.0) + 0.05,
            )
        ax_loss.set_ylabel(f"training loss, {window}-step trailing mean")
        ax_loss.legend(
            handles=[
                *fraction_handles,
                Line2D([], [], color="0.3", linestyle=":", label="ln 10"),
                Line2D([], [], color="0.5", linestyle="--", linewidth=0.8, label="plateau end"),
            ],
            loc="lower left",
            fontsize=7,
        )
        ax_probe.axhline(CHANCE, color="0.3", linestyle=":", linewidth=1.0)
        ax_probe.set_ylim(0.0, 1.0)
        if not any_probe:
            ax_probe.text(
                0.5, 0.5, NO_PROBE_TEXT, transform=ax_probe.transAxes, ha="center", va="center"
            )
        ax_probe.legend(
            handles=[
                Line2D([], [], color="0.2", label="unseen tasks"),
                Line2D([], [], color="0.2", linestyle="--", label="task 0 (the biased task)"),
                Line2D([], [], color="0.3", linestyle=":", label="chance (0.1)"),
            ],
            loc="upper left",
            fontsize=7,
        )
        ax_probe.set_ylabel("probe accuracy\n(mean over positions, test split)")
        ax_probe.set_xlabel("meta-training step")

        reference = next(iter(by_fraction.values()))[0]
        name = f" ({reference_variant})" if reference_variant is not None else ""
        lines = [
            "Biased training: a fraction of every batch uses task 0",
            f"reference{name}: {describe_settings(reference.train)}",
            plateau_rule(window, margin),
        ]
        if reference.train.get("curriculum"):
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines), fontsize=8)
        save_figure(fig, out_prefix)

    frame = pd.DataFrame.from_records(rows, columns=CSV_COLUMNS)
    for column in ("plateau_step", "step"):
        frame[column] = frame[column].astype("Int64")
    write_csv(frame, out_prefix.with_name(out_prefix.name + ".csv"))
