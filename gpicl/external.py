"""Evaluation beyond the training datasets: the exported in-context learner against learners
that are not meta-learned, on small tabular datasets and on unseen image datasets.

For each dataset of `experiments.external.datasets` and each context size of the tier's
`context_sizes`, `resamples` times: a stratified context of that size (every class at least
once, the rest in proportion to the class counts) and a disjoint query set of up to
`query_size` other examples (uniform over the rest). On the same context, after the same
z-normalisation (mean and standard deviation of the context; a constant feature becomes 0):

- `in_context`: `gpicl.InContextClassifier` with the given (exported) model, `n_estimators`
  members, random_state the resample's seed. Its adapter z-normalises the raw features itself
  and maps them to the model's input size with a fixed random projection; a context longer than
  the model's sequence length minus one is subsampled per member (the classifier's docstring).
- `1nn`, `5nn`: scikit-learn's KNeighborsClassifier, k = 1 and k = min(5, context size);
  fixed, not tuned.
- `logistic`: scikit-learn's LogisticRegression, default C = 1, max_iter 5000.

Datasets: `wine`, `breast_cancer`, `iris` are scikit-learn's bundled copies (no download);
`mnist` and `fashion_mnist` are the test split of the tier's data cache
(results/cache/<dataset>-<spec>.pt: images preprocessed to the model's input size and
z-normalised with the training split's statistics) taken as raw features through the
classifier's own adapter: its random projection and random assignment of classes to label
slots are a task the model never saw, so these rows measure unseen tasks the way a user of the
estimator meets them (not with `gpicl.augment.apply_tasks`' task ids, which Table 1 measures).
The default learner was meta-trained on MNIST's training split, so `mnist` is unseen tasks on
unseen images of a seen dataset; `fashion_mnist` is an unseen dataset.

scikit-learn's 8x8 `digits` is left out on purpose: it is kept aside for an independent check
of the learner, so it is refused here (and by the params schema).

Seeds: resample r of (dataset, context size c) draws from
SeedSequence([eval_seed, crc32(dataset), c, r]), so adding a dataset or a context size changes
no other row. Each row's interval is a 95% percentile bootstrap over the resamplings
(`metrics.BOOTSTRAP_RESAMPLES` draws, `metrics.BOOTSTRAP_SEED`); the in-context learner's
difference to the best other learner of the row is bootstrapped on the same (paired) draws.

Everything but time is deterministic: the same inputs and options give the same accuracies.
Timings (predictions per second: queries over the seconds of fit + predict, summed over the
resamplings) vary between runs and go to a separate table (`speed_rows`).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpicl.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, percentile_interval

SKLEARN_DATASETS = ("wine", "breast_cancer", "iris")
CACHE_DATASETS = ("mnist", "fashion_mnist")
DATASETS = (*SKLEARN_DATASETS, *CACHE_DATASETS)
# Kept aside for an independent check of the learner: never scored here.
HELD_OUT = {"digits": "scikit-learn's 8x8 digits are kept aside for an independent check"}
LEARNERS = ("in_context", "1nn", "5nn", "logistic")
BASELINES = LEARNERS[1:]
LEARNER_LABELS = {
    "in_context": "in-context learner",
    "1nn": "1-NN",
    "5nn": "5-NN",
    "logistic": "logistic regression",
}
LOGISTIC_MAX_ITER = 5000


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # (n, d) float64
    y: np.ndarray  # (n,) int64

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.y))


def check_datasets(names: Sequence[str]) -> None:
    """Refuse held-out, unknown and repeated dataset names."""
    for name in names:
        if name in HELD_OUT:
            raise ValueError(f"dataset {name!r} is not evaluated here: {HELD_OUT[name]}")
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if len(set(names)) != len(names):
        raise ValueError(f"datasets listed twice: {list(names)}")


def load_dataset(name: str, caches: Mapping[str, str | os.PathLike] | None = None) -> Dataset:
    """A dataset's features and labels: scikit-learn's bundled copy, or the test split of a
    data cache (`caches`: dataset -> cache file)."""
    check_datasets([name])
    if name in SKLEARN_DATASETS:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")()
        return Dataset(name, np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64))
    path = (caches or {}).get(name)
    if path is None:
        raise ValueError(f"dataset {name!r}: no data cache given (results/cache/{name}-<spec>.pt)")
    from gpicl.io import load_artifact

    cache = load_artifact(path, "cache", map_location="cpu")
    if cache.get("dataset", name) != name:
        raise ValueError(f"{os.fspath(path)}: a cache of {cache['dataset']!r}, not {name!r}")
    x = cache["x_test"].double().numpy()
    return Dataset(name, x.reshape(len(x), -1), cache["y_test"].long().numpy())


def cache_dataset(path: str | os.PathLike) -> str:
    """The dataset a data cache file holds (results/cache/<dataset>-<spec>.pt)."""
    return Path(path).name.rsplit("-", 1)[0]


def resample_seed(seed: int, dataset: str, context_size: int, resample: int) -> int:
    state = np.random.SeedSequence([seed, zlib.crc32(dataset.encode()), context_size, resample])
    return int(state.generate_state(1)[0])


def stratified_split(
    y: np.ndarray, context_size: int, query_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(context indices, query indices): a context of `context_size` with every class at least
    once and the rest allotted in proportion to the class counts (largest remainder), then up
    to `query_size` queries drawn uniformly from the examples left. Disjoint."""
    classes, counts = np.unique(y, return_counts=True)
    if context_size < len(classes):
        raise ValueError(
            f"a context of {context_size} cannot hold each of the {len(classes)} classes"
        )
    if context_size >= len(y):
        raise ValueError(f"a context of {context_size} leaves no query among {len(y)} examples")
    share = counts * (context_size / len(y))
    alloc = np.minimum(counts, np.maximum(1, np.floor(share).astype(np.int64)))
    while alloc.sum() > context_size:  # the floor of 1 overshot: take from the largest excess
        excess = np.where(alloc > 1, alloc - share, -np.inf)
        alloc[int(np.argmax(excess))] -= 1
    while alloc.sum() < context_size:  # largest remainder first
        room = np.where(alloc < counts, share - alloc, -np.inf)
        alloc[int(np.argmax(room))] += 1
    context = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
            for c, k in zip(classes, alloc, strict=True)
        ]
    )
    rest = np.setdiff1d(np.arange(len(y)), context)
    queries = rng.choice(rest, size=min(query_size, len(rest)), replace=False)
    return rng.permutation(context), np.sort(queries)


