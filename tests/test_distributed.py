"""Data parallelism: two torchrun processes (gloo, CPU) give the result of one process with the
same global batch, and the batch shards of the ranks together are exactly the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from gpicl.augment import BatchSpec, sample_training_batch, step_generator
from gpicl.io import load_torch
from tests.test_train import log_rows, run_config, write_cache

BIN = Path(sys.executable).parent


def test_rank_shards_together_are_the_global_batch():
    spec = BatchSpec(num_tasks=50, tasks_per_step=4, seqs_per_task=3, seq_len=7)
    x, y = torch.randn(100, 6), torch.randint(0, 10, (100,))
    cpu = torch.device("cpu")
    whole, targets, ids = sample_training_batch(spec, x, y, 5, step_generator(1, 9, cpu))
    parts = [
        sample_training_batch(spec, x, y, 5, step_generator(1, 9, cpu), shard=(r, 2))
        for r in range(2)
    ]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole)
    assert torch.equal(torch.cat([p[1] for p in parts]), targets)
    assert torch.equal(torch.cat([p[2] for p in parts]), ids)
    assert not torch.equal(parts[0][0], parts[1][0])


def _train_cli(cfg: dict, cache: Path, run_dir: Path, nproc: int) -> None:
    launcher = [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={nproc}"]
    args = [
        "-m",
        "gpicl.cli",
        "train",
        "--run-config",
        json.dumps(cfg),
        "--cache",
        str(cache),
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
    ]
    cmd = launcher + args if nproc > 1 else [sys.executable, *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    cache = write_cache(tmp_path / "cache.pt")
    cfg = run_config(steps=4, tasks_per_step=4, checkpoint_every=2)
    _train_cli(cfg, cache, tmp_path / "one", nproc=1)
    _train_cli(cfg, cache, tmp_path / "two", nproc=2)

    one = load_torch(tmp_path / "one" / "model.pt")["model"]
    two = load_torch(tmp_path / "two" / "model.pt")["model"]
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
    # The logged loss is the global mean, not rank 0's share.
    for a, b in zip(log_rows(tmp_path / "one"), log_rows(tmp_path / "two"), strict=True):
        assert abs(float(a["loss"]) - float(b["loss"])) < 1e-4
    # Training must have moved the weights, or the comparison proves nothing.
    torch.manual_seed(cfg["seed"])
    from gpicl.models import build_model

    initial = build_model(cfg["model"], 16, cfg["train"]["seq_len"]).state_dict()
    assert any(not torch.allclose(initial[k], one[k]) for k in one)
