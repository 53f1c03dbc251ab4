"""Per-position accuracy and loss on the fixed evaluation task sets (seen / unseen / identity).

Seen ids come from the run's own training pool, unseen ids are negative (never drawn in
training), identity is the raw dataset (no projection, no permutation). Headline number: the
accuracy of the last prediction (docs/paper.md#evaluation).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from gpicl.augment import PreprocessSpec, apply_tasks, make_tokens
from gpicl.cache import RANDOM_DATASET, eval_inputs
from gpicl.io import load_artifact, rounded, write_json
from gpicl.models import build_model, model_size
from gpicl.repro import pick_device, set_determinism

TASK_SETS = ("seen", "unseen", "identity")


def task_ids_for(task_set: str, evalset: dict, num_tasks: int) -> torch.Tensor | None:
    """The task ids a task set evaluates for a run trained on a pool of `num_tasks` ids."""
    if task_set == "seen":
        return evalset["seen_draws"] % num_tasks
    if task_set == "unseen":
        return evalset["unseen_ids"]
    if task_set == "identity":
        return None
    raise ValueError(f"unknown task set {task_set!r}")


@torch.no_grad()
def per_position_stats(model, x, y, task_seed, ids, tasks_per_chunk: int = 4) -> dict:
    """Sums of correct predictions and of losses per position over all sequences, in chunks of
    tasks so memory stays bounded. x: (T, S, L, Nx), y: (T, S, L)."""
    T, S, L, _ = x.shape
    correct = torch.zeros(L, dtype=torch.int64)
    loss_sum = torch.zeros(L, dtype=torch.float64)
    last = torch.zeros(T, S, dtype=torch.int64)  # outcome of each sequence's last prediction
    device = next(iter(model.parameters()), torch.empty(0)).device
    for lo in range(0, T, tasks_per_chunk):
        hi = min(T, lo + tasks_per_chunk)
        chunk_ids = None if ids is None else ids[lo:hi].to(device)
        xt, yt = apply_tasks(x[lo:hi].to(device), y[lo:hi].to(device), task_seed, chunk_ids)
        logits = model(make_tokens(xt, yt).flatten(0, 1)).float()  # (B, L, 10)
        targets = yt.flatten(0, 1)
        hits = (logits.argmax(-1) == targets).cpu()  # (B, L)
        correct += hits.sum(0)
        last[lo:hi] = hits[:, -1].view(hi - lo, S)
        loss_sum += (
            F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").sum(0).cpu().double()
        )
    n = T * S
    return {
        "num_tasks": T,
        "num_sequences": n,
        "accuracy": rounded((correct.double() / n).tolist()),
        "loss": rounded((loss_sum / n).tolist()),
        "correct_last": int(correct[-1]),
        # Per task, one '0'/'1' per sequence: what Table 1's bootstrap resamples.
        "last_outcomes": outcome_strings(last),
    }


def outcome_strings(outcomes: torch.Tensor) -> list[str]:
    """(T, S) 0/1 outcomes as one string of '0'/'1' per task (compact JSON)."""
    return ["".join("1" if v else "0" for v in row) for row in outcomes.tolist()]


def check_inputs_agree(model_path, run_cfg, evalset_path, evalset, cache_path, cache) -> None:
    """Refuse a cache made for another dataset or preprocessing than the evaluation set, and a
    model trained under another preprocessing: the result file would carry the wrong label."""
    model_spec = PreprocessSpec(**run_cfg["preprocess"]).tag
    if evalset["spec"] != model_spec:
        raise ValueError(
            f"{evalset_path} is preprocessed {evalset['spec']}, but {model_path} was trained on "
            f"{model_spec} inputs"
        )
    if cache is None:
        return
    made_for = (cache.get("dataset"), cache.get("spec"))
    if made_for != (evalset["dataset"], evalset["spec"]):
        raise ValueError(
            f"{cache_path} is the cache of {made_for[0]} ({made_for[1]}), but {evalset_path} "
            f"evaluates {evalset['dataset']} ({evalset['spec']})"
        )


def evaluate_run(
    model_path: str | Path,
    evalset_path: str | Path,
    cache_path: str | Path | None,
    out_path: str | Path,
    experiment_meta: dict,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Score one trained run on one meta-test dataset; writes the result JSON."""
    dev = pick_device(device)
    set_determinism(0, threads)
    saved = load_artifact(model_path, "model", map_location=dev)
    run_cfg = saved["config"]
    if experiment_meta.get("tier", run_cfg["tier"]) != run_cfg["tier"]:
        raise ValueError(
            f"{model_path} was trained in tier {run_cfg['tier']}, but the result would be "
            f"labelled tier {experiment_meta['tier']}"
        )
    evalset = load_artifact(evalset_path, "evalset")
    cache = None
    if evalset["dataset"] != RANDOM_DATASET:
        if cache_path is None:
            raise ValueError(f"{evalset_path}: evaluating {evalset['dataset']} needs its --cache")
        cache = load_artifact(cache_path, "cache")
    check_inputs_agree(model_path, run_cfg, evalset_path, evalset, cache_path, cache)
    x, y = eval_inputs(evalset, cache)
    seq_len = run_cfg["train"]["seq_len"]
    if x.shape[2] < seq_len:
        raise ValueError(f"evaluation sequences ({x.shape[2]}) shorter than training ({seq_len})")
    x, y = x[:, :, :seq_len], y[:, :, :seq_len]
    model = build_model(run_cfg["model"], x.shape[-1], seq_len).to(dev)
    model.load_state_dict(saved["model"])
    model.eval()
    result = dict(experiment_meta)
    result.update(
        run=run_cfg["name"],
        experiment=run_cfg["experiment"],
        model_size=model_size(run_cfg["model"]),
        num_tasks=run_cfg["train"]["num_tasks"],
        dataset=evalset["dataset"],
        # "test", or "train" for a validation set drawn from the training split (Table 1's
        # SGD learning-rate sweep chooses on it).
        split=evalset.get("split", "test"),
        variant=run_cfg.get("variant"),
        train_dataset=run_cfg["train_dataset"],
        seed=run_cfg["seed"],
        method=run_cfg["model"].get("type", "transformer"),
        # Only a run that trained can have been shaped by the curriculum (SGD trains 0 steps).
        curriculum=bool(run_cfg["train"].get("curriculum")) and run_cfg["train"]["steps"] > 0,
        sequence_length=seq_len,
        num_params=model.num_params(),
        state_size=model.state_size(),
        model=run_cfg["model"],
        task_sets={
            name: per_position_stats(
                model,
                x,
                y,
                run_cfg["task_seed"],
                task_ids_for(name, evalset, run_cfg["train"]["num_tasks"]),
            )
            for name in TASK_SETS
        },
    )
    write_json(out_path, result)
    return result
