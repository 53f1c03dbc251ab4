"""The meta-trained Table 1 rows' learning-rate sweep, as a table.

Each row of Table 1 that meta-trains (the GPICL Transformer, MAML, VSML, the LSTM) is trained
at each learning rate of the sweep on a shortened budget (`gpicl.config.scaled_budget`) and
scored on the validation set (MNIST's training split under unseen task ids of its own: never the
test sequences). Per row and learning rate: the last-position accuracy on unseen validation tasks
(pooled over the sweep's seeds), the final training loss and the training CPU-minutes; the best
learning rate (ties: the smaller) is marked and set beside the one Table 1 trains the row with
(`row_lrs`, from params.yaml). A row whose best differs says so: the sweep informs params.yaml,
it never retrains Table 1 by itself.

Writes `<prefix>.md` and `<prefix>.csv` (`CSV_COLUMNS`, one row per method and learning rate).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from gpicl.figures.table1 import row_order
from gpicl.io import write_text
from gpicl.plotting import METHOD_LABELS, write_csv
from gpicl.results import (
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
    "cpu_minutes",
    "best",
    "table1_lr",
    "agrees",
)


def sweep_rows(
    eval_files: Iterable[str | os.PathLike],
    run_files: Iterable[str | os.PathLike],
    row_lrs: Mapping[str, float],
) -> list[dict]:
    """One row per (method, learning rate), by method then lr; see the module docstring."""
    runs = {}
    for done_path in map(Path, run_files):
        run = read_run(done_path)
        runs[run.name] = (run, compute_minutes(done_path)[0])
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
    rows = []
    order = row_order({method for method, _ in groups})
    for (method, lr), members in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
    ):
        stats = [m[0]["task_sets"][TASK_SET] for m in members]
        correct = sum(int(s["correct_last"]) for s in stats)
        count = sum(int(s["num_sequences"]) for s in stats)
        steps = {m[1].steps for m in members}
        if len(steps) != 1:
            raise ValueError(f"lr sweep: {method} at lr {lr:g} has runs of {sorted(steps)} steps")
        rows.append(
            {
                "method": method,
                "lr": lr,
                "seeds": ";".join(str(m[1].seed) for m in sorted(members, key=lambda m: m[1].seed)),
                "steps": steps.pop(),
                "validation_accuracy": correct / count,
                "count": count,
                "final_loss": sum(m[1].done["final_loss"] for m in members) / len(members),
                "cpu_minutes": sum(m[2] for m in members) / len(members),
            }
        )
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        best = max(mine, key=lambda r: (r["validation_accuracy"], -r["lr"]))
        used = row_lrs.get(method)
        for row in mine:
            row["best"] = row is best
            row["table1_lr"] = used
            row["agrees"] = used is not None and _same(best["lr"], used)
            row["swept"] = used is not None and any(_same(r["lr"], used) for r in mine)
    return rows


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def markdown(rows: list[dict], fraction: float | None) -> str:
    budget = f"{fraction:g} of each row's steps" if fraction is not None else "a shortened budget"
    lines = [
        "# Learning rates of Table 1's meta-trained rows",
        "",
        f"Each row trained at each learning rate on {budget} (warm-up, curriculum and "
        "checkpoints scaled alike); accuracy of the last prediction on unseen tasks of the "
        "validation set (MNIST training split, task ids of its own), pooled over the sweep's "
        "seeds. **Bold**: the best learning rate of the row.",
        "",
        "| method | lr | steps | validation accuracy (n) | final training loss | CPU-min |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        accuracy = f"{100 * r['validation_accuracy']:.2f}% ({r['count']})"
        lr = f"**{r['lr']:g}**" if r["best"] else f"{r['lr']:g}"
        lines.append(
            f"| {METHOD_LABELS.get(r['method'], r['method'])} | {lr} | {r['steps']:,} | "
            f"{accuracy} | {r['final_loss']:.4f} | {r['cpu_minutes']:.2f} |"
        )
    lines += ["", "Table 1 trains each row with:", ""]
    for r in (r for r in rows if r["best"]):
        label = METHOD_LABELS.get(r["method"], r["method"])
        if r["table1_lr"] is None:
            lines.append(f"- {label}: best lr {r['lr']:g}; not a Table 1 row of this tier")
        elif r["agrees"]:
            lines.append(f"- {label}: lr {r['table1_lr']:g}, the sweep's best")
        elif not r["swept"]:
            lines.append(
                f"- {label}: lr {r['table1_lr']:g}, not among the swept learning rates (the "
                f"sweep's best: {r['lr']:g})"
            )
        else:
            lines.append(
                f"- {label}: lr {r['table1_lr']:g}, **not the sweep's best ({r['lr']:g})**: "
                "set it in params.yaml to train the row with the best"
            )
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
    if not rows:
        raise ValueError("lr sweep: no evaluation files")
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_text(out_prefix.with_name(out_prefix.name + ".md"), markdown(rows, fraction))
