"""gpicl.train and gpicl.evaluate: loss at every position, bit-identical resumption, a loud stop on
a non-finite loss, per-position evaluation counts and the Random evaluation set."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpicl.augment import (
    NUM_CLASSES,
    PreprocessSpec,
    apply_tasks,
    sample_training_batch,
    step_generator,
)
from gpicl.cache import build_eval_set, eval_inputs
from gpicl.evaluate import evaluate_run, per_position_stats
from gpicl.io import load_torch, read_json, save_torch
from gpicl.models import build_model
from gpicl.train import NonFiniteLossError, batch_spec, train

torch.set_num_threads(1)

N_TRAIN, NX = 200, 16


def write_cache(path, x_train=None):
    g = torch.Generator().manual_seed(0)
    cache = {
        "x_train": torch.randn(N_TRAIN, NX, generator=g) if x_train is None else x_train,
        "y_train": torch.randint(0, NUM_CLASSES, (N_TRAIN,), generator=g),
        "x_test": torch.randn(40, NX, generator=g),
        "y_test": torch.randint(0, NUM_CLASSES, (40,), generator=g),
        "mean": torch.tensor(0.0),
        "std": torch.tensor(1.0),
        "dataset": "mnist",
        "spec": "r4c1",
    }
    save_torch(cache, path)
    return path


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("cache") / "tiny.pt")


def run_config(**train_overrides) -> dict:
    train_cfg = dict(
        steps=6,
        tasks_per_step=2,
        seqs_per_task=3,
        seq_len=12,
        num_tasks=8,
        lr=1e-2,
        eps=1e-8,
        eps_root=1e-8,
        checkpoint_every=3,
        curriculum=None,
        bias_fraction=0.0,
        amp=False,
        amp_cpu=False,
    )
    train_cfg.update(train_overrides)
    return {
        "name": "test/tiny-s0",
        "tier": "ci",
        "experiment": "test",
        "train_dataset": "mnist",
        "seed": 3,
        "task_seed": 11,
        "preprocess": {"resize": 4, "channels": 1, "antialias": True},
        "model": {
            "type": "transformer",
            "width": 16,
            "layers": 1,
            "heads": 2,
            "key_size": 4,
            "mlp_ratio": 2,
        },
        "train": train_cfg,
    }


def run(cfg, cache, run_dir, **kw):
    return train(cfg, cache, run_dir, device="cpu", threads=1, progress=False, **kw)


def log_rows(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- 9. loss everywhere
def test_training_loss_is_mean_cross_entropy_over_every_position(cache_path, tmp_path):
    cfg = run_config(steps=1, checkpoint_every=1, lr=1e-8)
    run(cfg, cache_path, tmp_path / "run")
    logged = log_rows(tmp_path / "run")[0]

    # The same first batch and the same initial model, rebuilt by hand.
    cache = load_torch(cache_path)
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], NX, cfg["train"]["seq_len"])
    gen = step_generator(cfg["seed"], 0, torch.device("cpu"))
    tokens, targets, _ = sample_training_batch(
        batch_spec(cfg["train"]), cache["x_train"], cache["y_train"], cfg["task_seed"], gen
    )
    with torch.no_grad():
        logits = model(tokens)
    per_position = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, L)
    every = per_position.mean().item()
    assert float(logged["loss"]) == pytest.approx(every, abs=2e-6)
    accuracy = (logits.argmax(-1) == targets).float().mean().item()
    assert float(logged["accuracy"]) == pytest.approx(accuracy, abs=2e-6)
    # The alternatives a bug would produce are told apart at the logged precision.
    for wrong in (per_position[:, -1].mean(), per_position[:, 1:].mean(), per_position[0].mean()):
        assert abs(wrong.item() - every) > 1e-5


# --------------------------------------------------------------------------- 10. resumption
def assert_same_run(dir_a, dir_b):
    a = load_torch(dir_a / "model.pt")
    b = load_torch(dir_b / "model.pt")
    assert a["config"] == b["config"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert (dir_a / "log.csv").read_bytes() == (dir_b / "log.csv").read_bytes()
    assert (dir_a / "done.json").read_bytes() == (dir_b / "done.json").read_bytes()


@pytest.mark.parametrize(
    "overrides",
    [
        dict(checkpoint_every=1),
        dict(checkpoint_every=3),
        dict(
            checkpoint_every=4,
            curriculum={"start_examples": 3, "hold_steps": 1, "anneal_steps": 3},
        ),
        dict(
            checkpoint_every=3,
            lr_schedule={"warmup_steps": 2, "decay": "cosine", "final_fraction": 0.1},
        ),
    ],
    ids=["every-step", "every-3", "curriculum", "lr-schedule"],
)
def test_resumed_run_is_bit_identical_to_uninterrupted_run(cache_path, tmp_path, overrides):
    cfg = run_config(**overrides)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(cfg, cache_path, straight)["finished"]

    first = run(copy.deepcopy(cfg), cache_path, resumed, stop_after=3)
    assert first == {"steps_done": 3, "finished": False}
    assert not (resumed / "done.json").exists() and not (resumed / "model.pt").exists()
    assert load_torch(resumed / "checkpoint.pt")["step"] == 3
    assert len(log_rows(resumed)) == 3
    # The first call's compute, made large: on a fast machine it is below timing.json's 0.01 s.
    ckpt = load_torch(resumed / "checkpoint.pt")
    assert ckpt["spent"]["wall_s"] > 0
    ckpt["spent"] = {"wall_s": 100.0, "cpu_s": 50.0}
    save_torch(ckpt, resumed / "checkpoint.pt")

    assert run(copy.deepcopy(cfg), cache_path, resumed)["finished"]
    # It really resumed (a discarded checkpoint would also end bit-identical, from scratch).
    timing = read_json(resumed / "timing.json")
    assert timing["steps_this_call"] == 3
    # The run's compute counts both calls, not only the last one.
    assert (
        100
        <= timing["wall_seconds_total"]
        == pytest.approx(100 + timing["seconds_this_call"], abs=0.011)
    )
    assert timing["cpu_seconds_total"] >= 50
    assert_same_run(straight, resumed)
    rows = log_rows(straight)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    if cfg["train"]["curriculum"]:
        ks = [int(r["distinct_examples"]) for r in rows]
        # Held at 3 for step 0, grows over steps 1..3, i.i.d. (logged 0) from step 4 on.
        assert ks[:2] == [3, 3] and ks[4:] == [0, 0]
        assert ks[:4] == sorted(ks[:4]) and ks[3] > 3


def test_amp_cpu_switches_bf16_autocast_on_for_cpu_training(cache_path, tmp_path):
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    run(run_config(), cache_path, fp32)
    run(run_config(amp_cpu=True), cache_path, bf16)
    a = load_torch(fp32 / "model.pt")["model"]
    b = load_torch(bf16 / "model.pt")["model"]
    assert all(v.dtype == torch.float32 for v in b.values())  # weights stay fp32 under autocast
    assert any(not torch.equal(a[k], b[k]) for k in a)  # but the step's numerics changed
    # and the run is still reproducible: same config, same bytes
    again = tmp_path / "bf16-again"
    run(run_config(amp_cpu=True), cache_path, again)
    assert_same_run(bf16, again)


def test_changed_config_does_not_resume_a_foreign_checkpoint(cache_path, tmp_path):
    run(run_config(lr=1e-2), cache_path, tmp_path / "r", stop_after=3)
    run(run_config(lr=2e-2), cache_path, tmp_path / "r")
    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == 6
    run(run_config(lr=2e-2), cache_path, tmp_path / "fresh")
    assert_same_run(tmp_path / "r", tmp_path / "fresh")


@pytest.mark.parametrize("cause", ["huge-lr", "inf-inputs"])
def test_non_finite_loss_stops_without_done_marker_or_model(tmp_path, cause):
    if cause == "huge-lr":
        cache = write_cache(tmp_path / "c.pt")
        cfg = run_config(lr=1e30, checkpoint_every=1)
    else:
        cache = write_cache(tmp_path / "c.pt", x_train=torch.full((N_TRAIN, NX), float("inf")))
        cfg = run_config()
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        run(cfg, cache, tmp_path / "run")
    assert not (tmp_path / "run" / "done.json").exists()
    assert not (tmp_path / "run" / "model.pt").exists()
    log = tmp_path / "run" / "log.csv"
    if log.exists():
        assert "nan" not in log.read_text().lower() and "inf" not in log.read_text().lower()


# --------------------------------------------------------------------------- 13. evaluation
class PeekNextLabel(nn.Module):
    """A non-causal stub: at position t it reads y_t from token t+1's label slot and predicts it
    with a large margin; at the last position it always predicts class 0."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, tokens):
        logits = torch.zeros(*tokens.shape[:2], NUM_CLASSES)
        logits[:, :-1] = 50.0 * tokens[:, 1:, -NUM_CLASSES:]
        logits[:, -1, 0] = 50.0
        return logits + self.dummy


