"""Figure style, one deterministic savefig, fixed-format CSV, and the labels and marks that
several figures share (task counts, training settings, the plateau rule, censored runs).

The same result files must give byte-identical PNG/SVG/CSV on every run: figures are drawn under
the repo's `matplotlibrc` (on top of matplotlib's defaults, never the user's rc), and saved
without dates or software versions, with a fixed SVG id salt. Reading result files is
`gpicl.results`'s job; the numbers drawn come from `gpicl.metrics`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gpicl.io import atomic_path
from gpicl.metrics import CHANCE_LOSS
from gpicl.results import Run, group_by_settings, training_settings

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
    "sgd_tuned": "SGD, tuned lr",
    # Not meta-learned: gpicl.baselines.LEARNERS
    "nearest_neighbour": "1-nearest neighbour",
    "nearest_class_mean": "Nearest class mean",
    "ridge": "Ridge regression",
}
# The reference learners (gpicl.baselines.LEARNERS, in its order), not meta-learned.
BASELINE_METHODS = ("nearest_neighbour", "nearest_class_mean", "ridge")

UNLIMITED_LOG2 = 62  # gpicl.augment.UNLIMITED_TASKS == 2**62, the "unlimited" task pool

# Order in which setting differences are listed and variants sorted: the paper's levers first.
SETTING_ORDER = (
    "batch",
    "tasks_per_step",
    "seqs_per_task",
    "eps",
    "eps_root",
    "bias_fraction",
    "curriculum",
    "lr",
    "num_tasks",
    "seq_len",
    "steps",
    "amp",
    "amp_cpu",
)


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


def tasks_label(k: int) -> str:
    """Tick label for a pool of 2^k tasks (mathtext)."""
    return f"$2^{{{k}}}$" + (" (unlimited)" if k == UNLIMITED_LOG2 else "")


def mark_censored(ax: Axes, x: float, y: float, top: float, color: str) -> None:
    """An open marker at the budget `y` and an arrow up to `top`: the plateau is at least this
    long."""
    ax.scatter([x], [y], s=22, facecolors="none", edgecolors=color, linewidths=1.0, zorder=3)
    ax.update_datalim([(x, top)])  # keep the arrow inside the autoscaled axes
    ax.annotate(
        "",
        xy=(x, top),
        xytext=(x, y),
        arrowprops=dict(arrowstyle="->", color=color, linewidth=1.0, shrinkA=3, shrinkB=0),
        annotation_clip=False,
        zorder=3,
    )


def plateau_rule(window: int, margin: float) -> str:
    """The plateau-end rule in words, for titles."""
    return (
        f"plateau end: first step where the {window}-step trailing mean of the loss is "
        f"<= ln 10 - {margin:g} = {CHANCE_LOSS - margin:.3f}"
    )


def format_number(value: float) -> str:
    """Short and exact enough for labels: 0.3, 1e-8, 0, 3e-4."""
    text = f"{float(value):.3g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), text)


def format_tasks(num_tasks: float) -> str:
    n = int(num_tasks)
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def _curriculum_text(curriculum: Mapping[str, Any] | None, other: Mapping | None) -> str:
    if not curriculum:
        return "no curriculum"
    start = int(curriculum["start_examples"])
    text = f"curriculum K={start}.."
    if other and int(other["start_examples"]) == start:
        text += f" hold {int(curriculum['hold_steps'])} anneal {int(curriculum['anneal_steps'])}"
    return text


def setting_differences(
    train: Mapping[str, Any], reference: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(setting, label text) for each training setting where `train` differs from `reference`,
    in SETTING_ORDER (then alphabetical); the batch split counts as one setting, "batch"."""
    run, ref = training_settings(train), training_settings(reference)
    keys = sorted(
        set(run) | set(ref),
        key=lambda k: (SETTING_ORDER.index(k) if k in SETTING_ORDER else len(SETTING_ORDER), k),
    )
    out: list[tuple[str, str]] = []
    for key in keys:
        value, ref_value = run.get(key), ref.get(key)
        if value == ref_value:
            continue
        if key in ("tasks_per_step", "seqs_per_task"):
            if out and out[-1][0] == "batch":
                continue
            tasks, seqs = int(run["tasks_per_step"]), int(run["seqs_per_task"])
            text = f"batch {tasks * seqs}"
            if seqs != int(ref["seqs_per_task"]):
                text += f" ({tasks}x{seqs})"
            out.append(("batch", text))
        elif key == "curriculum":
            out.append((key, _curriculum_text(value, ref_value)))
        elif key == "num_tasks":
            out.append((key, f"tasks {format_tasks(value)}"))
        elif key in ("amp", "amp_cpu"):
            out.append((key, f"{key} {'on' if value else 'off'}"))
        elif isinstance(value, float):
            out.append((key, f"{key}={format_number(value)}"))
        else:
            out.append((key, f"{key}={value}"))
    return out


def difference_sort_key(train: Mapping[str, Any], reference: Mapping[str, Any]) -> tuple:
    """Orders variants by the lever they turn (SETTING_ORDER), then by its value."""
    run = training_settings(train)
    key = []
    for setting, text in setting_differences(train, reference):
        rank = SETTING_ORDER.index(setting) if setting in SETTING_ORDER else len(SETTING_ORDER)
        if setting == "batch":
            value = float(run["tasks_per_step"]) * float(run["seqs_per_task"])
        else:
            value = run.get(setting)
        if isinstance(value, float):
            key.append((rank, 0, value, text))
        else:
            key.append((rank, 1, 0.0, text))
    return tuple(key)


def settings_difference(train: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """How `train` differs from `reference`, e.g. "eps_root=0, batch 256"; "" when it does not."""
    return ", ".join(text for _, text in setting_differences(train, reference))


def describe_settings(train: Mapping[str, Any], omit_batch: bool = False) -> str:
    """The settings a title names: batch, tasks, lr, Adam eps / eps_root, bias, curriculum."""
    s = training_settings(train)
    parts = []
    if not omit_batch:
        parts.append(
            f"batch {int(s['tasks_per_step']) * int(s['seqs_per_task'])} "
            f"({int(s['tasks_per_step'])} tasks x {int(s['seqs_per_task'])})"
        )
    if "num_tasks" in s:
        parts.append(f"tasks {format_tasks(s['num_tasks'])}")
    for key in ("lr", "eps", "eps_root"):
        if key in s:
            parts.append(f"{key} {format_number(s[key])}")
    if s.get("bias_fraction"):
        parts.append(f"bias_fraction {format_number(s['bias_fraction'])}")
    if s.get("curriculum"):
        parts.append(_curriculum_text(s["curriculum"], None))
    return ", ".join(parts)


def reference_group(runs: Sequence[Run], reference_variant: str | None, what: str) -> list[Run]:
    """The runs of `reference_variant`, the baseline a figure compares against; they must share
    their training settings."""
    selected = [r for r in runs if r.variant == reference_variant]
    if not selected:
        found = sorted({str(r.variant) for r in runs})
        raise ValueError(
            f"{what}: no run of reference variant {reference_variant!r} among {len(runs)} runs "
            f"(variants: {', '.join(found) or 'none'})"
        )
    groups = group_by_settings(selected)
    if len(groups) > 1:
        diff = settings_difference(groups[1][0].train, groups[0][0].train)
        raise ValueError(
            f"{what}: runs of reference variant {reference_variant!r} differ in training "
            f"settings ({groups[0][0].name} vs {groups[1][0].name}: {diff})"
        )
    return groups[0]
