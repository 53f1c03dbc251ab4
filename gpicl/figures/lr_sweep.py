"""The meta-trained Table 1 rows' learning-rate sweep, as a table.

Each row of Table 1 that meta-trains (the GPICL Transformer, MAML, VSML, the LSTM) is trained
at each learning rate of the sweep on a shortened budget (`gpicl.config.scaled_budget`) and
scored on the validation set (MNIST's training split under unseen task ids of its own: never the
test sequences). Per row and learning rate: the last-position accuracy on unseen validation tasks
(pooled over the sweep's seeds), the final training loss and whether training ended on the loss
plateau; each run's training CPU-minutes go to a separate `<prefix>_time.csv`, since measured
times differ between reruns and the table does not.

A run whose training loss ends on the plateau (the mean of its last `PLATEAU_WINDOW` steps
within `PLATEAU_MARGIN` of ln 10, as `metrics.classify_phase` reads "stuck") has learned nothing
to compare; a learning rate counts as on the plateau when every seed's run ended there. The best
learning rate of a row (ties: the smaller) is chosen among those that left it; a row with every
learning rate on the plateau names no best, and the table says the sweep cannot choose for it at
that budget. Without a sweep (or without MNIST data to score it on) the table says so. The best
is set beside the lr Table 1 trains the row with (`row_lrs`, from params.yaml): the sweep informs
params.yaml, it never retrains Table 1 by itself.

Writes `<prefix>.md`, `<prefix>.csv` (`CSV_COLUMNS`, one row per method and learning rate) and
`<prefix>_time.csv` (`TIME_COLUMNS`, one row per run).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from gpicl.figures.table1 import row_order
from gpicl.io import write_text
from gpicl.metrics import CHANCE_LOSS, PLATEAU_MARGIN, PLATEAU_WINDOW, final_loss
from gpicl.plotting import METHOD_LABELS, write_csv
from gpicl.results import (
    Run,
    check_correct_last,
    compute_minutes,
    read_eval_results,
    read_run,
)

TASK_SET = "unseen"
VALIDATION_SPLIT = "train"  # evaluation records of the validation set (gpicl.cache)
CSV_COLUMNS = (
    "method",
    "lr",
    "seeds",
    "steps",
    "validation_accuracy",
    "count",
    "final_loss",
    "on_plateau",
    "best",
    "table1_lr",
    "agrees",
)
TIME_COLUMNS = ("run", "method", "lr", "seed", "steps", "cpu_minutes", "wall_minutes")


def ends_on_plateau(run: Run) -> bool:
    """The run's training loss ends on the plateau: the mean of its last `PLATEAU_WINDOW`
    losses (all, if fewer) within `PLATEAU_MARGIN` of ln 10 (`metrics.classify_phase`'s
    "stuck")."""
    return final_loss(run.log["loss"].to_numpy(), PLATEAU_WINDOW) > CHANCE_LOSS - PLATEAU_MARGIN


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def sweep_rows(
    eval_files: Iterable[str | os.PathLike],
    run_files: Iterable[str | os.PathLike],
    row_lrs: Mapping[str, float],
) -> list[dict]:
    """One row per (method, learning rate), in Table 1's row order then by lr; see the module
    docstring."""
    runs = {}
    for done_path in map(Path, run_files):
        run = read_run(done_path)
        runs[run.name] = (run, compute_minutes(done_path))
    groups: dict[tuple[str, float], list] = defaultdict(list)
    for path, record in read_eval_results(eval_files, TASK_SET, keys=("run", "split")):
        check_correct_last(path, record, TASK_SET)
        if record["split"] != VALIDATION_SPLIT:
            raise ValueError(f"{path}: the sweep is scored on the validation set, not a test split")
        if record["run"] not in runs:
            raise ValueError(f"{path}: no finished run {record['run']} among the sweep's runs")
        run, cpu = runs.pop(record["run"])
        groups[(record["method"], float(run.train["lr"]))].append((record, run, cpu))
    if runs:
        raise ValueError(f"lr sweep: runs without a validation evaluation: {sorted(runs)}")
    order = row_order({method for method, _ in groups})
    rows = []
    for (method, lr), members in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
    ):
        stats = [m[0]["task_sets"][TASK_SET] for m in members]
        steps = {m[1].steps for m in members}
        if len(steps) != 1:
            raise ValueError(f"lr sweep: {method} at lr {lr:g} has runs of {sorted(steps)} steps")
        count = sum(int(s["num_sequences"]) for s in stats)
        rows.append(
            {
                "method": method,
                "lr": lr,
                "seeds": ";".join(str(m[1].seed) for m in sorted(members, key=lambda m: m[1].seed)),
                "steps": steps.pop(),
                "validation_accuracy": sum(int(s["correct_last"]) for s in stats) / count,
                "count": count,
                "final_loss": sum(m[1].done["final_loss"] for m in members) / len(members),
                "on_plateau": all(ends_on_plateau(m[1]) for m in members),
                "_times": [
                    {
                        "run": m[1].name,
                        "method": method,
                        "lr": lr,
                        "seed": m[1].seed,
                        "steps": m[1].steps,
                        "cpu_minutes": m[2][0],
                        "wall_minutes": m[2][1],
                    }
                    for m in members
                ],
            }
        )
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        learned = [r for r in mine if not r["on_plateau"]]
        best = max(learned, key=lambda r: (r["validation_accuracy"], -r["lr"]), default=None)
        used = row_lrs.get(method)
        for row in mine:
            row["best"] = row is best
            row["table1_lr"] = used
            # None: nothing to agree with (no best, or not a Table 1 row of this tier)
            row["agrees"] = None if best is None or used is None else _same(best["lr"], used)
            row["_swept"] = used is not None and any(_same(r["lr"], used) for r in mine)
    return rows


def _verdict(label: str, mine: list[dict]) -> str:
    """One line: how the lr the row trains with compares with the sweep's best."""
    best = next((r for r in mine if r["best"]), None)
    used = mine[0]["table1_lr"]
    if best is None:
        keeps = f"; Table 1 trains it with lr {used:g}" if used is not None else ""
        return (
            f"- {label}: every learning rate ended on the loss plateau, so the sweep cannot "
            f"choose at this budget{keeps}"
        )
    if used is None:
        return f"- {label}: best lr {best['lr']:g}; not a Table 1 row of this tier"
    if best["agrees"]:
        return f"- {label}: lr {used:g}, the sweep's best"
    if not best["_swept"]:
        return (
            f"- {label}: lr {used:g}, not among the swept learning rates (the sweep's best: "
            f"{best['lr']:g})"
        )
    return (
        f"- {label}: lr {used:g}, **not the sweep's best ({best['lr']:g})**: set it in "
        "params.yaml to train the row with the best"
    )


