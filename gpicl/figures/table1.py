"""Table 1: meta-test accuracy of the last prediction, for models meta-trained on MNIST.

One row per method found in the evaluation files (the GPICL Transformer row always), one column
per meta-test dataset. Our number pools seeds (sum of correct last predictions over sum of
sequences) and shows the count behind it; the paper's number sits in the row below. A column
without an evaluation file says "not available offline", never a number from elsewhere.
Writes `<prefix>.md` and `<prefix>.csv`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gpicl.io import write_text
from gpicl.plotting import (
    DATASET_LABELS,
    METHOD_LABELS,
    read_eval_results,
    reject_duplicates,
    single_value,
    write_csv,
)

TRAIN_DATASET = "mnist"
TASK_SET = "unseen"
COLUMNS = ("mnist", "fashion_mnist", "kmnist", "random", "cifar10", "svhn")
ALWAYS_ROWS = ("transformer",)  # shown even without evaluation files
NOT_AVAILABLE = "not available offline"
CSV_COLUMNS = (
    "method",
    "dataset",
    "ours_accuracy",
    "correct",
    "count",
    "n_seeds",
    "paper_accuracy",
    "status",
)

# Kirsch et al. 2022, Table 1, in percent as printed: accuracy of the 100th prediction,
# meta-trained on MNIST. Keys are the `method` values of evaluation files; row order is the paper's.
PAPER_TABLE1_PERCENT: dict[str, dict[str, float]] = {
    "sgd": dict(zip(COLUMNS, (70.31, 50.78, 37.89, 100.00, 14.84, 10.16), strict=True)),
    "maml": dict(zip(COLUMNS, (53.71, 48.44, 36.33, 99.80, 17.38, 11.33), strict=True)),
    "vsml": dict(zip(COLUMNS, (79.04, 68.49, 54.69, 100.00, 24.09, 17.45), strict=True)),
    "lstm": dict(zip(COLUMNS, (25.39, 28.12, 18.10, 58.72, 12.11, 11.07), strict=True)),
    "transformer": dict(zip(COLUMNS, (73.70, 62.24, 53.39, 100.00, 19.40, 14.58), strict=True)),
}


def pooled_cell(method: str, dataset: str, records: Sequence[dict]) -> dict:
    """One CSV row: our pooled last-position accuracy (or NA) beside the paper's value."""
    paper = PAPER_TABLE1_PERCENT.get(method, {}).get(dataset)
    correct = sum(int(r["task_sets"][TASK_SET]["correct_last"]) for r in records)
    count = sum(int(r["task_sets"][TASK_SET]["num_sequences"]) for r in records)
    return {
        "method": method,
        "dataset": dataset,
        "ours_accuracy": correct / count if count else None,
        "correct": correct,
        "count": count,
        "n_seeds": len({r["seed"] for r in records}),
        "paper_accuracy": paper / 100.0 if paper is not None else None,
        "status": "ok" if count else NOT_AVAILABLE,
    }


def check_correct_last(path: Path, record: dict) -> None:
    """`correct_last / num_sequences` must be the last accuracy: catches a mislabelled file."""
    stats = record["task_sets"][TASK_SET]
    if abs(stats["correct_last"] / stats["num_sequences"] - stats["accuracy"][-1]) > 1e-5:
        raise ValueError(
            f"{path}: correct_last/num_sequences = {stats['correct_last']}/"
            f"{stats['num_sequences']} disagrees with the last accuracy {stats['accuracy'][-1]}"
        )