@pytest.mark.parametrize("with_tasks", [False, True])
def test_per_position_stats_counts_accuracy_loss_and_correct_last(with_tasks):
    T, S, L, nx = 5, 6, 9, 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, S, L, nx, generator=g)
    y = torch.randint(0, NUM_CLASSES, (T, S, L), generator=g)
    ids = torch.tensor([0, 3, -1, -2, 7]) if with_tasks else None
    _, y_task = apply_tasks(x, y, 11, ids)
    last_zero = int((y_task[..., -1] == 0).sum())
    assert 0 < last_zero < T * S  # the last position is partly right, partly wrong

    stats = per_position_stats(PeekNextLabel(), x, y, 11, ids, tasks_per_chunk=2)
    assert stats["num_tasks"] == T and stats["num_sequences"] == T * S
    assert stats["accuracy"][:-1] == [1.0] * (L - 1)
    assert stats["accuracy"][-1] == pytest.approx(last_zero / (T * S), abs=1e-6)
    assert stats["correct_last"] == last_zero
    assert stats["loss"][:-1] == [0.0] * (L - 1)
    assert stats["loss"][-1] == pytest.approx(50.0 * (1 - last_zero / (T * S)), abs=1e-3)
    # Chunking over tasks is only a memory bound.
    assert per_position_stats(PeekNextLabel(), x, y, 11, ids, tasks_per_chunk=1) == stats


