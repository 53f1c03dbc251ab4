"""One module per paper figure or table; each `make(eval_files, out_prefix, ...)` reads result
files only (evaluation JSONs; for the meta-optimisation figures, training runs' done.json with
log.csv and probe.csv beside it) and writes the figure (PNG + SVG + CSV) or table (Markdown +
CSV) under `out_prefix`.

`FIGURES` maps the CLI's name to that function: `gpicl figure fig3 --out results/figures/fig3 ...`.
"""

from collections.abc import Callable

from gpicl.figures import (
    fig2_heatmaps,
    fig3_learning_curves,
    fig4_transitions,
    metaopt_batch,
    metaopt_bias,
    metaopt_interventions,
    metaopt_phase,
    metaopt_plateau,
    state_size,
    table1,
)

FIGURES: dict[str, Callable[..., None]] = {
    "fig2": fig2_heatmaps.make,
    "fig3": fig3_learning_curves.make,
    "fig4": fig4_transitions.make,
    "table1": table1.make,
    "state_size": state_size.make,
    "metaopt_plateau": metaopt_plateau.make,
    "metaopt_batch": metaopt_batch.make,
    "metaopt_phase": metaopt_phase.make,
    "metaopt_interventions": metaopt_interventions.make,
    "metaopt_bias": metaopt_bias.make,
}

__all__ = ["FIGURES"]