def _learners(model, n_estimators: int, seed: int, context_size: int) -> dict[str, Callable]:
    """Fresh estimators, one per learner (the baselines behind a StandardScaler)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gpicl.classifier import InContextClassifier

    return {
        "in_context": lambda: InContextClassifier(
            model, n_estimators=n_estimators, random_state=seed
        ),
        "1nn": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1)),
        "5nn": lambda: make_pipeline(
            StandardScaler(), KNeighborsClassifier(n_neighbors=min(5, context_size))
        ),
        "logistic": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=LOGISTIC_MAX_ITER)
        ),
    }


def score_resample(
    model, data: Dataset, context: np.ndarray, queries: np.ndarray, n_estimators: int, seed: int
) -> dict[str, tuple[float, float]]:
    """learner -> (accuracy on the queries, seconds of fit + predict)."""
    x_c, y_c, x_q, y_q = data.x[context], data.y[context], data.x[queries], data.y[queries]
    out = {}
    for name, build in _learners(model, n_estimators, seed, len(context)).items():
        start = time.perf_counter()
        predicted = build().fit(x_c, y_c).predict(x_q)
        seconds = time.perf_counter() - start
        out[name] = (float(np.mean(predicted == y_q)), seconds)
    return out


def bootstrap_mean(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over the last axis (fixed draws: the same
    draws for arrays of the same length, so two rows' intervals are paired)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    return percentile_interval(values[draws].mean(axis=1), confidence)


def evaluate(
    model,
    datasets: Sequence[str],
    context_sizes: Sequence[int],
    resamples: int,
    query_size: int,
    seed: int,
    n_estimators: int,
    caches: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[list[dict], list[dict]]:
    """(accuracy rows, speed rows): one per (dataset, context size, learner), in the order of
    `datasets`, `context_sizes` and LEARNERS. A dataset whose data cache is missing gets rows
    with accuracy None and `note` "data not available"."""
    check_datasets(list(datasets))
    if resamples < 2:
        raise ValueError(f"resamples must be >= 2 for an interval, got {resamples}")
    rows, speed = [], []
    for name in datasets:
        if name in CACHE_DATASETS and name not in (caches or {}):
            for c in context_sizes:
                for learner in LEARNERS:
                    rows.append(_row(name, c, learner, note="data not available"))
            continue
        data = load_dataset(name, caches)
        for c in context_sizes:
            scores = {learner: [] for learner in LEARNERS}
            for r in range(resamples):
                s = resample_seed(seed, name, c, r)
                context, queries = stratified_split(data.y, c, query_size, np.random.default_rng(s))
                for learner, result in score_resample(
                    model, data, context, queries, n_estimators, s
                ).items():
                    scores[learner].append((*result, len(queries)))
            acc = {k: np.array([a for a, _, _ in v]) for k, v in scores.items()}
            best = max(BASELINES, key=lambda k: (acc[k].mean(), -BASELINES.index(k)))
            for learner in LEARNERS:
                low, high = bootstrap_mean(acc[learner])
                row = _row(name, c, learner, data=data, queries=scores[learner])
                row.update(accuracy=float(acc[learner].mean()), low=low, high=high)
                if learner == "in_context":
                    diff = acc[learner] - acc[best]
                    d_low, d_high = bootstrap_mean(diff)
                    row.update(
                        vs_best=best, diff=float(diff.mean()), diff_low=d_low, diff_high=d_high
                    )
                rows.append(row)
                n_pred = sum(q for _, _, q in scores[learner])
                seconds = sum(t for _, t, _ in scores[learner])
                speed.append(
                    {
                        "dataset": name,
                        "context_size": c,
                        "learner": learner,
                        "predictions": n_pred,
                        "seconds": seconds,
                        "predictions_per_second": n_pred / seconds if seconds > 0 else None,
                    }
                )
    return rows, speed


def _row(name, c, learner, data: Dataset | None = None, queries=None, note="") -> dict:
    return {
        "dataset": name,
        "context_size": c,
        "learner": learner,
        "accuracy": None,
        "low": None,
        "high": None,
        "resamples": len(queries) if queries else 0,
        "queries": sum(q for _, _, q in queries) if queries else 0,
        "n_features": data.n_features if data else None,
        "n_classes": data.n_classes if data else None,
        "vs_best": None,
        "diff": None,
        "diff_low": None,
        "diff_high": None,
        "note": note,
    }


CSV_COLUMNS = tuple(_row("", 0, "").keys())
SPEED_COLUMNS = (
    "dataset",
    "context_size",
    "learner",
    "predictions",
    "seconds",
    "predictions_per_second",
)
