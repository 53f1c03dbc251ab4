"""State size vs parameter count: accuracy on unseen tasks against each model's accessible state
and against its parameter count.

Two panels sharing the y axis: accuracy of the last prediction (`correct_last / num_sequences`)
on the `task_set` tasks of meta-test dataset `dataset`, against the accessible state size (left)
and against the parameter count (right), both x axes log scale. Only Transformers, LSTMs and
outer-product LSTMs are drawn (`METHODS`); files of other methods (MLP, SGD, MAML, VSML) and of
other meta-test datasets are ignored. One colour and marker per architecture; every seed is a
small point, the mean over seeds of one configuration a large one, labelled with its
configuration (`config_label`: w width, L layers, H heads, k key size, h hidden size, other
fields as key=value). A configuration is one `method` and full `model` config (and number of
meta-training tasks); its seeds must agree on parameter count and state size. Chance (0.1) is a
dashed line.

State size and parameter count are read from the files (`state_size`, `num_params`), which
record each model's own `state_size()` and `num_params()`:
- Transformer: the keys and values cached over a full sequence in every layer,
  2 x layers x heads x key_size x seq_len numbers (gpicl/models/transformer.py);
- LSTM: the numbers the recurrence carries from step to step, hidden and cell vectors,
  2 x hidden_size (gpicl/models/lstm.py);
- outer-product LSTM: the per-head h x h cell matrices plus the hidden vector,
  heads x h x (h + 1) (gpicl/models/outer_lstm.py).

The controlled comparison: every pair of configurations (any architectures) whose parameter
counts are within `pair_param_tolerance` of each other, |p1 - p2| / min(p1, p2) <= tolerance, and
whose state sizes differ by at least `pair_min_state_ratio`x, max(s) / min(s) >= ratio. Each pair
is drawn as a dotted line between the two configuration means in both panels and written to
`<prefix>_pairs.csv`; when there is none, that CSV holds only its header and the figure says
"no equal-parameter pair in these runs" in a text box.

All files drawn must share the tier, sequence length and meta-training dataset (an error names
them otherwise; pass `train_dataset` to pick one). Writes `<prefix>.png`, `<prefix>.svg`,
`<prefix>.csv` (one row per configuration, `CSV_COLUMNS`; `accuracies`, `seeds` and `runs` list
the per-seed values drawn, ";"-separated, in seed order) and `<prefix>_pairs.csv`
(`PAIR_COLUMNS`; "small" is the configuration with the smaller state, accuracy_diff is
accuracy_large - accuracy_small), byte-identical for the same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gpicl.metrics import CHANCE, equal_parameter_pairs
from gpicl.plotting import (
    CURRICULUM_NOTE,
    DATASET_LABELS,
    METHOD_LABELS,
    figure_style,
    new_figure,
    reject_duplicates,
    save_figure,
    single_value,
    write_csv,
)
from gpicl.results import check_correct_last, read_eval_results

METHODS = ("transformer", "lstm", "outer_lstm")  # legend order
STYLE = {"transformer": ("C0", "o"), "lstm": ("C1", "s"), "outer_lstm": ("C2", "^")}
# Legend names: this figure's Transformers are not all the GPICL configuration of Table 1.
LABELS = {**METHOD_LABELS, "transformer": "Transformer"}
NO_PAIR = "no equal-parameter pair in these runs"
EXTRA_KEYS = ("model", "num_params", "state_size", "num_tasks")
# Short names of model config fields in configuration labels, in label order.
FIELD_ABBREVIATIONS = {
    "width": "w",
    "hidden_size": "h",
    "layers": "L",
    "heads": "H",
    "key_size": "k",
    "mlp_ratio": "mlp",
}
CSV_COLUMNS = (
    "method",
    "config",
    "num_params",
    "state_size",
    "accuracy_mean",
    "accuracy_min",
    "accuracy_max",
    "n_seeds",
    "num_tasks",
    "seeds",
    "accuracies",
    "runs",
)
PAIR_SIDE_COLUMNS = ("method", "config", "num_params", "state_size", "accuracy_mean", "n_seeds")
PAIR_COLUMNS = (
    *(f"{c}_small" for c in PAIR_SIDE_COLUMNS),
    *(f"{c}_large" for c in PAIR_SIDE_COLUMNS),
    "param_rel_diff",
    "state_ratio",
    "accuracy_diff",
)


def config_label(model: dict) -> str:
    """Every field of a model config but its type, known ones abbreviated and first:
    {"type": "transformer", "width": 64, "layers": 2, "heads": 4, "key_size": 16} -> "w64 L2 H4
    k16"."""
    fields = {k: v for k, v in model.items() if k != "type"}
    known = [f"{abbr}{fields.pop(k)}" for k, abbr in FIELD_ABBREVIATIONS.items() if k in fields]
    return " ".join(known + [f"{k}={fields[k]}" for k in sorted(fields)])