NO_SWEEP = (
    "# Learning rates of Table 1's meta-trained rows\n\n"
    "No learning-rate sweep in this tier (experiments.table1.lr_sweep), or no MNIST data to "
    "score it on: every row trains with the lr params.yaml gives it, unchecked.\n"
)


def markdown(rows: list[dict], fraction: float | None) -> str:
    budget = f"{fraction:g} of each row's steps" if fraction is not None else "a shortened budget"
    lines = [
        "# Learning rates of Table 1's meta-trained rows",
        "",
        f"Each row trained at each learning rate on {budget} (warm-up, curriculum and "
        "checkpoints scaled alike); accuracy of the last prediction on unseen tasks of the "
        "validation set (MNIST training split, task ids of its own), pooled over the sweep's "
        "seeds. On the plateau: the mean training loss of the last "
        f"{PLATEAU_WINDOW} steps within {PLATEAU_MARGIN:g} of ln 10. **Bold**: the row's best "
        "learning rate among the runs that left the plateau.",
        "",
        "| method | lr | steps | validation accuracy (n) | final training loss | on the plateau |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        accuracy = f"{100 * r['validation_accuracy']:.2f}% ({r['count']})"
        lr = f"**{r['lr']:g}**" if r["best"] else f"{r['lr']:g}"
        lines.append(
            f"| {METHOD_LABELS.get(r['method'], r['method'])} | {lr} | {r['steps']:,} | "
            f"{accuracy} | {r['final_loss']:.4f} | {'yes' if r['on_plateau'] else 'no'} |"
        )
    lines += ["", "Table 1 trains each row with:", ""]
    for method in dict.fromkeys(r["method"] for r in rows):
        label = METHOD_LABELS.get(method, method)
        lines.append(_verdict(label, [r for r in rows if r["method"] == method]))
    return "\n".join(lines) + "\n"


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    run_files: Iterable[str | os.PathLike] = (),
    row_lrs: Mapping[str, float] | None = None,
    fraction: float | None = None,
) -> None:
    """Write the sweep's table. `row_lrs`: method -> the lr Table 1 trains it with;
    `fraction`: the share of each row's steps the sweep trained (for the text)."""
    out_prefix = Path(out_prefix)
    rows = sweep_rows(eval_files, run_files, row_lrs or {})
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    times = [t for r in rows for t in r["_times"]]
    write_csv(public, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_csv(times, out_prefix.with_name(out_prefix.name + "_time.csv"), columns=TIME_COLUMNS)
    text = markdown(rows, fraction) if rows else NO_SWEEP
    write_text(out_prefix.with_name(out_prefix.name + ".md"), text)