def build_rows(
    results: Sequence[tuple[Path, dict]], expected_datasets: Sequence[str] | None = None
) -> list[dict]:
    """CSV rows, method by method (paper order, then others sorted), column by column."""
    present = {record["method"] for _, record in results} | set(ALWAYS_ROWS)
    methods = [m for m in PAPER_TABLE1_PERCENT if m in present]
    methods += sorted(present - set(methods))
    rows = []
    for method in methods:
        for dataset in COLUMNS:
            records = [r for _, r in results if r["method"] == method and r["dataset"] == dataset]
            if expected_datasets is not None and dataset in expected_datasets and not records:
                raise ValueError(
                    f"table1: {method} meta-trained on {TRAIN_DATASET} has no evaluation file "
                    f"for {dataset}, which is in expected_datasets"
                )
            rows.append(pooled_cell(method, dataset, records))
    return rows


def percent(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}%"


def markdown(rows: Sequence[dict], tier: str | None, length: int | None, curriculum: set) -> str:
    header = ["Method"] + [DATASET_LABELS[d] for d in COLUMNS]
    lines = [
        f"# Table 1: meta-test accuracy of the last prediction, meta-trained on "
        f"{DATASET_LABELS[TRAIN_DATASET]}",
        "",
        f"Tier: {tier if tier is not None else 'none (no evaluation files)'}.",
        "",
    ]
    position = f"position {length - 1} (sequence length {length})" if length else "last position"
    lines += [
        f"Ours: accuracy of the prediction at {position} on unseen tasks, pooled over seeds "
        "(correct / count); n = number of sequences scored. Paper: Kirsch et al. 2022, "
        "Table 1 (100th prediction). "
        f'"{NOT_AVAILABLE}": no evaluation file for that meta-test dataset.',
        "",
    ]
    if curriculum:
        names = ", ".join(METHOD_LABELS.get(m, m) for m in sorted(curriculum))
        lines += [
            f"**Trained with exemplar-repetition curriculum (deviation from the paper): {names}.**",
            "",
        ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method in methods:
        cells = {r["dataset"]: r for r in rows if r["method"] == method}
        label = METHOD_LABELS.get(method, method)
        ours = []
        for dataset in COLUMNS:
            cell = cells[dataset]
            if cell["status"] == NOT_AVAILABLE:
                ours.append(NOT_AVAILABLE)
            else:
                seeds = f"{cell['n_seeds']} seed{'s' * (cell['n_seeds'] != 1)}"
                ours.append(f"{percent(cell['ours_accuracy'])} (n={cell['count']}, {seeds})")
        tag = "ours, curriculum" if method in curriculum else "ours"
        lines.append(f"| {label} ({tag}) | " + " | ".join(ours) + " |")
        paper = [
            percent(cells[d]["paper_accuracy"]) if cells[d]["paper_accuracy"] is not None else "-"
            for d in COLUMNS
        ]
        lines.append(f"| {label} (paper) | " + " | ".join(paper) + " |")
    return "\n".join(lines) + "\n"


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    expected_datasets: list[str] | None = None,
) -> None:
    """Write Table 1 from evaluation files (only models meta-trained on MNIST are used).

    `expected_datasets`: meta-test datasets that must have an evaluation file for every row; a
    missing one is an error instead of "not available offline" (for tiers where every dataset
    was prepared). None: any column may be missing.
    """
    out_prefix = Path(out_prefix)
    if expected_datasets is not None:
        unknown = sorted(set(expected_datasets) - set(COLUMNS))
        if unknown:
            raise ValueError(f"table1: expected_datasets {unknown} are not Table 1 columns")
    results = [
        (path, record)
        for path, record in read_eval_results(eval_files, TASK_SET)
        if record["train_dataset"] == TRAIN_DATASET and record["dataset"] in COLUMNS
    ]
    for path, record in results:
        check_correct_last(path, record)
    reject_duplicates(results, ("method", "dataset", "seed"), "table1")
    tier = single_value(results, "tier", "table1")
    length = single_value(results, "sequence_length", "table1")
    curriculum = {record["method"] for _, record in results if record["curriculum"]}

    rows = build_rows(results, expected_datasets)
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_text(
        out_prefix.with_name(out_prefix.name + ".md"), markdown(rows, tier, length, curriculum)
    )
