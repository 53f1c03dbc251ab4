"""Table 1: meta-test accuracy of the last prediction, for models meta-trained on MNIST.

One row per method found in the evaluation files (the GPICL Transformer row always), one column
per meta-test dataset. Our number pools seeds (sum of correct last predictions over sum of
sequences) and shows the count behind it; the paper's number sits in the row below. A column
without an evaluation file says "data not available", never a number from elsewhere; the caller
may say why per dataset (`unavailable`), shown in a note under the table and in the CSV.
Writes `<prefix>.md` and `<prefix>.csv`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gpicl.io import read_json, write_text
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
NOT_AVAILABLE = "data not available"
NO_EVAL_FILE = "no evaluation file"  # the reason shown when the caller gave none
CSV_COLUMNS = (
    "method",
    "dataset",
    "ours_accuracy",
    "correct",
    "count",
    "n_seeds",
    "paper_accuracy",
    "status",
    "reason",
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


def pooled_cell(
    method: str, dataset: str, records: Sequence[dict], reason: str | None = None
) -> dict:
    """One CSV row: our pooled last-position accuracy (or NA and why) beside the paper's value."""
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
        "reason": None if count else (reason or NO_EVAL_FILE),
    }


def check_correct_last(path: Path, record: dict) -> None:
    """`correct_last / num_sequences` must be the last accuracy: catches a mislabelled file."""
    stats = record["task_sets"][TASK_SET]
    if abs(stats["correct_last"] / stats["num_sequences"] - stats["accuracy"][-1]) > 1e-5:
        raise ValueError(
            f"{path}: correct_last/num_sequences = {stats['correct_last']}/"
            f"{stats['num_sequences']} disagrees with the last accuracy {stats['accuracy'][-1]}"
        )


def check_unavailable(
    unavailable: Mapping[str, str], results: Sequence[tuple[Path, dict]]
) -> dict[str, str]:
    """Reasons as one line each; a dataset said unavailable must have no evaluation file."""
    unknown = sorted(set(unavailable) - set(COLUMNS))
    if unknown:
        raise ValueError(f"table1: unavailable datasets {unknown} are not Table 1 columns")
    reasons = {}
    for dataset, reason in unavailable.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"table1: unavailable[{dataset!r}] needs a reason, got {reason!r}")
        reasons[dataset] = " ".join(reason.split())
        stale = sorted(str(path) for path, r in results if r["dataset"] == dataset)
        if stale:
            raise ValueError(
                f"table1: {dataset} is marked unavailable ({reasons[dataset]}) but has "
                f"evaluation files: {', '.join(stale)}"
            )
    return reasons


def build_rows(
    results: Sequence[tuple[Path, dict]],
    expected_datasets: Sequence[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> list[dict]:
    """CSV rows, method by method (paper order, then others sorted), column by column."""
    unavailable = unavailable or {}
    present = {record["method"] for _, record in results} | set(ALWAYS_ROWS)
    methods = [m for m in PAPER_TABLE1_PERCENT if m in present]
    methods += sorted(present - set(methods))
    rows = []
    for method in methods:
        for dataset in COLUMNS:
            records = [r for _, r in results if r["method"] == method and r["dataset"] == dataset]
            if (
                expected_datasets is not None
                and dataset in expected_datasets
                and dataset not in unavailable
                and not records
            ):
                raise ValueError(
                    f"table1: {method} meta-trained on {TRAIN_DATASET} has no evaluation file "
                    f"for {dataset}, which is in expected_datasets and not marked unavailable"
                )
            rows.append(pooled_cell(method, dataset, records, unavailable.get(dataset)))
    return rows


def percent(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}%"


def markdown(
    rows: Sequence[dict],
    tier: str | None,
    length: int | None,
    curriculum: set,
    unavailable: Mapping[str, str] | None = None,
) -> str:
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
        f'"{NOT_AVAILABLE}": no evaluation file for that meta-test dataset'
        + (
            "; where the data could not be had, why is noted under the table."
            if unavailable
            else "."
        ),
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
    if unavailable:
        lines += ["", f"{NOT_AVAILABLE[0].upper()}{NOT_AVAILABLE[1:]}:", ""]
        lines += [f"- {DATASET_LABELS[d]}: {unavailable[d]}" for d in COLUMNS if d in unavailable]
    return "\n".join(lines) + "\n"


def load_unavailable(status_files: Iterable[str | os.PathLike]) -> dict[str, str]:
    """dataset -> reason from JSON records of `gpicl.data.dataset_availability`
    ({"dataset", "available", "reason", ...}); available ones are left out."""
    unavailable = {}
    for path in sorted(Path(p) for p in status_files):
        record = read_json(path)
        if not record["available"]:
            unavailable[record["dataset"]] = record["reason"] or "no source could deliver it"
    return unavailable


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    expected_datasets: list[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> None:
    """Write Table 1 from evaluation files (only models meta-trained on MNIST are used).

    `expected_datasets`: meta-test datasets that must have an evaluation file for every row
    unless `unavailable` names them; a missing one is an error instead of "data not available"
    (the paper tier lists all six). None: any column may be missing.
    `unavailable`: dataset -> why its data could not be had (e.g. the `reason` of
    gpicl.data.DatasetUnavailableError); its column reads "data not available" and the reason is
    noted under the table and in the CSV's `reason`. Such a dataset must have no evaluation file.
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

    reasons = check_unavailable(unavailable or {}, results)
    rows = build_rows(results, expected_datasets, reasons)
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_text(
        out_prefix.with_name(out_prefix.name + ".md"),
        markdown(rows, tier, length, curriculum, reasons),
    )
