"""The CUDA path: the same tasks, the same model function and a working bf16 training step on a
GPU as on the CPU. Skipped where no CUDA device is present (CI has none); a GPU session runs
`python -m pytest tests/test_cuda.py` before timing anything (README, "Speed and clusters")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpicl.augment import (
    BatchSpec,
    make_tokens,
    sample_training_batch,
    step_generator,
    task_permutations,
    task_projections,
)
from gpicl.models import Transformer, TransformerConfig
from gpicl.optim import Adam
from gpicl.train import autocast_context, training_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
SEED = 20221208


@pytest.fixture(autouse=True)
def exact_fp32_matmuls_and_default_algorithms():
    """TF32 would make the fp32 comparisons below loose, and other tests may leave torch's
    deterministic mode on; set both here and put them back afterwards."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(False)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_a_task_id_means_the_same_task_on_the_gpu():
    ids = torch.tensor([0, 1, 7, 2**25 - 1, -3])
    perm_cpu = task_permutations(SEED, ids)
    perm_gpu = task_permutations(SEED, ids.to(CUDA)).cpu()
    assert torch.equal(perm_cpu, perm_gpu)  # integer hash: exact
    proj_cpu = task_projections(SEED, ids, 49)
    proj_gpu = task_projections(SEED, ids.to(CUDA), 49).cpu()
    torch.testing.assert_close(proj_gpu, proj_cpu, rtol=1e-5, atol=1e-6)  # Box-Muller's libm


def tiny_transformer() -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(input_size=6, seq_len=12, width=32, layers=2, heads=4, key_size=8)
    return Transformer(cfg)


def test_the_model_computes_the_same_function_on_the_gpu():
    model = tiny_transformer().eval()
    g = torch.Generator().manual_seed(0)
    tokens = make_tokens(
        torch.randn(3, 12, 6, generator=g), torch.randint(0, 10, (3, 12), generator=g)
    )
    with torch.no_grad():
        expected = model(tokens)
        got = model.to(CUDA)(tokens.to(CUDA))
        torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)
        with autocast_context(CUDA, amp=True):
            mixed = model(tokens.to(CUDA))
    assert mixed.dtype == torch.bfloat16  # `amp` really autocasts on CUDA
    torch.testing.assert_close(mixed.float().cpu(), expected, rtol=0.0, atol=0.1)


def test_bf16_training_steps_on_the_gpu_follow_the_fp32_cpu_steps():
    """Ten steps (loss on every position, our Adam) under bf16 autocast on CUDA and in fp32 on
    the CPU, on the same batches made on the CPU: close losses. (The production step itself is
    run on the GPU by the sync test below.)"""
    spec = BatchSpec(num_tasks=2**25, tasks_per_step=4, seqs_per_task=4, seq_len=12)
    g = torch.Generator().manual_seed(1)
    x_train, y_train = torch.randn(500, 6, generator=g), torch.randint(0, 10, (500,), generator=g)
    losses = {}
    for dev, amp in ((CPU, False), (CUDA, True)):
        model = tiny_transformer().to(dev)
        optimizer = Adam(model.parameters(), lr=1e-3, eps=1e-8, eps_root=1e-8)
        autocast = autocast_context(dev, amp)
        # The batch of a step depends on the generator's device; compare batches made on the CPU.
        batches = [
            sample_training_batch(spec, x_train, y_train, SEED, step_generator(0, s, CPU), None)
            for s in range(10)
        ]
        stats = []
        for tokens, targets, _ in batches:
            tokens, targets = tokens.to(dev), targets.to(dev)
            with autocast:
                logits = model(tokens)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stats.append(loss.item())
        losses[dev.type] = torch.tensor(stats)
    torch.testing.assert_close(losses["cuda"], losses["cpu"], rtol=0.0, atol=0.05)
    assert losses["cuda"][-1] < losses["cuda"][0]  # it learns


def test_the_production_step_runs_on_the_gpu_without_host_syncs():
    spec = BatchSpec(num_tasks=2**25, tasks_per_step=4, seqs_per_task=4, seq_len=12)
    x_train, y_train = torch.randn(500, 6, device=CUDA), torch.randint(0, 10, (500,), device=CUDA)
    model = tiny_transformer().to(CUDA)
    optimizer = Adam(model.parameters(), lr=1e-3, eps=1e-8, eps_root=1e-8)
    autocast = autocast_context(CUDA, amp=True)
    training_step(  # warm-up: allocator and kernels
        model, optimizer, spec, x_train, y_train, SEED, step_generator(0, 0, CUDA), None, autocast
    )
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        stats = training_step(
            model,
            optimizer,
            spec,
            x_train,
            y_train,
            SEED,
            step_generator(0, 1, CUDA),
            None,
            autocast,
        )
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats.device.type == "cuda" and bool(torch.isfinite(stats).all())
