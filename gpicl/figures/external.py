"""Table: the exported in-context learner beyond its training datasets (gpicl.external).

Rows: dataset x context size; columns: the in-context learner, 1-NN, 5-NN and logistic
regression (mean accuracy over the resamplings [95% percentile bootstrap interval]), the
number of features and of classes. A cell of the in-context learner is marked where it loses:
the paired interval of its difference to the best other learner of the row lies below 0.

Writes `<prefix>.md`, `<prefix>.csv` (`gpicl.external.CSV_COLUMNS`, one row per dataset,
context size and learner; byte-identical for the same inputs and options) and
`<prefix>_speed.csv` (`gpicl.external.SPEED_COLUMNS`: predictions per second, which vary from
run to run). scikit-learn's 8x8 digits are never evaluated: kept aside for an independent check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gpicl.external import (
    CSV_COLUMNS,
    LEARNER_LABELS,
    LEARNERS,
    SPEED_COLUMNS,
    cache_dataset,
    check_datasets,
    evaluate,
)
from gpicl.io import load_artifact, write_text
from gpicl.plotting import write_csv

LOSS_MARK = "▼"
DATASET_NAMES = {
    "wine": "Wine",
    "breast_cancer": "Breast cancer",
    "iris": "Iris",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
}


def make(
    model_files: Sequence[str | os.PathLike],
    out_prefix: str | os.PathLike,
    cache_files: Sequence[str | os.PathLike] = (),
    *,
    datasets: Sequence[str],
    context_sizes: Sequence[int],
    resamples: int,
    query_size: int,
    seed: int,
    n_estimators: int,
    threads: int = 1,
) -> None:
    """Score the model file (one: the exported default learner) on `datasets` (image datasets
    from `cache_files`, results/cache/<dataset>-<spec>.pt) and write the table."""
    import torch

    from gpicl.classifier import load_model

    if len(model_files) != 1:
        raise ValueError(f"external: one model file, got {len(model_files)}")
    check_datasets(list(datasets))
    torch.set_num_threads(threads)
    model = Path(model_files[0])
    _, info = load_model(model)
    train_dataset = load_artifact(model, "model")["config"].get("train_dataset", "its")
    caches = {cache_dataset(p): p for p in cache_files}
    rows, speed = evaluate(
        model, datasets, context_sizes, resamples, query_size, seed, n_estimators, caches
    )
    out_prefix = Path(out_prefix)
    write_csv(rows, out_prefix.with_name(out_prefix.name + ".csv"), columns=CSV_COLUMNS)
    write_csv(speed, out_prefix.with_name(out_prefix.name + "_speed.csv"), columns=SPEED_COLUMNS)
    text = markdown(
        rows, info.input_size, info.seq_len, resamples, query_size, n_estimators, train_dataset
    )
    write_text(out_prefix.with_name(out_prefix.name + ".md"), text)


def _cell(row: dict) -> str:
    if row["accuracy"] is None:
        return row["note"] or "-"
    cell = f"{row['accuracy']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
    if row["diff_high"] is not None and row["diff_high"] < 0:
        cell += f" {LOSS_MARK}"
    return cell


def markdown(
    rows: list[dict],
    input_size: int,
    seq_len: int,
    resamples: int,
    query_size: int,
    n_estimators: int,
    train_dataset: str = "its",
) -> str:
    by_key: dict[tuple[str, int], dict[str, dict]] = {}
    for row in rows:
        by_key.setdefault((row["dataset"], row["context_size"]), {})[row["learner"]] = row
    header = ["dataset", "context", *(LEARNER_LABELS[k] for k in LEARNERS), "features", "classes"]
    lines = [
        "# The in-context learner beyond its training datasets",
        "",
        f"Mean accuracy on up to {query_size} queries over {resamples} resamplings of a "
        "stratified context and disjoint queries [95% percentile bootstrap interval]. "
        f"In-context learner: the exported model ({input_size} inputs, meta-trained on "
        f"sequences of {seq_len}), {n_estimators} ensemble members, no gradient step; the "
        "others fitted on the same context after the same z-normalisation. MNIST and "
        "Fashion-MNIST: their test splits as preprocessed for the tier, as features through the "
        "learner's own adapter (a random projection and class-to-slot assignment: an unseen "
        "task). "
        f"{LOSS_MARK}: the in-context learner loses to the best other learner of the row "
        "(paired 95% interval of the difference below 0). Predictions per second: "
        "external_speed.csv (they vary between runs). scikit-learn's 8x8 digits are kept aside "
        "for an independent check and are not in this table.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:", *[":---:"] * len(LEARNERS), "---:", "---:"]) + "|",
    ]
    losses = []
    for (name, c), cells in by_key.items():
        first = cells[LEARNERS[0]]
        n_features = "-" if first["n_features"] is None else str(first["n_features"])
        n_classes = "-" if first["n_classes"] is None else str(first["n_classes"])
        lines.append(
            "| "
            + " | ".join(
                [
                    DATASET_NAMES.get(name, name),
                    str(c),
                    *(_cell(cells[k]) for k in LEARNERS),
                    n_features,
                    n_classes,
                ]
            )
            + " |"
        )
        if first["diff_high"] is not None and first["diff_high"] < 0:
            losses.append(
                f"{DATASET_NAMES.get(name, name)} at context {c} "
                f"({first['diff']:+.3f} vs {LEARNER_LABELS[first['vs_best']]})"
            )
    lines.append("")
    if losses:
        lines.append(
            "The in-context learner loses on: "
            + "; ".join(losses)
            + f". Why it may: it was meta-trained on {input_size} pixels of "
            f"{DATASET_NAMES.get(train_dataset, train_dataset)} images under random "
            "projections, and tabular features (few, on unrelated scales, correlated in ways no "
            "random projection of pixels is) are far from what it saw; a context of a few "
            "examples per class gives it little to go on"
            + (
                f"; a context longer than {seq_len - 1} examples is subsampled for it while "
                "the other learners see all of it."
                if max(c for _, c in by_key) > seq_len - 1
                else "."
            )
        )
    else:
        lines.append(
            "The in-context learner loses nowhere here (no paired interval of its difference "
            "to the best other learner lies below 0)."
        )
    missing = sorted({name for (name, _), cells in by_key.items() if cells[LEARNERS[0]]["note"]})
    if missing:
        lines += ["", f"Data not available (no data cache): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
