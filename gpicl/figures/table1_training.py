"""How each Table 1 method's meta-training went on its budget: training loss and accuracy.

One line per method, the mean over its seeds of the training loss (left) and accuracy (right)
averaged over `slices` equal slices of each run's steps, against the fraction of the run done.
The methods train for different numbers of steps (on the `cpu` tier sized to about the same
training time), so the x axis is the share of each run, not steps. A dotted line marks chance
(ln 10 nats, 10%) and a marker on each line where its curriculum ends (i.i.d. training sequences
after it, as in evaluation). A Table 1 row at chance shows here why: stuck on the plateau from
the start, or learned on repeated exemplars and lost it once the sequences became i.i.d.

Reads the Table 1 runs that meta-train (SGD's runs train nothing) and Figure 3's MNIST runs (the
GPICL row); the method of a run is the model type in its config.json. Writes `<prefix>.png`,
`<prefix>.svg` and `<prefix>.csv` (one row per method and slice, `CSV_COLUMNS`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from gpicl.config import iid_from_step
from gpicl.io import read_json
from gpicl.metrics import CHANCE, CHANCE_LOSS
from gpicl.plotting import METHOD_LABELS, new_figure, save_figure, write_csv
from gpicl.results import read_run

# The paper's row order (gpicl.figures.table1), then any other method.
METHOD_ORDER = ("sgd", "maml", "vsml", "lstm", "transformer")
CSV_COLUMNS = (
    "method",
    "runs",
    "seeds",
    "steps",
    "sequences_per_step",
    "iid_from_step",
    "slice",
    "first_step",
    "last_step",
    "fraction_done",
    "loss",
    "accuracy",
)


def slice_means(values: np.ndarray, slices: int) -> np.ndarray:
    """Means of `values` over `slices` consecutive, nearly equal parts."""
    if len(values) < slices:
        raise ValueError(f"{len(values)} logged steps cannot fill {slices} slices")
    return np.array([part.mean() for part in np.array_split(values, slices)])


def slice_count(runs: list, slices: int) -> int:
    """`slices`, or one slice per logged step for runs shorter than that (the ci tier)."""
    return min(slices, min(len(r.log) for r in runs))


def method_rows(method: str, runs: list, slices: int) -> list[dict]:
    """The CSV rows of one method: per slice, the mean over seeds of each run's slice mean."""
    first = runs[0]
    for run in runs[1:]:
        if (run.steps, run.batch_size) != (first.steps, first.batch_size):
            raise ValueError(
                f"{method}: runs {first.name} and {run.name} differ in steps or batch; "
                "their curves cannot be averaged"
            )
    slices = slice_count(runs, slices)
    loss = np.mean([slice_means(r.log["loss"].to_numpy(np.float64), slices) for r in runs], 0)
    acc = np.mean([slice_means(r.log["accuracy"].to_numpy(np.float64), slices) for r in runs], 0)
    bounds = np.array_split(first.log["step"].to_numpy(), slices)
    return [
        {
            "method": method,
            "runs": ";".join(r.name for r in runs),
            "seeds": ";".join(str(r.seed) for r in runs),
            "steps": first.steps,
            "sequences_per_step": first.batch_size,
            "iid_from_step": iid_from_step(first.train),
            "slice": i,
            "first_step": int(part[0]),
            "last_step": int(part[-1]),
            "fraction_done": int(part[-1]) / first.steps,
            "loss": float(loss[i]),
            "accuracy": float(acc[i]),
        }
        for i, part in enumerate(bounds)
    ]


def make(run_files: list[Path], out_prefix: Path, slices: int = 50) -> None:
    # Not read_runs: runs of different methods may share a seed and training settings.
    runs = [read_run(p) for p in run_files]
    if not runs:
        raise ValueError("table1_training: no runs to draw")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"table1_training: a run given twice among {names}")
    by_method: dict[str, list] = defaultdict(list)
    for run in runs:
        method = read_json(run.path.with_name("config.json"))["model"]["type"]
        by_method[method].append(run)
    order = [m for m in METHOD_ORDER if m in by_method] + sorted(set(by_method) - set(METHOD_ORDER))
    rows = [row for m in order for row in method_rows(m, by_method[m], slices)]

    fig = new_figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for method in order:
        mine = [r for r in rows if r["method"] == method]
        x = [r["fraction_done"] for r in mine]
        first = mine[0]
        label = (
            f"{METHOD_LABELS.get(method, method)} ({first['steps']:,} x "
            f"{first['sequences_per_step']} seqs, {len(by_method[method])} seed(s))"
        )
        iid = first["iid_from_step"] / first["steps"]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            (line,) = ax.plot(x, [r[key] for r in mine], label=label if ax is ax_loss else None)
            if 0 < iid < 1:  # where the curriculum ends on this line
                ax.plot(
                    [iid],
                    [np.interp(iid, x, [r[key] for r in mine])],
                    "o",
                    color=line.get_color(),
                    markersize=5,
                )
    ax_loss.axhline(CHANCE_LOSS, color="0.5", linestyle=":", label="chance (ln 10)")
    ax_acc.axhline(CHANCE, color="0.5", linestyle=":")
    ax_loss.set(xlabel="fraction of the run's steps", ylabel="training loss (nats)")
    ax_acc.set(xlabel="fraction of the run's steps", ylabel="training accuracy (all positions)")
    ax_loss.legend(fontsize=7)
    fig.suptitle(
        "Table 1's meta-training on MNIST, each method on its tier's budget (legend); "
        "dot: curriculum ends (i.i.d. after)",
        fontsize=9,
    )
    save_figure(fig, out_prefix)
    write_csv(rows, Path(f"{out_prefix}.csv"), CSV_COLUMNS)
