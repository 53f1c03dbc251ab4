"""Figure style, one deterministic savefig, fixed-format CSV, and reading evaluation files.

The same result files must give byte-identical PNG/SVG/CSV on every run: figures are drawn under
the repo's `matplotlibrc` (on top of matplotlib's defaults, never the user's rc), and saved
without dates or software versions, with a fixed SVG id salt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gpicl.io import atomic_path, read_json

RC_FILE = Path(__file__).with_name("matplotlibrc")

# Metadata keys set to None are left out of the file; these are the ones that carry a date or a
# software version by default.
PNG_METADATA: dict[str, Any] = {"Software": None}
SVG_METADATA: dict[str, Any] = {"Date": None, "Creator": None}

CSV_FLOAT_FORMAT = "%.6f"
CSV_NA = "NA"

CURRICULUM_NOTE = "trained with exemplar-repetition curriculum (deviation)"

# Display names of the meta-test datasets, in the paper's column order.
DATASET_LABELS: dict[str, str] = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion MNIST",
    "kmnist": "KMNIST",
    "random": "Random",
    "cifar10": "CIFAR10",
    "svhn": "SVHN",
}

# Display names of the methods (the `method` key of evaluation files), as in the paper's Table 1.
METHOD_LABELS: dict[str, str] = {
    "sgd": "SGD",
    "maml": "MAML",
    "vsml": "VSML",
    "lstm": "LSTM",
    "transformer": "GPICL Transformer",
    "outer_lstm": "Outer-product LSTM",
}

EVAL_KEYS = (
    "run",
    "train_dataset",
    "dataset",
    "seed",
    "tier",
    "method",
    "curriculum",
    "sequence_length",
    "task_sets",
)
TASK_SET_KEYS = ("num_tasks", "num_sequences", "accuracy", "loss", "correct_last")


def apply_style() -> None:
    """Reset rcParams to matplotlib's defaults, then apply the repo's matplotlibrc."""
    matplotlib.rc_file(RC_FILE, use_default_template=True)


apply_style()


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Draw and save under the repo style even if rcParams were changed after import."""
    with matplotlib.rc_context():
        apply_style()
        yield


def new_figure(**figure_kwargs: Any) -> Figure:
    """A figure on its own Agg canvas: no pyplot state, no dependence on the active backend."""
    fig = Figure(**figure_kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_prefix: str | os.PathLike) -> list[Path]:
    """Write `<prefix>.png` and `<prefix>.svg` atomically, byte-identical for identical figures."""
    out_prefix = Path(out_prefix)
    written = []
    with figure_style():
        for fmt, metadata in (("png", PNG_METADATA), ("svg", SVG_METADATA)):
            path = out_prefix.with_name(out_prefix.name + "." + fmt)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata=dict(metadata))
            written.append(path)
    return written


def write_csv(
    data: pd.DataFrame | Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
) -> Path:
    """Atomic CSV with fixed float formatting (6 decimals), "NA" for missing, "\\n" line ends.

    `data` is a DataFrame or an iterable of row dicts; `columns` selects and orders the columns
    (and gives the header when there are no rows).
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(list(data))
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(
            tmp,
            index=False,
            float_format=CSV_FLOAT_FORMAT,
            na_rep=CSV_NA,
            lineterminator="\n",
            encoding="utf-8",
        )
    return path


def read_eval_results(
    paths: Iterable[str | os.PathLike], task_set: str = "unseen"
) -> list[tuple[Path, dict[str, Any]]]:
    """Read evaluation JSON files (results/eval/<experiment>/<run>/<dataset>.json) and check the
    keys a figure uses, so a malformed file fails here with its name rather than mid-plot."""
    results = []
    for path in map(Path, paths):
        record = read_json(path)
        missing = [key for key in EVAL_KEYS if key not in record]
        if missing:
            raise ValueError(f"{path}: evaluation file lacks keys {missing}")
        if task_set not in record["task_sets"]:
            raise ValueError(f"{path}: evaluation file has no task set {task_set!r}")
        stats = record["task_sets"][task_set]
        missing = [key for key in TASK_SET_KEYS if key not in stats]
        if missing:
            raise ValueError(f"{path}: task set {task_set!r} lacks keys {missing}")
        if len(stats["accuracy"]) != record["sequence_length"]:
            raise ValueError(
                f"{path}: {task_set} accuracy has {len(stats['accuracy'])} positions, "
                f"sequence_length is {record['sequence_length']}"
            )
        results.append((path, record))
    return results


def single_value(results: Sequence[tuple[Path, dict[str, Any]]], key: str, what: str) -> Any:
    """The one value of `key` shared by all results; mixing them in one figure is an error."""
    values = sorted({str(record[key]) for _, record in results})
    if len(values) > 1:
        files = ", ".join(str(path) for path, _ in results)
        raise ValueError(f"{what} mixes {key} values {values}: {files}")
    return results[0][1][key] if results else None


def reject_duplicates(
    results: Sequence[tuple[Path, dict[str, Any]]], keys: Sequence[str], what: str
) -> None:
    """Two files for the same (e.g.) train dataset, test dataset and seed would be counted twice."""
    seen: dict[tuple, Path] = {}
    for path, record in results:
        key = tuple(record[k] for k in keys)
        if key in seen:
            raise ValueError(
                f"{what}: {seen[key]} and {path} both give {dict(zip(keys, key, strict=True))}"
            )
        seen[key] = path
