"""The headline numbers as one JSON record, for `dvc metrics show` / `dvc metrics diff`:
Table 1's last-position accuracy per method and meta-test dataset, and the final training loss
and accuracy of every run that feeds Table 1 and Figure 3."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gpicl.figures import table1
from gpicl.io import write_text
from gpicl.results import read_run


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    run_files: Iterable[str | os.PathLike] = (),
    status_files: Iterable[str | os.PathLike] = (),
) -> None:
    import json

    rows, *_ = table1.table(eval_files, status_files=status_files)
    cells: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["ours_accuracy"] is not None:
            cells.setdefault(row["method"], {})[row["dataset"]] = round(row["ours_accuracy"], 6)
    runs = {}
    for path in sorted(Path(p) for p in run_files):
        done = read_run(path).done
        runs[done["name"]] = {
            "final_loss": done["final_loss"],
            "final_accuracy": done["final_accuracy"],
        }
    record = {"table1_last_accuracy_unseen": cells, "runs": runs}
    out = Path(out_prefix)
    # Plain JSON (no digest key): DVC reads every number in a metrics file as a metric.
    write_text(
        out.with_name(out.name + ".json"), json.dumps(record, sort_keys=True, indent=1) + "\n"
    )
