"""Table 1: meta-test accuracy of the last prediction, for models meta-trained on MNIST.

Rows: the paper's five methods in the paper's order (SGD, MAML, VSML, LSTM, GPICL Transformer),
always, then any other method found in the files (sorted); columns: the six meta-test datasets.
Each row "(ours)" is followed by the paper's row "(paper)".

A cell of ours is the accuracy of the last prediction on unseen tasks pooled over seeds and test
sequences (sum of correct last predictions over the sum of sequences scored), the count behind it,
and a 95% interval from a hierarchical percentile bootstrap over seeds, tasks and sequences within
task (`metrics.SequenceBootstrap`, `BOOTSTRAP_RESAMPLES` resamples, fixed seed): evaluation files
hold each sequence's last outcome (`last_outcomes`); a file without them counts as one task. Every
row of a dataset is scored on the same sequences, so two rows are compared by the interval of
their paired difference (same sequences, same resamples); a pair is "resolved" when it excludes
zero. `<prefix>_pairs.csv` holds every pair's difference and interval; the Markdown lists, per
row and dataset, the rows it is resolved above.

Rows besides the paper's: "SGD, tuned lr" (`sgd_tuned`), the SGD runs of the learning-rate sweep
(run variants, `gpicl.config.sgd_lr_variants`) whose lr has the best pooled last-position accuracy
on the validation set (evaluation records with split "train": MNIST's training split under other
unseen task ids), reported on the test sequences; the SGD row keeps the authors' lr. The
reference learners of `gpicl.baselines` (`baseline_files`) are rows marked "not meta-learned"
(one "seed" each).

A cell without an evaluation file says "no evaluation file"; a meta-test dataset whose data could
not be had (`unavailable`, a reason per dataset) reads "data not available" in every row, with the
reason in a note under the table and in the CSV. Each cell names the tier of its files (CSV
`tier`; the Markdown names it once when every cell shares one, else per row, else per cell).
Seeds of one cell must share a tier, and the whole table one sequence length.

Writes `<prefix>.md`, `<prefix>.csv` (columns `CSV_COLUMNS`, one row per method and dataset) and
`<prefix>_pairs.csv` (`PAIR_COLUMNS`, one row per pair of rows and dataset).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from gpicl.io import write_text
from gpicl.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    SequenceBootstrap,
    percentile_interval,
    resolved,
    sequence_outcomes,
)
from gpicl.plotting import (
    BASELINE_METHODS,
    DATASET_LABELS,
    METHOD_LABELS,
    reject_duplicates,
    single_value,
    write_csv,
)
from gpicl.results import (
    check_correct_last,
    load_unavailable,
    read_baseline_results,
    read_eval_results,
)

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
    "group",
    "setting",
    "resolved_above",
    "resolved_below",
)
PAIR_COLUMNS = ("dataset", "method_a", "method_b", "difference", "ci_low", "ci_high", "resolved")
META_LEARNED, NOT_META_LEARNED = "meta-learned", "not meta-learned"
SGD_TUNED = "sgd_tuned"
VALIDATION_SPLIT = "train"

# Kirsch et al. 2022, Table 1, in percent as printed: accuracy of the 100th prediction,
# meta-trained on MNIST. Keys are the `method` values of evaluation files; row order is the paper's.
PAPER_TABLE1_PERCENT: dict[str, dict[str, float]] = {
    "sgd": dict(zip(COLUMNS, (70.31, 50.78, 37.89, 100.00, 14.84, 10.16), strict=True)),
    "maml": dict(zip(COLUMNS, (53.71, 48.44, 36.33, 99.80, 17.38, 11.33), strict=True)),
    "vsml": dict(zip(COLUMNS, (79.04, 68.49, 54.69, 100.00, 24.09, 17.45), strict=True)),
    "lstm": dict(zip(COLUMNS, (25.39, 28.12, 18.10, 58.72, 12.11, 11.07), strict=True)),
    "transformer": dict(zip(COLUMNS, (73.70, 62.24, 53.39, 100.00, 19.40, 14.58), strict=True)),
}


def cell_outcomes(method: str, dataset: str, records: Sequence[dict]) -> np.ndarray:
    """(seeds, tasks, sequences) last-position outcomes of one cell, seeds ascending."""
    arrays = [
        sequence_outcomes(
            int(r["task_sets"][TASK_SET]["correct_last"]),
            int(r["task_sets"][TASK_SET]["num_sequences"]),
            r["task_sets"][TASK_SET].get("last_outcomes"),
        )
        for r in sorted(records, key=lambda r: r["seed"])
    ]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(f"table1: {method} on {dataset}: seeds scored {shapes} sequences")
    return np.stack(arrays)


class _Bootstraps:
    """One SequenceBootstrap per (tasks, sequences) shape, shared by every row and pair."""

    def __init__(self):
        self._by_shape: dict[tuple[int, int], SequenceBootstrap] = {}

    def statistics(self, outcomes: np.ndarray) -> np.ndarray:
        shape = outcomes.shape[1:]
        if shape not in self._by_shape:
            self._by_shape[shape] = SequenceBootstrap(*shape, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
        return self._by_shape[shape].statistics(outcomes)


def pooled_cell(
    method: str,
    dataset: str,
    records: Sequence[dict],
    reason: str | None = None,
    bootstraps: _Bootstraps | None = None,
) -> dict:
    """One CSV row: our pooled last-position accuracy and its interval (or why there is none)
    beside the paper's value. `reason`: why the dataset could not be had, if it could not.
    The resampled statistics (for paired differences) are kept under the private key
    `_statistics`, the outcomes under `_outcomes` (None without files)."""
    paper = PAPER_TABLE1_PERCENT.get(method, {}).get(dataset)
    records = sorted(records, key=lambda r: r["seed"])
    correct = [int(r["task_sets"][TASK_SET]["correct_last"]) for r in records]
    count = [int(r["task_sets"][TASK_SET]["num_sequences"]) for r in records]
    tiers = sorted({str(r["tier"]) for r in records})
    if len(tiers) > 1:
        raise ValueError(f"table1: {method} on {dataset} pools seeds of tiers {tiers}")
    outcomes = statistics = None
    low = high = None
    if records:
        outcomes = cell_outcomes(method, dataset, records)
        statistics = (bootstraps or _Bootstraps()).statistics(outcomes)
        low, high = percentile_interval(statistics, CONFIDENCE)
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
        "group": NOT_META_LEARNED if method in BASELINE_METHODS else META_LEARNED,
        "setting": None,
        "resolved_above": None,
        "resolved_below": None,
        "_outcomes": outcomes,
        "_statistics": statistics,
        # paired comparison needs each sequence's outcome (not a file's counts alone)
        "_paired": bool(records)
        and all("last_outcomes" in r["task_sets"][TASK_SET] for r in records),
    }


def choose_sgd_lr(validation: Sequence[dict]) -> dict | None:
    """The SGD sweep's choice from validation records (split "train") of its runs: per variant
    the pooled last-position accuracy over seeds; the best wins (ties: the smaller lr). None
    without records. Returns {"variant", "lr", "sweep": [{variant, lr, accuracy, count,
    n_seeds}, ... by lr]}."""
    by_variant: dict[str, list[dict]] = {}
    for r in validation:
        by_variant.setdefault(r["variant"], []).append(r)
    if not by_variant:
        return None
    sweep = []
    for variant, group in by_variant.items():
        lrs = {float(r["model"]["inner_lr"]) for r in group}
        if len(lrs) != 1:
            raise ValueError(f"table1: SGD variant {variant} has learning rates {sorted(lrs)}")
        correct = sum(int(r["task_sets"][TASK_SET]["correct_last"]) for r in group)
        count = sum(int(r["task_sets"][TASK_SET]["num_sequences"]) for r in group)
        sweep.append(
            {
                "variant": variant,
                "lr": lrs.pop(),
                "accuracy": correct / count,
                "count": count,
                "n_seeds": len(group),
            }
        )
    sweep.sort(key=lambda e: e["lr"])
    best = max(sweep, key=lambda e: (e["accuracy"], -e["lr"]))
    return {"variant": best["variant"], "lr": best["lr"], "sweep": sweep}


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


def row_order(present: set[str]) -> list[str]:
    """The paper's five in its order (SGD, tuned lr after SGD when present), other methods
    sorted, then the reference learners present (not meta-learned)."""
    methods = []
    for method in PAPER_TABLE1_PERCENT:
        methods.append(method)
        if method == "sgd" and SGD_TUNED in present:
            methods.append(SGD_TUNED)
    others = sorted(present - set(methods) - set(BASELINE_METHODS))
    return methods + others + [m for m in BASELINE_METHODS if m in present]


def build_rows(
    results: Sequence[tuple[Path, dict]],
    expected_datasets: Sequence[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> list[dict]:
    """CSV rows, method by method (`row_order`), column by column, with each row's resolved
    pairs filled in (`pairs` holds them). `expected_datasets` applies to methods with
    evaluation files and to REQUIRED_ROWS."""
    unavailable = unavailable or {}
    present = {record["method"] for _, record in results}
    bootstraps = _Bootstraps()
    rows = []
    for method in row_order(present):
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
            rows.append(pooled_cell(method, dataset, records, unavailable.get(dataset), bootstraps))
    for row in rows:
        if row["status"] == OK:
            row["resolved_above"], row["resolved_below"] = "", ""
    for pair in pairs(rows):
        if pair["resolved"]:
            cells = {r["method"]: r for r in rows if r["dataset"] == pair["dataset"]}
            a, b = cells[pair["method_a"]], cells[pair["method_b"]]
            above, below = (a, b) if pair["difference"] > 0 else (b, a)
            above["resolved_above"] = ";".join(
                filter(None, [above["resolved_above"], below["method"]])
            )
            below["resolved_below"] = ";".join(
                filter(None, [below["resolved_below"], above["method"]])
            )
    return rows


def pairs(rows: Sequence[dict]) -> list[dict]:
    """Paired differences (row a - row b) of every two rows of a dataset scored on the same
    sequences, with their bootstrap interval (same resamples) and whether it excludes zero."""
    out = []
    for dataset in COLUMNS:
        cells = [r for r in rows if r["dataset"] == dataset and r["status"] == OK and r["_paired"]]
        for i, a in enumerate(cells):
            for b in cells[i + 1 :]:
                if a["_outcomes"].shape[1:] != b["_outcomes"].shape[1:] or a["tier"] != b["tier"]:
                    continue  # not the same sequences
                low, high = percentile_interval(a["_statistics"] - b["_statistics"], CONFIDENCE)
                out.append(
                    {
                        "dataset": dataset,
                        "method_a": a["method"],
                        "method_b": b["method"],
                        "difference": a["ours_accuracy"] - b["ours_accuracy"],
                        "ci_low": low,
                        "ci_high": high,
                        "resolved": resolved(low, high),
                    }
                )
    return out


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
    sgd_choice: dict | None = None,
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
        "seeds, tasks and test sequences (method below the table); n = number of sequences scored. "
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
        tags = [NOT_META_LEARNED if method in BASELINE_METHODS else "ours"]
        if method == SGD_TUNED and sgd_choice is not None:
            tags.append(f"lr {sgd_choice['lr']:g}, best on validation")
        if method in curriculum:
            tags.append("curriculum")
        if len(tiers) > 1 and len(row_tiers) == 1:
            tags.append(f"tier {row_tiers[0]}")
        ours = [ours_cell(cells[d], len(row_tiers) > 1) for d in COLUMNS]
        lines.append(f"| {label} ({', '.join(tags)}) | " + " | ".join(ours) + " |")
        if method in BASELINE_METHODS or method == SGD_TUNED:
            continue  # no paper row
        paper = [
            percent(cells[d]["paper_accuracy"]) if cells[d]["paper_accuracy"] is not None else "-"
            for d in COLUMNS
        ]
        lines.append(f"| {label} (paper) | " + " | ".join(paper) + " |")
    lines += [
        "",
        f"Intervals: {100 * CONFIDENCE:.0f}% hierarchical percentile bootstrap over seeds, tasks "
        f"and sequences within task ({BOOTSTRAP_RESAMPLES:,} resamples, numpy "
        f"default_rng({BOOTSTRAP_SEED})): each resample draws the tasks with replacement, then "
        "the sequences within each drawn task, shared by every seed and every row (all are "
        "scored on the same sequences), and each row's seeds with replacement; statistic: the "
        "pooled accuracy. With one seed the interval covers task and sequence sampling only. "
        "Rows marked not meta-learned learn from each sequence's context alone (gpicl.baselines: "
        "1-nearest neighbour, nearest class mean, ridge regression on one-hot labels), one "
        '"seed".',
    ]
    lines += resolved_section(rows)
    if sgd_choice is not None:
        sweep = ", ".join(
            f"{e['lr']:g}: {percent(e['accuracy'])} (n={e['count']})" for e in sgd_choice["sweep"]
        )
        lines += [
            "",
            f"SGD, tuned lr: the inner learning rate of the sweep with the best pooled "
            f"last-position accuracy on the validation set (MNIST training split, unseen task "
            f"ids disjoint from the test sets'; never the test sequences): {sweep}; chosen "
            f"{sgd_choice['lr']:g}. The SGD row keeps the authors' lr.",
        ]
    if unavailable:
        lines += ["", f"{NOT_AVAILABLE[0].upper()}{NOT_AVAILABLE[1:]}:", ""]
        lines += [f"- {DATASET_LABELS[d]}: {unavailable[d]}" for d in COLUMNS if d in unavailable]
    return "\n".join(lines) + "\n"


def resolved_section(rows: Sequence[dict]) -> list[str]:
    """Markdown: per row and dataset, the rows it is resolved above (the paired difference's
    interval lies above zero); "-" for none, "NA" without a result or a paired comparison."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    header = ["Resolved above"] + [DATASET_LABELS[d] for d in COLUMNS]
    lines = [
        "",
        f"Resolved pairs: the {100 * CONFIDENCE:.0f}% interval of the paired difference of two "
        "rows (same sequences, same resamples) excludes zero; each cell lists the rows this row "
        "is resolved above (all pairs, with intervals: `_pairs.csv`).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method in methods:
        cells = {r["dataset"]: r for r in rows if r["method"] == method}
        text = []
        for d in COLUMNS:
            cell = cells[d]
            if cell["status"] != OK or not cell["_paired"]:
                text.append("NA")
            else:
                above = [m for m in (cell["resolved_above"] or "").split(";") if m]
                text.append(", ".join(METHOD_LABELS.get(m, m) for m in above) or "-")
        lines.append(f"| {METHOD_LABELS.get(method, method)} | " + " | ".join(text) + " |")
    return lines


def make(
    eval_files: Iterable[str | os.PathLike],
    out_prefix: str | os.PathLike,
    expected_datasets: list[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
    status_files: Iterable[str | os.PathLike] = (),
    baseline_files: Iterable[str | os.PathLike] = (),
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
    `baseline_files`: the reference learners' results (`gpicl baselines`), rows "not
    meta-learned".
    """
    out_prefix = Path(out_prefix)
    rows, length, curriculum, reasons, sgd_choice = table(
        eval_files, expected_datasets, unavailable, status_files, baseline_files
    )
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    write_csv(public, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_csv(
        pairs(rows), out_prefix.with_name(out_prefix.name + "_pairs.csv"), columns=PAIR_COLUMNS
    )
    write_text(
        out_prefix.with_name(out_prefix.name + ".md"),
        markdown(rows, length, curriculum, reasons, sgd_choice),
    )


def split_sgd_sweep(
    results: Sequence[tuple[Path, dict]],
) -> tuple[list[tuple[Path, dict]], dict | None]:
    """The test records without the SGD sweep's, plus the chosen lr's test records as the
    "SGD, tuned lr" row (method `sgd_tuned`), and the choice (`choose_sgd_lr` on the sweep's
    validation records; None without a sweep). The sweep's test records of other learning rates
    are left out: only the validation numbers choose."""
    validation = [r for _, r in results if r.get("split", "test") == VALIDATION_SPLIT]
    test = [(p, r) for p, r in results if r.get("split", "test") != VALIDATION_SPLIT]
    sweep = [(p, r) for p, r in test if r["method"] == "sgd" and r.get("variant") is not None]
    kept = [(p, r) for p, r in test if not (r["method"] == "sgd" and r.get("variant") is not None)]
    others = sorted({r["method"] for r in validation} - {"sgd"})
    if others or any(r.get("variant") is None for r in validation):
        raise ValueError(f"table1: validation records are for the SGD sweep only, not {others}")
    choice = choose_sgd_lr([r for r in validation if r["dataset"] == TRAIN_DATASET])
    if sweep and choice is None:
        raise ValueError(
            "table1: the SGD learning-rate sweep has test records but no validation record "
            "to choose on"
        )
    if choice is not None:
        kept += [
            (p, {**r, "method": SGD_TUNED}) for p, r in sweep if r["variant"] == choice["variant"]
        ]
    return kept, choice


def table(
    eval_files: Iterable[str | os.PathLike],
    expected_datasets: list[str] | None = None,
    unavailable: Mapping[str, str] | None = None,
    status_files: Iterable[str | os.PathLike] = (),
    baseline_files: Iterable[str | os.PathLike] = (),
) -> tuple[list[dict], int, set[str], dict[str, str], dict | None]:
    """Table 1's rows (as in its CSV, with private `_` keys), the sequence length, the
    curriculum-trained methods, the unavailable datasets' reasons and the SGD sweep's choice;
    the arguments are make()'s."""
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
    results, sgd_choice = split_sgd_sweep(results)
    baselines = [
        (path, record)
        for path, record in read_baseline_results(baseline_files, TASK_SET)
        if record["dataset"] in COLUMNS and record.get("split", "test") == "test"
    ]
    for path, record in baselines:
        check_correct_last(path, record, TASK_SET)
    results += baselines
    reject_duplicates(results, ("method", "dataset", "seed"), "table1")
    length = single_value(results, "sequence_length", "table1")
    curriculum = {record["method"] for _, record in results if record["curriculum"]}

    reasons = check_unavailable({**load_unavailable(status_files), **(unavailable or {})}, results)
    rows = build_rows(results, expected_datasets, reasons)
    return rows, length, curriculum, reasons, sgd_choice