def test_random_eval_set_label_is_the_image_index_one_image_per_class(tmp_path):
    spec = PreprocessSpec(resize=3, channels=1)
    T, S, L = 3, 4, 30
    build_eval_set("random", spec, T, S, L, 7, tmp_path / "random.pt")
    evalset = load_torch(tmp_path / "random.pt")
    x, y = eval_inputs(evalset, None)
    images = evalset["images"]
    assert images.shape == (T, NUM_CLASSES, spec.input_size)
    assert x.shape == (T, S, L, spec.input_size) and y.shape == (T, S, L)
    assert y.min() >= 0 and y.max() < NUM_CLASSES
    for t in range(T):
        assert torch.equal(x[t], images[t][y[t]])  # the label of a position is its image index
        assert len({tuple(img.tolist()) for img in images[t]}) == NUM_CLASSES
    # The same index gives the very same image within a task (memorisable), other tasks differ.
    same = y[0, 0, :, None] == y[0, 0, None, :]
    equal_x = (x[0, 0, :, None, :] == x[0, 0, None, :, :]).all(-1)
    assert same.sum() > L and torch.equal(equal_x, same)
    assert not torch.equal(images[0], images[1])
    # Uniform images z-normalised with their own statistics.
    big = load_torch(tmp_path / "random.pt")["images"]
    assert abs(big.mean().item()) < 0.2 and abs(big.std().item() - 1) < 0.2
    # A fixed set: rebuilding gives the same bytes of content.
    build_eval_set("random", spec, T, S, L, 7, tmp_path / "again.pt")
    again = load_torch(tmp_path / "again.pt")
    assert torch.equal(again["images"], images) and torch.equal(again["indices"], y)


def test_evaluate_run_scores_seen_unseen_identity_per_position(cache_path, tmp_path):
    cfg = run_config(steps=2, checkpoint_every=2)
    run(cfg, cache_path, tmp_path / "run")
    build_eval_set("mnist", PreprocessSpec(4, 1), 3, 2, 14, 7, tmp_path / "ev.pt", num_test=40)
    out = evaluate_run(
        tmp_path / "run" / "model.pt",
        tmp_path / "ev.pt",
        cache_path,
        tmp_path / "eval.json",
        {"experiment": "test"},
        device="cpu",
        threads=1,
    )
    assert out == read_json(tmp_path / "eval.json")
    assert set(out["task_sets"]) == {"seen", "unseen", "identity"}
    assert out["sequence_length"] == cfg["train"]["seq_len"]
    for stats in out["task_sets"].values():
        assert stats["num_sequences"] == 6
        assert len(stats["accuracy"]) == len(stats["loss"]) == cfg["train"]["seq_len"]
        assert 0 <= stats["correct_last"] <= 6
    # Seen and unseen are different tasks applied to the same sequences.
    assert out["task_sets"]["seen"]["loss"] != out["task_sets"]["unseen"]["loss"]


