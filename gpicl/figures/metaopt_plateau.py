"""Meta-optimisation (i): the loss plateau early in meta-training, and its tiny gradients.

Two stacked panels sharing the step axis, one colour per run (runs sorted by seed): the training
loss (raw, faint; solid: its `window`-step trailing mean) with ln 10, the loss of the uniform
prediction, and the plateau-end threshold ln 10 - `margin`; below, the gradient norm (log y).
A dashed vertical line marks where each run leaves the plateau (`results.read_runs`, rule
`metrics.plateau_length`); a run that never does says "still on the plateau at step N" in the
legend. Runs that differ in more than the seed are labelled with the difference from the first.

CSV `<prefix>.csv`, one row per run, sorted by seed then run. Columns: run, variant, seed,
batch_size, plateau_step (NA when censored), censored, budget (step budget), final_loss (last
logged loss), grad_norm_plateau (median gradient norm over the steps before the plateau end, or
over all steps when censored), grad_norm_after (median from the plateau end on; NA when
censored); gradient norms in scientific notation (%.6e, as in log.csv), the rest as
`plotting.write_csv` writes it. Also writes `<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from gpicl.metrics import CHANCE_LOSS, PLATEAU_MARGIN, PLATEAU_WINDOW
from gpicl.plotting import (
    CURRICULUM_NOTE,
    describe_settings,
    figure_style,
    new_figure,
    plateau_rule,
    save_figure,
    settings_difference,
    write_csv,
)
from gpicl.results import Run, read_runs

CSV_COLUMNS = (
    "run",
    "variant",
    "seed",
    "batch_size",
    "plateau_step",
    "censored",
    "budget",
    "final_loss",
    "grad_norm_plateau",
    "grad_norm_after",
)


def summary_row(run: Run) -> dict:
    """The CSV row of one run: where the plateau ends and how large the gradients were on it."""
    steps = run.log["step"].to_numpy()
    grads = run.log["grad_norm"].to_numpy(dtype=np.float64)
    if run.censored:
        on, after = grads, grads[:0]
    else:
        on, after = grads[steps < run.plateau_step], grads[steps >= run.plateau_step]
    return {
        "run": run.name,
        "variant": run.variant,
        "seed": run.seed,
        "batch_size": run.batch_size,
        "plateau_step": run.plateau_step,
        "censored": run.censored,
        "budget": run.steps,
        "final_loss": float(run.log["loss"].iloc[-1]) if len(run.log) else None,
        "grad_norm_plateau": float(np.median(on)) if len(on) else None,
        "grad_norm_after": float(np.median(after)) if len(after) else None,
    }


def run_label(run: Run, first: Run, mixed: bool) -> str:
    label = f"seed {run.seed}"
    if mixed:
        label += f" ({settings_difference(run.train, first.train) or 'as ' + first.short_name})"
    if run.censored:
        return f"{label}: still on the plateau at step {run.last_step}"
    return f"{label}: plateau ends at step {run.plateau_step}"


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
) -> None:
    """Draw the plateau figure from run folders (`eval_files` are their done.json files)."""
    out_prefix = Path(out_prefix)
    runs = sorted(read_runs(eval_files, window, margin), key=lambda r: (r.seed, r.name))
    rows = [summary_row(r) for r in runs]
    mixed = len({r.variant for r in runs}) > 1 or any(
        settings_difference(r.train, runs[0].train) for r in runs
    )

    with figure_style():
        fig = new_figure(figsize=(7.0, 6.0), layout="constrained")
        ax_loss, ax_grad = fig.subplots(2, 1, sharex=True)
        for i, run in enumerate(runs):
            color = f"C{i % 10}"
            steps = run.log["step"].to_numpy()
            ax_loss.plot(steps, run.log["loss"], color=color, alpha=0.25, linewidth=0.6)
            x, smooth = run.trailing_loss(window)
            ax_loss.plot(x, smooth, color=color, label=run_label(run, runs[0], mixed))
            ax_grad.plot(steps, run.log["grad_norm"], color=color, linewidth=0.8)
            if not run.censored:
                for ax in (ax_loss, ax_grad):
                    ax.axvline(run.plateau_step, color=color, linestyle="--", linewidth=1.0)
        ax_loss.axhline(CHANCE_LOSS, color="0.3", linestyle=":", linewidth=1.0, label="ln 10")
        ax_loss.axhline(
            CHANCE_LOSS - margin,
            color="0.6",
            linestyle=":",
            linewidth=1.0,
            label=f"ln 10 - {margin:g} (plateau end)",
        )
        if not runs:
            ax_loss.text(0.5, 0.5, "no runs", transform=ax_loss.transAxes, ha="center")
        else:
            losses = np.concatenate([r.log["loss"].to_numpy(dtype=np.float64) for r in runs])
            if len(losses):
                top = min(float(np.max(losses)), CHANCE_LOSS + 1.0)
                ax_loss.set_ylim(max(0.0, float(np.min(losses)) - 0.05), top + 0.05)
        ax_grad.set_yscale("log")
        ax_loss.set_ylabel("training loss (nats)\nfaint: per step; solid: trailing mean")
        ax_grad.set_ylabel("gradient norm")
        ax_grad.set_xlabel("meta-training step")
        ax_loss.legend(loc="lower left", fontsize=7)

        lines = ["Meta-training loss plateau"]
        if runs and not mixed:
            lines[0] += f": {describe_settings(runs[0].train)}"
        lines.append(f"{plateau_rule(window, margin)}; dashed: plateau end")
        if any(r.train.get("curriculum") for r in runs):
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines), fontsize=9)
        save_figure(fig, out_prefix)

    frame = pd.DataFrame.from_records(rows, columns=CSV_COLUMNS)
    frame["plateau_step"] = frame["plateau_step"].astype("Int64")
    for column in ("grad_norm_plateau", "grad_norm_after"):  # tiny: 6 decimals would lose them
        frame[column] = [None if pd.isna(v) else f"{v:.6e}" for v in frame[column]]
    write_csv(frame, out_prefix.with_name(out_prefix.name + ".csv"))
