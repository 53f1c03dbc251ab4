"""Reference learners that are not meta-learned (Table 1's "not meta-learned" rows, Figure 3's
dashed curves): each learns from the context of one evaluation sequence alone.

At position t a learner is fitted on examples 0..t-1 of the sequence, after the task's random
projection and label permutation (`gpicl.augment.apply_tasks`, the inputs and labels the models
see), and predicts the label of example t; position 0 (no context) predicts label 0. So the last
position is fitted on the 99 context examples and scored on the 100th, as the models are.

- `nearest_neighbour`: the label of the closest context input (squared Euclidean distance in
  float64, ties to the earliest example).
- `nearest_class_mean`: the class whose context mean is closest (classes absent from the context
  are never predicted; ties to the lowest label).
- `ridge`: one-hot least squares with a bias feature and L2 penalty `RIDGE_PENALTY` (fixed, not
  tuned), the closed-form linear classifier; argmax of the scores (ties to the lowest label).

All are batched over sequences with torch (float64, deterministic); Python loops over chunks of
sequences only. One JSON per (tier, meta-test dataset) holds every learner as an evaluation
record of the unseen task set (`gpicl.results.read_baseline_results` reads them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES, apply_tasks
from gpicl.cache import RANDOM_DATASET, eval_inputs
from gpicl.evaluate import outcome_strings
from gpicl.io import load_artifact, rounded, write_json

RIDGE_PENALTY = 1.0
TASK_SET = "unseen"
KIND = "baselines"


def nearest_neighbour(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, L) predictions: at t, the label of the nearest of x[:, :t] (t = 0: label 0)."""
    x = x.double()
    dist = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")  # (B, L, L)
    L = x.shape[1]
    future = torch.ones(L, L, dtype=torch.bool, device=x.device).triu()  # j >= t
    dist = dist.masked_fill(future, float("inf"))
    nearest = dist.argmin(dim=-1)  # first minimum: the earliest example on ties
    pred = torch.gather(y, 1, nearest)
    pred[:, 0] = 0
    return pred


def nearest_class_mean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, L) predictions: at t, the class of x[:, :t] whose mean is nearest to x[:, t]."""
    x = x.double()
    onehot = F.one_hot(y, NUM_CLASSES).double()  # (B, L, C)
    counts = onehot.cumsum(1) - onehot  # examples before t
    sums = (onehot.unsqueeze(-1) * x.unsqueeze(2)).cumsum(1) - onehot.unsqueeze(-1) * x.unsqueeze(2)
    means = sums / counts.clamp_min(1).unsqueeze(-1)  # (B, L, C, D)
    dist = ((means - x.unsqueeze(2)) ** 2).sum(-1)
    dist = dist.masked_fill(counts == 0, float("inf"))
    pred = dist.argmin(-1)
    pred[:, 0] = 0
    return pred


def ridge(x: torch.Tensor, y: torch.Tensor, penalty: float = RIDGE_PENALTY) -> torch.Tensor:
    """(B, L) predictions: at t, argmax of phi(x_t) W_t, W_t = (Phi^T Phi + penalty I)^-1
    Phi^T Y over the examples before t, phi(x) = [x, 1], Y one-hot (t = 0: W = 0, label 0)."""
    x = x.double()
    B, L, D = x.shape
    phi = torch.cat([x, x.new_ones(B, L, 1)], dim=-1)  # (B, L, D + 1)
    onehot = F.one_hot(y, NUM_CLASSES).double()
    outer = phi.unsqueeze(-1) * phi.unsqueeze(-2)  # (B, L, D+1, D+1)
    gram = outer.cumsum(1) - outer
    cross = (phi.unsqueeze(-1) * onehot.unsqueeze(-2)).cumsum(1)
    cross = cross - phi.unsqueeze(-1) * onehot.unsqueeze(-2)  # (B, L, D+1, C)
    eye = torch.eye(D + 1, dtype=x.dtype, device=x.device)
    weights = torch.linalg.solve(gram + penalty * eye, cross)
    scores = (phi.unsqueeze(-2) @ weights).squeeze(-2)  # (B, L, C)
    return scores.argmax(-1)


LEARNERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "nearest_neighbour": nearest_neighbour,
    "nearest_class_mean": nearest_class_mean,
    "ridge": ridge,
}
# Sequences per call: bounds memory (ridge holds (chunk, L, D+1, D+1) float64).
CHUNK = {"nearest_neighbour": 256, "nearest_class_mean": 64, "ridge": 32}


def predict(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A learner's (T, S, L) predictions on (T, S, L, Nx) inputs, in chunks of sequences."""
    T, S, L, D = x.shape
    flat_x, flat_y = x.reshape(T * S, L, D), y.reshape(T * S, L)
    step = CHUNK[name]
    pred = [
        LEARNERS[name](flat_x[i : i + step], flat_y[i : i + step]) for i in range(0, T * S, step)
    ]
    return torch.cat(pred).view(T, S, L)


def learner_stats(pred: torch.Tensor, y: torch.Tensor) -> dict:
    """The unseen task set's statistics in the evaluation-file format (no loss: hard labels)."""
    T, S, L = y.shape
    hits = pred == y
    correct = hits.sum(dim=(0, 1))
    return {
        "num_tasks": T,
        "num_sequences": T * S,
        "accuracy": rounded((correct.double() / (T * S)).tolist()),
        "loss": None,
        "correct_last": int(correct[-1]),
        "last_outcomes": outcome_strings(hits[..., -1]),
    }


def run_baselines(
    evalset_path: str | Path,
    cache_path: str | Path | None,
    out_path: str | Path,
    task_seed: int,
    tier: str,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Every learner on the unseen tasks of one evaluation set; writes one JSON of records."""
    if threads is not None:
        torch.set_num_threads(threads)
    evalset = load_artifact(evalset_path, "evalset")
    cache = None
    if evalset["dataset"] != RANDOM_DATASET:
        if cache_path is None:
            raise ValueError(f"{evalset_path}: {evalset['dataset']} needs its --cache")
        cache = load_artifact(cache_path, "cache")
        if (cache.get("dataset"), cache.get("spec")) != (evalset["dataset"], evalset["spec"]):
            raise ValueError(
                f"{cache_path} is the cache of {cache.get('dataset')} ({cache.get('spec')}), "
                f"not of {evalset['dataset']} ({evalset['spec']})"
            )
    x, y = eval_inputs(evalset, cache)
    x, y = apply_tasks(x, y, task_seed, evalset["unseen_ids"])
    length = y.shape[-1]
    records = []
    for name in LEARNERS:
        start = time.perf_counter()
        stats = learner_stats(predict(name, x, y), y)
        log(
            f"{name}: {time.perf_counter() - start:.2f} s for {y.shape[0] * y.shape[1]} "
            f"sequences, last-position accuracy {stats['accuracy'][-1]:.4f}"
        )
        records.append(
            {
                "run": f"{KIND}/{name}",
                "train_dataset": None,
                "dataset": evalset["dataset"],
                "split": evalset.get("split", "test"),
                "seed": 0,  # nothing random: one "seed"
                "tier": tier,
                "method": name,
                "not_meta_learned": True,
                "curriculum": False,
                "sequence_length": length,
                "task_sets": {TASK_SET: stats},
            }
        )
    result = {
        "kind": KIND,
        "dataset": evalset["dataset"],
        "tier": tier,
        "task_seed": task_seed,
        "ridge_penalty": RIDGE_PENALTY,
        "records": records,
    }
    write_json(out_path, result)
    return result