def test_rerun_from_final_checkpoint_rewrites_every_output(cache_path, tmp_path):
    """Snakemake deletes a rerun job's outputs first; resuming at the last step must restore
    log.csv, model.pt and done.json byte for byte without training again."""
    cfg = run_config()
    run(cfg, cache_path, tmp_path / "r")
    before = {n: (tmp_path / "r" / n).read_bytes() for n in ("log.csv", "model.pt", "done.json")}
    for name in before:
        (tmp_path / "r" / name).unlink()
    run(cfg, cache_path, tmp_path / "r")
    after = {n: (tmp_path / "r" / n).read_bytes() for n in before}
    assert after == before
    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == 0


def test_sgd_baseline_runs_zero_steps_and_is_evaluated_like_any_model(cache_path, tmp_path):
    """SGD meta-learns nothing: its run trains 0 steps, still leaves the finished-run files, and
    evaluation scores it through the same interface (its learning happens inside forward)."""
    cfg = run_config(steps=0, curriculum={"start_examples": 3, "hold_steps": 1, "anneal_steps": 3})
    cfg["model"] = {"type": "sgd", "hidden_size": 8, "inner_lr": 0.1, "init_seed": 3}
    done = run(cfg, cache_path, tmp_path / "sgd")
    assert done["num_params"] == 0 and done["final_loss"] is None and done["steps_done"] == 0
    assert log_rows(tmp_path / "sgd") == []
    build_eval_set("mnist", PreprocessSpec(4, 1), 2, 2, 12, 7, tmp_path / "ev.pt", num_test=40)
    out = evaluate_run(
        tmp_path / "sgd" / "model.pt",
        tmp_path / "ev.pt",
        cache_path,
        tmp_path / "eval.json",
        {"experiment": "test"},
        device="cpu",
        threads=1,
    )
    assert out["method"] == "sgd" and out["state_size"] > 0 and out["model"] == cfg["model"]
    assert out["curriculum"] is False  # untrained, so never shaped by a curriculum
    assert out["task_sets"]["unseen"]["num_sequences"] == 4
    # A model with parameters must train, and one without must not.
    with pytest.raises(ValueError, match="no parameters; set steps: 0"):
        run({**cfg, "train": {**cfg["train"], "steps": 2}}, cache_path, tmp_path / "bad")
    with pytest.raises(ValueError, match="steps is 0 but the model has parameters"):
        run(run_config(steps=0), cache_path, tmp_path / "bad2")


def test_probe_rows_every_probe_every_steps_survive_resumption(cache_path, tmp_path):
    """probe.csv: in-context accuracy on unseen tasks and on task 0 during training, kept in the
    checkpoint so a resumed run writes the same rows; done.json says what the run was."""
    cfg = run_config(steps=6, checkpoint_every=3, probe_every=2, bias_fraction=0.5)
    cfg["variant"] = "bias"
    run(cfg, cache_path, tmp_path / "a")
    run(cfg, cache_path, tmp_path / "b", stop_after=3)
    run(cfg, cache_path, tmp_path / "b")
    probe_a = (tmp_path / "a" / "probe.csv").read_text().splitlines()
    assert probe_a[0] == "step,unseen_accuracy,task0_accuracy"
    assert [row.split(",")[0] for row in probe_a[1:]] == ["2", "4", "6"]
    assert all(0 <= float(v) <= 1 for row in probe_a[1:] for v in row.split(",")[1:])
    assert (tmp_path / "b" / "probe.csv").read_text().splitlines() == probe_a
    done = read_json(tmp_path / "a" / "done.json")
    assert done["train"] == cfg["train"] and done["variant"] == "bias" and done["seed"] == 3
    assert done["num_tasks"] == cfg["train"]["num_tasks"]
    # Off by default: header only.
    run(run_config(steps=2, checkpoint_every=2), cache_path, tmp_path / "c")
    assert (tmp_path / "c" / "probe.csv").read_text() == "step,unseen_accuracy,task0_accuracy\n"