def check_record(path: Path, record: dict, task_set: str) -> None:
    missing = [key for key in EXTRA_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: evaluation file lacks keys {missing} (state_size figure)")
    if not isinstance(record["model"], dict):
        raise ValueError(f"{path}: `model` must be the model config, got {record['model']!r}")
    for key in ("num_params", "state_size"):
        if not isinstance(record[key], int) or record[key] <= 0:
            raise ValueError(
                f"{path}: {key} must be a positive integer (log axis), got {record[key]!r}"
            )
    check_correct_last(path, record, task_set)


def select(
    results: list[tuple[Path, dict]], dataset: str, train_dataset: str | None
) -> list[tuple[Path, dict]]:
    """The files of the three architectures on `dataset` (and `train_dataset`, if given)."""
    ours = [(p, r) for p, r in results if r["method"] in METHODS]
    chosen = [(p, r) for p, r in ours if r["dataset"] == dataset]
    if ours and not chosen:
        found = sorted({r["dataset"] for _, r in ours})
        raise ValueError(f"state_size: no evaluation file for dataset {dataset!r}; found {found}")
    if train_dataset is not None:
        chosen = [(p, r) for p, r in chosen if r["train_dataset"] == train_dataset]
        if not chosen and ours:
            raise ValueError(
                f"state_size: no evaluation file on {dataset} meta-trained on {train_dataset!r}"
            )
    return chosen


def configurations(results: list[tuple[Path, dict]], task_set: str) -> list[dict]:
    """One CSV row per configuration: its seeds' last-prediction accuracies and their mean."""
    groups: dict[tuple, list[dict]] = {}
    for _, r in results:
        key = (r["method"], json.dumps(r["model"], sort_keys=True), int(r["num_tasks"]))
        groups.setdefault(key, []).append(r)
    rows = []
    for (method, model, num_tasks), group in groups.items():
        group.sort(key=lambda r: r["seed"])
        label = config_label(json.loads(model))
        for key in ("num_params", "state_size"):
            values = sorted({int(r[key]) for r in group})
            if len(values) > 1:
                runs = ", ".join(r["run"] for r in group)
                raise ValueError(
                    f"state_size: {method} {label}: {key} differs by seed {values}: {runs}"
                )
        acc = [
            r["task_sets"][task_set]["correct_last"] / r["task_sets"][task_set]["num_sequences"]
            for r in group
        ]
        rows.append(
            {
                "method": method,
                "config": label,
                "num_params": int(group[0]["num_params"]),
                "state_size": int(group[0]["state_size"]),
                "accuracy_mean": float(np.mean(acc)),
                "accuracy_min": float(min(acc)),
                "accuracy_max": float(max(acc)),
                "n_seeds": len(group),
                "num_tasks": num_tasks,
                "seeds": ";".join(str(r["seed"]) for r in group),
                "accuracies": ";".join(f"{a:.6f}" for a in acc),
                "runs": ";".join(str(r["run"]) for r in group),
                "_accuracies": acc,
            }
        )
    rows.sort(
        key=lambda r: (
            METHODS.index(r["method"]),
            r["state_size"],
            r["num_params"],
            r["config"],
            r["num_tasks"],
        )
    )
    return rows


def pair_rows(rows: list[dict], param_tolerance: float, min_state_ratio: float) -> list[dict]:
    """The `_pairs.csv` rows: each equal-parameter pair's two configurations side by side."""
    pairs = []
    for small, large, param_rel_diff, state_ratio in equal_parameter_pairs(
        rows, param_tolerance, min_state_ratio
    ):
        pair = {f"{c}_small": small[c] for c in PAIR_SIDE_COLUMNS}
        pair.update({f"{c}_large": large[c] for c in PAIR_SIDE_COLUMNS})
        pair.update(
            param_rel_diff=param_rel_diff,
            state_ratio=state_ratio,
            accuracy_diff=large["accuracy_mean"] - small["accuracy_mean"],
        )
        pairs.append(pair)
    return pairs


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    dataset: str = "mnist",
    task_set: str = "unseen",
    pair_param_tolerance: float = 0.15,
    pair_min_state_ratio: float = 4.0,
    train_dataset: str | None = None,
    budget_note: str = "",
) -> None:
    """Draw accuracy vs state size and vs parameter count from evaluation files.

    `dataset`, `task_set`: the meta-test dataset and task set whose last-prediction accuracy is
    drawn. `pair_param_tolerance` (relative, >= 0) and `pair_min_state_ratio` (>= 1): what counts
    as an equal-parameter pair with different state. `train_dataset`: keep only models
    meta-trained on it (None: the files must share one).
    """
    out_prefix = Path(out_prefix)
    if not pair_param_tolerance >= 0:
        raise ValueError(
            f"state_size: pair_param_tolerance must be >= 0, got {pair_param_tolerance}"
        )
    if not pair_min_state_ratio >= 1:
        raise ValueError(
            f"state_size: pair_min_state_ratio must be >= 1, got {pair_min_state_ratio}"
        )
    results = select(read_eval_results(eval_files, task_set), dataset, train_dataset)
    for path, record in results:
        check_record(path, record, task_set)
    trained = sorted({r["train_dataset"] for _, r in results})
    if len(trained) > 1:
        raise ValueError(
            f"state_size: files meta-trained on {trained}; pass train_dataset (e.g. --options "
            f'\'{{"train_dataset": "{trained[0]}"}}\') to draw one'
        )
    trained_on = trained[0] if trained else None
    tier = single_value(results, "tier", "state_size")
    length = single_value(results, "sequence_length", "state_size")
    reject_duplicates(
        [(p, {**r, "model": json.dumps(r["model"], sort_keys=True)}) for p, r in results],
        ("method", "model", "num_tasks", "seed"),
        "state_size",
    )
    curriculum = sorted({r["method"] for _, r in results if r["curriculum"]}, key=METHODS.index)
    rows = configurations(results, task_set)
    pairs = pair_rows(rows, pair_param_tolerance, pair_min_state_ratio)

    with figure_style():
        fig = new_figure(figsize=(8.0, 3.8), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        panels = (("state_size", "accessible state size (numbers)"), ("num_params", "parameters"))
        for ax, (key, xlabel) in zip(axes, panels, strict=True):
            for pair in pairs:
                ax.plot(
                    [pair[f"{key}_small"], pair[f"{key}_large"]],
                    [pair["accuracy_mean_small"], pair["accuracy_mean_large"]],
                    color="0.2",
                    linestyle=":",
                    linewidth=1.2,
                    zorder=1,
                )
            for method in METHODS:
                color, marker = STYLE[method]
                sel = [r for r in rows if r["method"] == method]
                if not sel:
                    continue
                seeds_x = [r[key] for r in sel for _ in r["_accuracies"]]
                seeds_y = [a for r in sel for a in r["_accuracies"]]
                ax.scatter(
                    seeds_x,
                    seeds_y,
                    s=12,
                    color=color,
                    marker=marker,
                    alpha=0.4,
                    linewidths=0,
                    zorder=2,
                )
                ax.scatter(
                    [r[key] for r in sel],
                    [r["accuracy_mean"] for r in sel],
                    s=46,
                    color=color,
                    marker=marker,
                    edgecolors="black",
                    linewidths=0.6,
                    zorder=3,
                    label=LABELS.get(method, method),
                )
                for r in sel:
                    ax.annotate(
                        r["config"],
                        (r[key], r["accuracy_mean"]),
                        xytext=(4, 3),
                        textcoords="offset points",
                        fontsize=6,
                        color="0.25",
                    )
            ax.axhline(CHANCE, color="0.4", linestyle="--", linewidth=1.0, label="chance")
            if not rows:
                ax.text(
                    0.5,
                    0.5,
                    "no evaluation files",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                )
            ax.set_xscale("log")
            ax.set_xlabel(xlabel + " (log scale)")
            ax.set_ylim(0.0, 1.0)
        if pairs:
            axes[0].plot(
                [], [], color="0.2", linestyle=":", linewidth=1.2, label="equal-parameter pair"
            )
        else:
            axes[1].text(
                0.03,
                0.97,
                f"{NO_PAIR}\n(parameters within {pair_param_tolerance:.0%}, "
                f"state >= {pair_min_state_ratio:g}x)",
                transform=axes[1].transAxes,
                ha="left",
                va="top",
                fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.5"},
                zorder=5,
            )
        axes[0].legend(loc="upper left")
        axes[0].set_ylabel(f"accuracy on {task_set} tasks")
        axes[0].set_title("vs accessible state size")
        axes[1].set_title("vs parameter count")

        position = f"prediction {length} of {length}" if length else "last prediction"
        lines = [
            f"{DATASET_LABELS.get(dataset, dataset)}, {task_set} tasks, {position}"
            + (
                f", meta-trained on {DATASET_LABELS.get(trained_on, trained_on)}"
                if trained_on
                else ""
            )
            + f" (tier: {tier})",
            "small markers: seeds; large: mean over seeds per configuration; dotted: parameters "
            f"within {pair_param_tolerance:.0%}, state >= {pair_min_state_ratio:g}x apart "
            f"({len(pairs)} pair{'s' * (len(pairs) != 1)})",
        ]
        if curriculum:
            names = ", ".join(LABELS.get(m, m) for m in curriculum)
            lines.append(f"{names}: {CURRICULUM_NOTE}")
        if budget_note:
            lines.append(budget_note)
        fig.suptitle("\n".join(lines))
        save_figure(fig, out_prefix)

    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_csv(pairs, out_prefix.with_name(out_prefix.name + "_pairs.csv"), columns=PAIR_COLUMNS)
