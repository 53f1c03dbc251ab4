"""Reference learners (gpicl.baselines), Table 1's task-level bootstrap and paired differences,
and the SGD learning rate chosen on the validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpicl.augment import PreprocessSpec, apply_tasks
from gpicl.baselines import (
    learner_stats,
    nearest_class_mean,
    nearest_neighbour,
    predict,
    ridge,
    run_baselines,
)
from gpicl.cache import build_eval_set, eval_inputs
from gpicl.config import load_params, lr_variant, run_config
from gpicl.figures import table1
from gpicl.io import load_artifact
from gpicl.metrics import bootstrap_interval, difference_interval, resolved


def tiny(seed=0, B=3, L=12, D=4):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, D, generator=gen), torch.randint(0, 10, (B, L), generator=gen)


def test_nearest_neighbour_equals_a_brute_force_loop():
    x, y = tiny()
    pred = nearest_neighbour(x, y)
    for b in range(x.shape[0]):
        assert pred[b, 0] == 0
        for t in range(1, x.shape[1]):
            dist = [float(((x[b, j] - x[b, t]) ** 2).sum()) for j in range(t)]
            assert pred[b, t] == y[b, int(np.argmin(dist))]


def test_nearest_class_mean_equals_a_brute_force_loop():
    x, y = tiny(1)
    pred = nearest_class_mean(x, y)
    for b in range(x.shape[0]):
        for t in range(1, x.shape[1]):
            best, best_dist = None, float("inf")
            for c in range(10):
                members = [x[b, j] for j in range(t) if y[b, j] == c]
                if members:
                    dist = float(((torch.stack(members).mean(0) - x[b, t]) ** 2).sum())
                    if dist < best_dist:
                        best, best_dist = c, dist
            assert pred[b, t] == best


def test_ridge_equals_the_normal_equations_at_each_position():
    x, y = tiny(2)
    pred = ridge(x, y, penalty=0.5)
    for b in range(x.shape[0]):
        for t in range(1, x.shape[1]):
            phi = np.c_[x[b, :t].double().numpy(), np.ones(t)]
            w = np.linalg.solve(
                phi.T @ phi + 0.5 * np.eye(phi.shape[1]), phi.T @ np.eye(10)[y[b, :t].numpy()]
            )
            assert pred[b, t] == int(np.argmax(np.r_[x[b, t].double().numpy(), 1.0] @ w))


def test_baselines_see_the_projected_permuted_inputs(tmp_path):
    spec = PreprocessSpec(resize=4, channels=1)
    build_eval_set("random", spec, 3, 4, 30, 7, tmp_path / "random.pt")
    out = run_baselines(
        tmp_path / "random.pt", None, tmp_path / "b.json", 11, "ci", log=lambda _: None
    )
    stats = {r["method"]: r["task_sets"]["unseen"] for r in out["records"]}
    # one image per class: 1-NN and class means are exact once every class was seen
    assert stats["nearest_neighbour"]["accuracy"][-1] == 1.0
    assert stats["nearest_class_mean"]["accuracy"][-1] == 1.0
    # the numbers are those of the task's projection and label permutation, not the raw set
    evalset = load_artifact(tmp_path / "random.pt", "evalset")
    x, y = eval_inputs(evalset, None)
    xt, yt = apply_tasks(x, y, 11, evalset["unseen_ids"])
    assert not torch.equal(yt, y)
    assert learner_stats(predict("nearest_neighbour", xt, yt), yt) == stats["nearest_neighbour"]
    assert learner_stats(predict("ridge", xt, yt), yt) == stats["ridge"]
    raw = learner_stats(predict("ridge", x, y), y)
    assert raw["accuracy"] != stats["ridge"]["accuracy"]


def test_bootstrap_resamples_tasks():
    """Same accuracy (1/2), same sequences per task: an interval is wider when whole tasks
    differ (each task all right or all wrong) than when sequences within every task do."""
    rng = np.random.default_rng(0)
    by_task = np.zeros((1, 16, 16), dtype=np.uint8)
    by_task[0, ::2] = 1
    within = np.zeros((1, 16, 16), dtype=np.uint8)
    within[0, :, ::2] = 1
    rng.shuffle(within[0], axis=1)
    low_t, high_t = bootstrap_interval(by_task)
    low_w, high_w = bootstrap_interval(within)
    assert low_t < 0.5 < high_t
    assert high_t - low_t > 2 * (high_w - low_w)


def test_paired_difference_of_identical_rows_is_not_resolved():
    rng = np.random.default_rng(1)
    a = (rng.random((2, 8, 8)) < 0.6).astype(np.uint8)
    diff, low, high = difference_interval(a, a.copy())
    assert (diff, low, high) == (0.0, 0.0, 0.0)
    assert not resolved(low, high)
    better = a.copy()
    better[:, :, :4] = 1  # half of every task's sequences made right
    diff, low, high = difference_interval(better, a)
    assert diff > 0 and resolved(low, high) and low > 0


def record(variant, lr, split, dataset, seed, correct, n=64):
    outcomes = ["1" * correct + "0" * (n - correct)]
    return {
        "run": f"table1/mnist-sgd128-v{variant}-s{seed}",
        "train_dataset": "mnist",
        "dataset": dataset,
        "split": split,
        "variant": variant,
        "seed": seed,
        "tier": "cpu",
        "method": "sgd",
        "curriculum": False,
        "sequence_length": 2,
        "model": {"type": "sgd", "inner_lr": lr},
        "task_sets": {
            "unseen": {
                "num_tasks": 1,
                "num_sequences": n,
                "accuracy": [0.1, correct / n],
                "loss": [2.3, 2.3],
                "correct_last": correct,
                "last_outcomes": outcomes,
            }
        },
    }


def test_sgd_lr_is_chosen_on_the_validation_split_only():
    # validation prefers 3e-3; the test sequences would prefer 1e-2
    val = {1e-3: 20, 3e-3: 40, 1e-2: 30}
    test = {1e-3: 10, 3e-3: 25, 1e-2: 60}
    results = []
    for lr in val:
        v = lr_variant(lr)
        for seed in (0, 1):
            results.append((f"{v}{seed}v", record(v, lr, "train", "mnist", seed, val[lr])))
            results.append((f"{v}{seed}t", record(v, lr, "test", "mnist", seed, test[lr])))
    kept, choice = table1.split_sgd_sweep(results)
    assert choice["lr"] == 3e-3 and choice["variant"] == "lr0p003"
    assert [e["accuracy"] for e in choice["sweep"]] == [20 / 64, 40 / 64, 30 / 64]
    tuned = [r for _, r in kept if r["method"] == table1.SGD_TUNED]
    assert {r["task_sets"]["unseen"]["correct_last"] for r in tuned} == {25}
    assert all(r["split"] == "test" for r in tuned)
    # no validation records: the sweep's test numbers alone choose nothing
    with pytest.raises(ValueError, match="no validation record"):
        table1.split_sgd_sweep([(p, r) for p, r in results if r["split"] == "test"])


def test_sgd_sweep_runs_resolve_to_their_learning_rate():
    params = load_params()
    cfg = run_config(params, "cpu", "table1", "mnist-sgd128-vlr0p01-s1")
    assert cfg["model"]["inner_lr"] == 0.01 and cfg["variant"] == "lr0p01"
    faithful = run_config(params, "cpu", "table1", "mnist-sgd128-s1")
    assert faithful["model"]["inner_lr"] == 1e-3 and "variant" not in faithful
    assert [lr_variant(v) for v in (1e-3, 3e-2, 2.5e-5)] == ["lr0p001", "lr0p03", "lr2p5em05"]
