"""Meta-optimisation (iii-v): which lever shortens the plateau.

Runs are grouped by their training settings (a group differs only in the seed). The reference
group is the runs of `reference_variant` (the `variant` of done.json); every other group is
labelled by how its settings differ from the reference (`plotting.settings_difference`, e.g.
"eps_root=0", "bias_fraction=0.3", "curriculum K=10..", "batch 256") and groups are ordered by
the lever they turn, then its value.

Top panel: plateau length in steps (`metrics.plateau_length` via `results.read_runs`) per group:
one dot per seed, a bar at the mean over seeds with censored runs (never left the plateau)
counted at their budget, hatched when that makes it a lower bound; censored runs are open markers
at the budget with an up-arrow. Bottom panel: the trailing-mean training loss of each group's
first seed, with ln 10.

CSV `<prefix>.csv`, one row per run, groups in drawing order, seeds ascending. Columns: group
(the label; "reference" for the reference), variant, run, seed, is_reference, batch_size,
plateau_step (NA when censored), censored, budget, group_mean_plateau_step,
group_mean_is_lower_bound, group_n_runs, group_n_censored, curve_drawn (this run's loss is the
group's curve in the bottom panel). Also writes `<prefix>.png` and `<prefix>.svg`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gpicl.metrics import CHANCE_LOSS, PLATEAU_MARGIN, PLATEAU_WINDOW, censored_mean
from gpicl.plotting import (
    CURRICULUM_NOTE,
    describe_settings,
    difference_sort_key,
    figure_style,
    mark_censored,
    new_figure,
    plateau_rule,
    reference_group,
    save_figure,
    settings_difference,
    write_csv,
)
from gpicl.results import Run, group_by_settings, read_runs

CSV_COLUMNS = (
    "group",
    "variant",
    "run",
    "seed",
    "is_reference",
    "batch_size",
    "plateau_step",
    "censored",
    "budget",
    "group_mean_plateau_step",
    "group_mean_is_lower_bound",
    "group_n_runs",
    "group_n_censored",
    "curve_drawn",
)
REFERENCE_LABEL = "reference"
SEED_SPREAD = 0.3  # width over which one group's seeds are spread on the x axis
ARROW_FRACTION = 0.06  # a censored run's up-arrow, as a fraction of the y range


def labelled_groups(
    runs: Sequence[Run], reference_variant: str | None, what: str
) -> list[tuple[str, list[Run]]]:
    """(label, runs) per settings group: the reference first, then by lever and value. Labels
    that would coincide get the variant name (or a number) appended."""
    reference = reference_group(runs, reference_variant, what)
    ref_train = reference[0].train
    others = [g for g in group_by_settings(runs) if g[0] not in reference]
    others.sort(key=lambda g: (difference_sort_key(g[0].train, ref_train), g[0].name))
    labelled = [(REFERENCE_LABEL, reference)]
    seen = {REFERENCE_LABEL}
    for i, group in enumerate(others):
        label = settings_difference(group[0].train, ref_train)
        if label in seen:
            variant = group[0].variant
            label = f"{label} [{variant if variant is not None else i + 1}]"
        seen.add(label)
        labelled.append((label, group))
    return labelled


def table(groups: Sequence[tuple[str, list[Run]]]) -> list[dict]:
    rows = []
    for label, group in groups:
        lengths = [r.steps if r.censored else r.plateau_step for r in group]
        mean, lower = censored_mean(lengths, [r.censored for r in group])
        for j, run in enumerate(group):
            rows.append(
                {
                    "group": label,
                    "variant": run.variant,
                    "run": run.name,
                    "seed": run.seed,
                    "is_reference": label == REFERENCE_LABEL,
                    "batch_size": run.batch_size,
                    "plateau_step": run.plateau_step,
                    "censored": run.censored,
                    "budget": run.steps,
                    "group_mean_plateau_step": mean,
                    "group_mean_is_lower_bound": lower,
                    "group_n_runs": len(group),
                    "group_n_censored": sum(r.censored for r in group),
                    "curve_drawn": j == 0,
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
    """Draw the interventions figure from run folders (`eval_files`: their done.json)."""
    out_prefix = Path(out_prefix)
    runs = read_runs(eval_files, window, margin)
    groups = labelled_groups(runs, reference_variant, "metaopt_interventions")
    rows = table(groups)

    with figure_style():
        fig = new_figure(figsize=(7.0, 7.5), layout="constrained")
        ax_bar, ax_loss = fig.subplots(2, 1, height_ratios=(1.1, 1.0))
        top = max(max(r["budget"] for r in rows), max(r["plateau_step"] or 0 for r in rows))
        arrow = ARROW_FRACTION * top
        for i, (label, group) in enumerate(groups):
            color = f"C{i % 10}"
            sel = [r for r in rows if r["group"] == label]
            mean, lower = sel[0]["group_mean_plateau_step"], sel[0]["group_mean_is_lower_bound"]
            ax_bar.bar(
                [i],
                [mean],
                width=0.6,
                color=color,
                alpha=0.3,
                hatch="//" if lower else None,
                edgecolor=color,
                linewidth=0.8,
                zorder=1,
            )
            for j, r in enumerate(sel):
                x = i + (SEED_SPREAD * (j / (len(sel) - 1) - 0.5) if len(sel) > 1 else 0.0)
                if r["censored"]:
                    mark_censored(ax_bar, x, r["budget"], r["budget"] + arrow, color)
                else:
                    ax_bar.scatter([x], [r["plateau_step"]], s=18, color=color, zorder=3)
            x, smooth = group[0].trailing_loss(window)
            # The reference is drawn wide and underneath, so a lever that changes nothing
            # (its curve on top of the reference's) still shows both.
            is_ref = label == REFERENCE_LABEL
            ax_loss.plot(
                x,
                smooth,
                color=color,
                linewidth=3.5 if is_ref else 1.2,
                alpha=0.45 if is_ref else 1.0,
                zorder=1 if is_ref else 2,
                label=f"{label} (seed {group[0].seed})",
            )
            if not group[0].censored:
                ax_loss.axvline(group[0].plateau_step, color=color, linestyle="--", linewidth=0.8)
        ax_bar.set_xticks(
            range(len(groups)), [label for label, _ in groups], rotation=25, ha="right"
        )
        ax_bar.set_xlim(-0.6, len(groups) - 0.4)
        ax_bar.set_ylim(0, top * 1.12)
        ax_bar.grid(axis="x", visible=False)
        ax_bar.set_ylabel("plateau length (steps)")
        ax_loss.axhline(CHANCE_LOSS, color="0.3", linestyle=":", linewidth=1.0, label="ln 10")
        losses = np.concatenate([g[0].log["loss"].to_numpy(dtype=np.float64) for _, g in groups])
        if len(losses):
            ax_loss.set_ylim(
                max(0.0, float(np.min(losses)) - 0.05),
                min(float(np.max(losses)), CHANCE_LOSS + 1.0) + 0.05,
            )
        ax_loss.set_xlabel("meta-training step")
        ax_loss.set_ylabel(f"training loss, {window}-step trailing mean")
        ax_loss.legend(loc="lower left", fontsize=7)

        reference = groups[0][1][0]
        name = f" ({reference_variant})" if reference_variant is not None else ""
        lines = [
            "Plateau length per intervention; "
            f"reference{name}: {describe_settings(reference.train)}",
            "dots: seeds; bar: mean over seeds (hatched: lower bound, some censored); "
            "open + arrow: still on the plateau at the budget",
            f"{plateau_rule(window, margin)}; bottom: first seed of each, dashed: plateau end",
        ]
        if reference.train.get("curriculum"):
            lines.append(CURRICULUM_NOTE)
        fig.suptitle("\n".join(lines), fontsize=8)
        save_figure(fig, out_prefix)

    frame = pd.DataFrame.from_records(rows, columns=CSV_COLUMNS)
    frame["plateau_step"] = frame["plateau_step"].astype("Int64")
    write_csv(frame, out_prefix.with_name(out_prefix.name + ".csv"))
