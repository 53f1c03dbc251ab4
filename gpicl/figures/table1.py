"""Table 1: meta-test accuracy of the last prediction, for models meta-trained on MNIST.

Rows: the paper's five methods in the paper's order (SGD, MAML, VSML, LSTM, GPICL Transformer),
always, then any other method found in the files (sorted); columns: the six meta-test datasets.
Each row "(ours)" is followed by the paper's row "(paper)".

A cell of ours is the accuracy of the last prediction on unseen tasks pooled over seeds and test
sequences (sum of correct last predictions over the sum of sequences scored), the count behind it,
and a 95% interval over seeds and test sequences from a hierarchical percentile bootstrap
(`metrics.bootstrap_interval`): each of `BOOTSTRAP_RESAMPLES` resamples draws the cell's seeds with
replacement, then resamples each chosen seed's test sequences with replacement, which for a
correct/incorrect outcome is drawing Binomial(n_seed, p_seed) correct predictions with
p_seed = correct_last / num_sequences of that seed; the resample's statistic is the pooled
accuracy (sum of drawn correct over sum of n). The interval is the 2.5th to 97.5th percentile
of the resampled statistics (numpy's default linear interpolation). Seeds are taken in ascending
order and every cell uses a fresh `numpy.random.default_rng(BOOTSTRAP_SEED)`, so a cell's interval
depends on its own files only and the output is byte-identical across runs. With one seed the
interval reflects the test sequences only (seed-to-seed variation cannot be estimated); with
p_seed = 0 or 1 for every seed it is degenerate.

A cell without an evaluation file says "no evaluation file"; a meta-test dataset whose data could
not be had (`unavailable`, a reason per dataset) reads "data not available" in every row, with the
reason in a note under the table and in the CSV. Each cell names the tier of its files (CSV
`tier`; the Markdown names it once when every cell shares one, else per row, else per cell).
Seeds of one cell must share a tier, and the whole table one sequence length.

Writes `<prefix>.md` and `<prefix>.csv` (columns `CSV_COLUMNS`, one row per method and dataset).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gpicl.io import write_text
from gpicl.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, bootstrap_interval
from gpicl.plotting import DATASET_LABELS, METHOD_LABELS, reject_duplicates, single_value, write_csv
from gpicl.results import check_correct_last, load_unavailable, read_eval_results

TRAIN_DATASET = "mnist"
TASK_SET = "unseen"
COLUMNS = ("mnist", "fashion_mnist", "kmnist", "random", "cifar10", "svhn")
# Rows whose missing columns `expected_datasets` turns into errors even when the method has no
# evaluation file at all (the reproduction itself); other rows without files say so per cell.
REQUIRED_ROWS = ("transformer",)
OK = "ok"
NOT_AVAILABLE = "data not available"  # the dataset could not be had (`unavailable`)
NO_EVAL_FILE = "no evaluation file"  # no file for that method and dataset
CSV_COLUMNS = (
    "method",
    "dataset",
    "ours_accuracy",
    "ci_low",
    "ci_high",
    "correct",
    "count",
    "n_seeds",
    "tier",
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
    """One CSV row: our pooled last-position accuracy and its interval (or why there is none)
    beside the paper's value. `reason`: why the dataset could not be had, if it could not."""
    paper = PAPER_TABLE1_PERCENT.get(method, {}).get(dataset)
    records = sorted(records, key=lambda r: r["seed"])
    correct = [int(r["task_sets"][TASK_SET]["correct_last"]) for r in records]
    count = [int(r["task_sets"][TASK_SET]["num_sequences"]) for r in records]
    tiers = sorted({str(r["tier"]) for r in records})
    if len(tiers) > 1:
        raise ValueError(f"table1: {method} on {dataset} pools seeds of tiers {tiers}")
    low, high = bootstrap_interval(correct, count) if records else (None, None)
    if records:
        status = OK
    elif reason is not None:
        status = NOT_AVAILABLE
    else:
        status, reason = NO_EVAL_FILE, NO_EVAL_FILE
    return {
        "method": method,
        "dataset": dataset,
        "ours_accuracy": sum(correct) / sum(count) if records else None,
        "ci_low": low,
        "ci_high": high,
        "correct": sum(correct),
        "count": sum(count),
        "n_seeds": len(records),
        "tier": tiers[0] if tiers else None,
        "paper_accuracy": paper / 100.0 if paper is not None else None,
        "status": status,
        "reason": None if records else reason,
    }


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
    """CSV rows, method by method (the paper's five in its order, then others sorted), column by
    column. `expected_datasets` applies to methods with evaluation files and to REQUIRED_ROWS."""
    unavailable = unavailable or {}
    present = {record["method"] for _, record in results}
    methods = list(PAPER_TABLE1_PERCENT) + sorted(present - set(PAPER_TABLE1_PERCENT))
    rows = []
    for method in methods:
        checked = method in present or method in REQUIRED_ROWS
        for dataset in COLUMNS:
            records = [r for _, r in results if r["method"] == method and r["dataset"] == dataset]
            if (
                checked
                and expected_datasets is not None
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


def ours_cell(cell: dict, tier_in_cell: bool) -> str:
    if cell["status"] != OK:
        return cell["status"]
    seeds = f"{cell['n_seeds']} seed{'s' * (cell['n_seeds'] != 1)}"
    tier = f", tier {cell['tier']}" if tier_in_cell else ""
    return (
        f"{percent(cell['ours_accuracy'])} [{percent(cell['ci_low'])}, "
        f"{percent(cell['ci_high'])}] (n={cell['count']}, {seeds}{tier})"
    )


def markdown(
    rows: Sequence[dict],
    length: int | None,
    curriculum: set,
    unavailable: Mapping[str, str] | None = None,
) -> str:
    header = ["Method"] + [DATASET_LABELS[d] for d in COLUMNS]
    tiers = sorted({r["tier"] for r in rows if r["status"] == OK})
    if not tiers:
        tier_line = "Tier: none (no evaluation files)."
    elif len(tiers) == 1:
        tier_line = f"Tier: {tiers[0]}."
    else:
        tier_line = f"Tiers: {', '.join(tiers)}; each row (or cell) names the tier of its files."
    lines = [
        f"# Table 1: meta-test accuracy of the last prediction, meta-trained on "
        f"{DATASET_LABELS[TRAIN_DATASET]}",
        "",
        tier_line,
        "",
    ]
    position = f"position {length - 1} (sequence length {length})" if length else "last position"
    lines += [
        f"Ours: accuracy of the prediction at {position} on unseen tasks, pooled over seeds and "
        f"test sequences (correct / count), in brackets its {100 * CONFIDENCE:.0f}% interval over "
        "seeds and test sequences (method below the table); n = number of sequences scored. "
        "Paper: Kirsch et al. 2022, "
        f'Table 1 (100th prediction). "{NO_EVAL_FILE}": that method was not evaluated on that '
        f'meta-test dataset; "{NOT_AVAILABLE}": the dataset could not be had'
        + ("; why is noted under the table." if unavailable else "."),
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
        row_tiers = sorted({c["tier"] for c in cells.values() if c["status"] == OK})
        tags = ["ours"]
        if method in curriculum:
            tags.append("curriculum")
        if len(tiers) > 1 and len(row_tiers) == 1:
            tags.append(f"tier {row_tiers[0]}")
        ours = [ours_cell(cells[d], len(row_tiers) > 1) for d in COLUMNS]
        lines.append(f"| {label} ({', '.join(tags)}) | " + " | ".join(ours) + " |")
        paper = [
            percent(cells[d]["paper_accuracy"]) if cells[d]["paper_accuracy"] is not None else "-"
            for d in COLUMNS
        ]
        lines.append(f"| {label} (paper) | " + " | ".join(paper) + " |")
    lines += [
        "",
        f"Intervals: {100 * CONFIDENCE:.0f}% hierarchical percentile bootstrap over seeds and test "
        f"sequences ({BOOTSTRAP_RESAMPLES:,} resamples, numpy default_rng({BOOTSTRAP_SEED}) per "
        "cell): seeds drawn with replacement, then each drawn seed's correct count redrawn as "
        "Binomial(n_seed, correct_seed / n_seed); statistic: the pooled accuracy. With one seed "
        "the interval covers test-sequence sampling only.",
    ]
    if unavailable:
        lines += ["", f"{NOT_AVAILABLE[0].upper()}{NOT_AVAILABLE[1:]}:", ""]
        lines += [f"- {DATASET_LABELS[d]}: {unavailable[d]}" for d in COLUMNS if d in unavailable]
    return "\n".join(lines) + "\n"


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    expected_datasets: list[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
    status_files: Iterable[str | os.PathLike] = (),
) -> None:
    """Write Table 1 from evaluation files (only models meta-trained on MNIST are used).

    `expected_datasets`: meta-test datasets that must have an evaluation file for every row that
    has evaluation files (and for the GPICL Transformer row always) unless `unavailable` names
    them; a missing one is an error instead of "no evaluation file" (the paper tier lists all
    six). None: any cell may be missing.
    `unavailable`: dataset -> why its data could not be had (e.g. the `reason` of
    gpicl.data.DatasetUnavailableError); its column reads "data not available" and the reason is
    noted under the table and in the CSV's `reason`. Such a dataset must have no evaluation file.
    `status_files`: dataset availability records; the unavailable ones join `unavailable`.
    """
    out_prefix = Path(out_prefix)
    rows, length, curriculum, reasons = table(
        eval_files, expected_datasets, unavailable, status_files
    )
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_text(
        out_prefix.with_name(out_prefix.name + ".md"),
        markdown(rows, length, curriculum, reasons),
    )


def table(
    eval_files: Iterable[str | os.PathLike],
    expected_datasets: list[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
    status_files: Iterable[str | os.PathLike] = (),
) -> tuple[list[dict], int, set[str], dict[str, str]]:
    """Table 1's rows (as in its CSV), the sequence length, the curriculum-trained methods and
    the unavailable datasets' reasons; the arguments are make()'s."""
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
        check_correct_last(path, record, TASK_SET)
    reject_duplicates(results, ("method", "dataset", "seed"), "table1")
    length = single_value(results, "sequence_length", "table1")
    curriculum = {record["method"] for _, record in results if record["curriculum"]}

    reasons = check_unavailable({**load_unavailable(status_files), **(unavailable or {})}, results)
    return build_rows(results, expected_datasets, reasons), length, curriculum, reasons
