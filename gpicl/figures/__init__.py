"""One module per paper figure or table; each `make(files, out_prefix, ...)` reads result files
only (evaluation JSONs; for the meta-optimisation figures, training runs' done.json with log.csv
and probe.csv beside it) and writes the figure (PNG + SVG + CSV) or table (Markdown + CSV) under
`out_prefix`.

`registry.REGISTRY` declares every figure (what it reads, its options, outputs and caption);
`FIGURES` maps each name to its `make`, imported on first use so that planning the workflow
does not load matplotlib.
"""

from collections.abc import Callable


def __getattr__(name: str):
    if name == "FIGURES":
        from gpicl.figures.registry import REGISTRY

        figures: dict[str, Callable[..., None]] = {n: f.make() for n, f in REGISTRY.items()}
        return figures
    raise AttributeError(f"module 'gpicl.figures' has no attribute {name!r}")


__all__ = ["FIGURES"]
