"""Meta-optimisation (iii): plateau length against batch size, and the power law it follows.

Two log-log panels against the batch size B (sequences per step = tasks_per_step x
seqs_per_task): the plateau length in steps (`results.read_runs`, rule `metrics.plateau_length`)
and in sequences seen (steps x B). Each seed is a small point (spread a little along x so seeds
at one B do not hide each other); the large marker is the mean over the seeds at that B, with
censored runs (never left the plateau) counted at their budget, so it is drawn open, as a lower
bound, when any is censored. Censored runs are open markers at their budget with an up-arrow and
are left out of the fit.

Fit (`metrics.fit_power_law`): least squares of log(plateau) on log(B) over the uncensored runs
(every run, not the means): plateau = prefactor x B^exponent. The exponent's standard error
(from the residuals) is given only with at least 3 distinct batch sizes; with fewer than 2
distinct batch sizes having an uncensored run there is no fit, and the panel says so. All runs
must differ only in the batch size, the step budget and the seed (an error names the difference
otherwise).

CSV `<prefix>.csv`, one row per run, sorted by batch size, seed, run. Columns: run, variant,
seed, batch_size, tasks_per_step, seqs_per_task, budget, censored, plateau_step (NA when
censored), plateau_sequences (plateau_step x batch_size; NA when censored), mean_plateau_step
and mean_plateau_sequences (the large marker of that batch size), mean_is_lower_bound,
n_runs_at_batch, n_censored_at_batch.
CSV `<prefix>_fit.csv`, one row per panel ("steps", "sequences"): panel, exponent, stderr (NA
below 3 batch sizes), prefactor, n_runs, n_batch_sizes; header only when there is no fit.
Also writes `<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gpicl.metrics import PLATEAU_MARGIN, PLATEAU_WINDOW, censored_mean, fit_power_law
from gpicl.plotting import (
    CURRICULUM_NOTE,
    describe_settings,
    figure_style,
    format_number,
    mark_censored,
    new_figure,
    plateau_rule,
    save_figure,
    setting_differences,
    write_csv,
)
from gpicl.results import Run, read_runs

CSV_COLUMNS = (
    "run",
    "variant",
    "seed",
    "batch_size",
    "tasks_per_step",
    "seqs_per_task",
    "budget",
    "censored",
    "plateau_step",
    "plateau_sequences",
    "mean_plateau_step",
    "mean_plateau_sequences",
    "mean_is_lower_bound",
    "n_runs_at_batch",
    "n_censored_at_batch",
)
FIT_COLUMNS = ("panel", "exponent", "stderr", "prefactor", "n_runs", "n_batch_sizes")
# (panel, y label, factor on the plateau length: 1 for steps, B for sequences)
PANELS = (
    ("steps", "plateau length (steps)"),
    ("sequences", "plateau length (sequences seen)"),
)
ALLOWED_DIFFERENCES = {"batch", "steps"}  # what may differ between the runs of this figure
ARROW_FACTOR = 1.6  # length of a censored run's up-arrow, as a factor on the log axis
SEED_SPREAD = 1.04  # factor between neighbouring seeds' x positions at one batch size


def check_batch_sweep(runs: Sequence[Run]) -> None:
    """The fit means something only if nothing but the batch size (and budget) changes."""
    for run in runs[1:]:
        extra = [
            text
            for key, text in setting_differences(run.train, runs[0].train)
            if key not in ALLOWED_DIFFERENCES
        ]
        if extra:
            raise ValueError(
                f"metaopt_batch: {run.name} differs from {runs[0].name} in more than the batch "
                f"size: {', '.join(extra)}"
            )


def table(runs: Sequence[Run]) -> list[dict]:
    """Per-run rows, each with the mean of its batch size."""
    rows = []
    for batch in sorted({r.batch_size for r in runs}):
        group = sorted((r for r in runs if r.batch_size == batch), key=lambda r: (r.seed, r.name))
        lengths = [r.steps if r.censored else r.plateau_step for r in group]
        mean, lower = censored_mean(lengths, [r.censored for r in group])
        for run in group:
            rows.append(
                {
                    "run": run.name,
                    "variant": run.variant,
                    "seed": run.seed,
                    "batch_size": batch,
                    "tasks_per_step": int(run.train["tasks_per_step"]),
                    "seqs_per_task": int(run.train["seqs_per_task"]),
                    "budget": run.steps,
                    "censored": run.censored,
                    "plateau_step": run.plateau_step,
                    "plateau_sequences": None if run.censored else run.plateau_step * batch,
                    "mean_plateau_step": mean,
                    "mean_plateau_sequences": mean * batch,
                    "mean_is_lower_bound": lower,
                    "n_runs_at_batch": len(group),
                    "n_censored_at_batch": sum(r.censored for r in group),
                }
            )
    return rows


def fit_text(fit: dict | None) -> str:
    if fit is None:
        return "no fit: fewer than 2 batch sizes with runs that left the plateau"
    prefactor = format_number(fit["prefactor"])
    text = f"fit (uncensored runs): ${prefactor} \\times B^{{{fit['exponent']:.2f}"
    if not math.isnan(fit["stderr"]):
        text += f" \\pm {fit['stderr']:.2f}"
    return text + f"}}$ ({fit['n_runs']} runs, {fit['n_batch_sizes']} batch sizes)"


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
) -> None:
    """Draw plateau length vs batch size from run folders (`eval_files`: their done.json)."""
    out_prefix = Path(out_prefix)
    runs = read_runs(eval_files, window, margin)
    check_batch_sweep(runs)
    rows = table(runs)
    uncensored = [r for r in rows if not r["censored"]]
    fits = {}
    for panel, _ in PANELS:
        column = "plateau_step" if panel == "steps" else "plateau_sequences"
        fits[panel] = fit_power_law(
            [r["batch_size"] for r in uncensored], [r[column] for r in uncensored]
        )

    batches = sorted({r["batch_size"] for r in rows})
    with figure_style():
        fig = new_figure(figsize=(8.0, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (panel, ylabel) in zip(axes, PANELS, strict=True):
            factor = {b: (1 if panel == "steps" else b) for b in batches}
            for batch in batches:
                group = [r for r in rows if r["batch_size"] == batch]
                for j, r in enumerate(group):
                    x = batch * SEED_SPREAD ** (j - (len(group) - 1) / 2)
                    if r["censored"]:
                        y = r["budget"] * factor[batch]
                        mark_censored(ax, x, y, y * ARROW_FACTOR, "C0")
                    else:
                        y = r["plateau_step"] * factor[batch]
                        ax.scatter([x], [y], s=16, color="C0", alpha=0.7, linewidths=0, zorder=3)
                mean = group[0]["mean_plateau_step"] * factor[batch]
                lower = group[0]["mean_is_lower_bound"]
                ax.scatter(
                    [batch],
                    [mean],
                    s=70,
                    marker="_",
                    color="C3",
                    linewidths=2.0,
                    zorder=4,
                    alpha=0.5 if lower else 1.0,
                )
            fit = fits[panel]
            if fit is not None:
                xs = np.geomspace(min(batches), max(batches), 50)
                ax.plot(xs, fit["prefactor"] * xs ** fit["exponent"], "--", color="0.35", zorder=2)
            ax.set_title(fit_text(fit), fontsize=8)
            if not rows:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
            else:
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.autoscale_view()
                ax.set_xticks(batches, [str(b) for b in batches])
                ax.minorticks_off()
            ax.set_xlabel("batch size B (sequences per step)")
            ax.set_ylabel(ylabel)

        lines = ["Plateau length vs batch size (log-log)"]
        if runs:
            lines[0] += f"; otherwise {describe_settings(runs[0].train, omit_batch=True)}"
        lines.append(
            "dots: seeds; red bar: mean over seeds (faint: lower bound, some censored); "
            "open + arrow: still on the plateau at the budget (not fitted)"
        )
        lines.append(plateau_rule(window, margin))
        if any(r.train.get("curriculum") for r in runs):
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines), fontsize=8)
        save_figure(fig, out_prefix)

    frame = pd.DataFrame.from_records(rows, columns=CSV_COLUMNS)
    for column in ("plateau_step", "plateau_sequences"):
        frame[column] = frame[column].astype("Int64")
    write_csv(frame, out_prefix.with_name(out_prefix.name + ".csv"))
    fit_rows = [{"panel": panel, **fits[panel]} for panel, _ in PANELS if fits[panel] is not None]
    write_csv(fit_rows, out_prefix.with_name(out_prefix.name + "_fit.csv"), columns=FIT_COLUMNS)
