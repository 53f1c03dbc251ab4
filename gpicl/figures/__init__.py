"""One module per paper figure or table; each `make(eval_files, out_prefix, ...)` reads evaluation
files only and writes the figure (PNG + SVG + CSV) or table (Markdown + CSV) under `out_prefix`.

`FIGURES` maps the CLI's name to that function: `gpicl figure fig3 --out results/figures/fig3 ...`.
"""

from collections.abc import Callable

from gpicl.figures import (
    fig2_heatmaps,
    fig3_learning_curves,
    fig4_transitions,
    state_size,
    table1,
)

FIGURES: dict[str, Callable[..., None]] = {
    "fig2": fig2_heatmaps.make,
    "fig3": fig3_learning_curves.make,
    "fig4": fig4_transitions.make,
    "table1": table1.make,
    "state_size": state_size.make,
}

__all__ = [
    "FIGURES",
    "fig2_heatmaps",
    "fig3_learning_curves",
    "fig4_transitions",
    "state_size",
    "table1",
]
