"""`gpicl bench`: time the full meta-training step and report it the way nanoGPT reports MFU.

One step = task generation + forward + backward + optimiser update, measured after warm-up.
For each (implementation, shape) the benchmark reports the median step time, tokens per second,
peak memory, the step's model FLOPs counted from the shapes, and the fraction of the device's
matmul peak, measured in the same run with one large matmul in the dtype the row's matmuls run in
(fp32, or bf16 under autocast).

Implementations of the same step:
- "ours": the production path of gpicl.train (hashed task pool sampled on the device, our
  Transformer, gpicl.optim.Adam, loss on every position, gradient norm), with the tiers'
  precision: bf16 autocast on CUDA, fp32 on CPU.
- "ours_bf16": the same with bf16 autocast on every device (train's `amp_cpu: true` on CPU).
- "reference": the yardstick (gpicl.reference), the straightforward PyTorch way public
  replications took: an fp32 nn.TransformerEncoder, and one projection matrix drawn and applied
  per sequence on the host in a Python loop, the batch then copied to the device;
  torch.optim.Adam.

This module measures and writes the rows; the command line is gpicl.cli's `bench`.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpicl.augment import (
    NUM_CLASSES,
    BatchSpec,
    sample_training_batch,
    step_generator,
)
from gpicl.models import build_model
from gpicl.models.transformer import transformer_forward_flops_per_token, transformer_train_flops
from gpicl.optim import Adam
from gpicl.reference import ReferenceTransformer, reference_batch
from gpicl.repro import device_name, peak_memory_mb, pick_device, reset_peak_memory, set_determinism
from gpicl.train import autocast_context, training_step

IMPLEMENTATIONS = ("ours", "ours_bf16", "reference")
SHAPE_KEYS = (
    "name",
    "width",
    "layers",
    "heads",
    "key_size",
    "mlp_ratio",
    "input_size",
    "seq_len",
    "tasks_per_step",
    "seqs_per_task",
)
MODEL_KEYS = ("width", "layers", "heads", "key_size", "mlp_ratio")
# A smoke-test shape (seconds on one core); not a tier of params.yaml.
TINY_SHAPE = dict(
    name="tiny",
    width=16,
    layers=1,
    heads=2,
    key_size=8,
    mlp_ratio=2,
    input_size=16,
    seq_len=20,
    tasks_per_step=2,
    seqs_per_task=4,
)
NUM_EXAMPLES = 60_000  # base examples the synthetic training split holds (MNIST's size)
TASK_SEED = 20221208
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}

BENCH_COLUMNS = (
    "implementation",
    "shape",
    "device",
    "device_name",
    "threads",
    "compile",
    "precision",
    "deterministic",
    *SHAPE_KEYS[1:],
    "batch_seqs",
    "tokens_per_step",
    "num_params",
    "warmup",
    "repeats",
    "step_ms_median",
    "step_ms_min",
    "step_ms_max",
    "data_ms_median",
    "tokens_per_s",
    "fwd_flops_per_token",
    "flops_per_step",
    "achieved_tflops",
    "matmul_peak_tflops",
    "matmul_peak_dtype",
    "matmul_size",
    "mfu",
    "peak_mem_mb",
    "mem_kind",
    "speedup_vs_reference",
)


# --------------------------------------------------------------------------- shapes
def shapes_from_params(params: dict | None, names: str | Iterable[str]) -> list[dict]:
    """Benchmark shapes by name: "tiny", or any tier of params.yaml (its model, preprocessing
    and batch). A tier gives input_size = resize^2 x channels and its train batch."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    tiers = (params or {}).get("tiers", {})
    shapes = []
    for name in names:
        if name == "tiny":
            shapes.append(dict(TINY_SHAPE))
            continue
        if name not in tiers:
            known = ", ".join(["tiny", *tiers])
            raise ValueError(f"unknown bench shape {name!r}; known: {known}")
        tier = tiers[name]
        model = dict(tier["model"])
        if model.pop("type", "transformer") != "transformer":
            raise ValueError(f"bench shape {name!r}: only the transformer is benchmarked")
        pre, train = tier["preprocess"], tier["train"]
        shapes.append(
            dict(
                name=name,
                **{k: model[k] for k in MODEL_KEYS},
                input_size=pre["resize"] ** 2 * pre["channels"],
                seq_len=train["seq_len"],
                tasks_per_step=train["tasks_per_step"],
                seqs_per_task=train["seqs_per_task"],
            )
        )
    return shapes


def _check_shape(shape: dict) -> None:
    missing = [k for k in SHAPE_KEYS if k not in shape]
    if missing:
        raise ValueError(f"bench shape {shape.get('name', '?')!r} lacks {', '.join(missing)}")


# --------------------------------------------------------------------------- FLOPs
def shape_flops(shape: dict, key_size: int | None = None) -> tuple[int, int]:
    """(forward FLOPs per token, FLOPs per training step) of a Transformer of this shape, by the
    model's own count (gpicl.models.transformer), so the benchmark and the model never disagree;
    `key_size` overrides the shape's (the reference's attention is as wide as the model)."""
    model_cfg = {k: shape[k] for k in MODEL_KEYS}
    if key_size is not None:
        model_cfg["key_size"] = key_size
    nx, L = shape["input_size"], shape["seq_len"]
    batch = shape["tasks_per_step"] * shape["seqs_per_task"]
    return (
        transformer_forward_flops_per_token(model_cfg, nx, L),
        transformer_train_flops(model_cfg, nx, L, batch),
    )


# --------------------------------------------------------------------------- implementations
@dataclass(frozen=True)
class BenchOptions:
    """How the implementations are built; `compile`, `amp` and `deterministic` concern ours only
    (the reference is always fp32 eager without determinism switches, as the public code ran;
    ours_bf16 always autocasts)."""

    seed: int = 0
    num_examples: int = NUM_EXAMPLES
    compile: bool = False  # torch.compile our model (train.py does not)
    amp: bool = True  # bf16 autocast for ours on CUDA (the tiers' `amp: true`)
    deterministic: bool = True  # gpicl.repro.set_determinism, as train.py runs


@dataclass
class Implementation:
    """One way of doing the training step, ready to time."""

    name: str
    model: nn.Module
    sample: Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (tokens, targets)
    step: Callable[[int], torch.Tensor]  # step -> stats on the device (no host sync)
    fwd_flops_per_token: int
    flops_per_step: int
    precision: str
    deterministic: bool


def synthetic_training_split(
    num_examples: int, input_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for an augmentation cache: z-normalised inputs (N, Nx) and int64 labels (N,).
    Timing does not depend on the values, only on the shapes and dtypes, which match the cache."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_examples, input_size, generator=g)
    y = torch.randint(0, NUM_CLASSES, (num_examples,), generator=g)
    return x, y


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: BatchSpec,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    task_seed: int,
    seed: int,
    amp: bool,
    amp_cpu: bool = False,
) -> Callable[[int], torch.Tensor]:
    """gpicl.train's step (i.i.d. sequences) as a function of the step number."""
    dev = x_train.device
    autocast = autocast_context(dev, amp, amp_cpu)

    def step(i: int) -> torch.Tensor:
        gen = step_generator(seed, i, dev)
        return training_step(
            model, optimizer, spec, x_train, y_train, task_seed, gen, None, autocast
        )

    return step


def build_ours(
    shape: dict, dev: torch.device, opts: BenchOptions, bf16: bool = False
) -> Implementation:
    """The production path: gpicl.models.build_model, gpicl.optim.Adam, data on the device;
    `bf16` autocasts on any device (on CPU as train's `amp_cpu`)."""
    seed = opts.seed
    set_determinism(seed)  # what gpicl.train does before building anything
    if not opts.deterministic:
        torch.use_deterministic_algorithms(False)
    x_train, y_train = synthetic_training_split(opts.num_examples, shape["input_size"], seed)
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    spec = BatchSpec(
        num_tasks=2**25,
        tasks_per_step=shape["tasks_per_step"],
        seqs_per_task=shape["seqs_per_task"],
        seq_len=shape["seq_len"],
    )
    model_cfg = {k: shape[k] for k in MODEL_KEYS}
    model = build_model(model_cfg, shape["input_size"], shape["seq_len"]).to(dev)
    optimizer = Adam(model.parameters(), lr=1e-3, eps=1e-8, eps_root=1e-8)
    model.train()
    run_model = torch.compile(model) if opts.compile else model
    amp = opts.amp or bf16
    step = make_train_step(
        run_model, optimizer, spec, x_train, y_train, TASK_SEED, seed, amp, amp_cpu=bf16
    )

    def sample(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = step_generator(seed, i, dev)
        tokens, targets, _ = sample_training_batch(spec, x_train, y_train, TASK_SEED, gen, None)
        return tokens, targets

    precision = "bf16-autocast" if bf16 or (dev.type == "cuda" and opts.amp) else "fp32"
    name = "ours_bf16" if bf16 else "ours"
    flops = shape_flops(shape)
    return Implementation(name, model, sample, step, *flops, precision, opts.deterministic)


def build_ours_bf16(shape: dict, dev: torch.device, opts: BenchOptions) -> Implementation:
    """Ours under bf16 autocast on any device (on CPU, attention stays fp32: Transformer)."""
    return build_ours(shape, dev, opts, bf16=True)


def build_reference(shape: dict, dev: torch.device, opts: BenchOptions) -> Implementation:
    """The yardstick: fp32, data made per sequence on the host, torch.optim.Adam, no autocast,
    no compile, no determinism switches (as the public code ran)."""
    if shape["width"] % shape["heads"]:
        raise ValueError(f"reference: width {shape['width']} not divisible by heads")
    torch.use_deterministic_algorithms(False)
    torch.manual_seed(opts.seed)
    x_train, y_train = synthetic_training_split(opts.num_examples, shape["input_size"], opts.seed)
    model = ReferenceTransformer(shape).to(dev)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    B, L = shape["tasks_per_step"] * shape["seqs_per_task"], shape["seq_len"]

    def sample(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_batch(x_train, y_train, B, L, dev)

    def step(i: int) -> torch.Tensor:
        tokens, targets = sample(i)
        logits = model(tokens)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    flops = shape_flops(shape, key_size=shape["width"] // shape["heads"])
    return Implementation("reference", model, sample, step, *flops, "fp32", False)


BUILDERS = {"ours": build_ours, "ours_bf16": build_ours_bf16, "reference": build_reference}


# --------------------------------------------------------------------------- measurement
def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time_calls(fn: Callable[[int], object], dev: torch.device, first: int, n: int) -> list[float]:
    """Seconds of each of n calls fn(first), fn(first + 1), ..., the device synchronised."""
    times = []
    for i in range(first, first + n):
        _sync(dev)
        t0 = time.perf_counter()
        fn(i)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return times


def matmul_dtype(precision: str) -> torch.dtype:
    """The dtype an implementation's matmuls run in, from its precision label."""
    return torch.bfloat16 if precision.startswith("bf16") else torch.float32


def measure_matmul_peak(
    dev: torch.device, size: int, dtype: torch.dtype, repeats: int = 5
) -> tuple[float, str]:
    """The device's attainable matmul rate in FLOP/s for `dtype`: best of `repeats` timings of
    size^3 matmuls. Each row's MFU is against the peak of the dtype its matmuls run in."""
    inner = 10 if dev.type == "cuda" else 1  # several matmuls between syncs on the GPU
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dev, dtype)
    b = torch.randn(size, size, generator=g).to(dev, dtype)
    out = torch.empty(size, size, device=dev, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        _sync(dev)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * size**3 / best, str(dtype).removeprefix("torch.")


def _release(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def run_benchmark(
    shapes: list[dict],
    implementations: Sequence[str] = IMPLEMENTATIONS,
    device: str = "auto",
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    matmul_size: int | None = None,
    out_csv: str | Path | None = None,
    compile: bool = False,
    amp: bool = True,
    num_examples: int = NUM_EXAMPLES,
    seed: int = 0,
    deterministic: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Time the full training step of each implementation at each shape; one row per pair.

    `compile`, `amp` and `deterministic` apply to ours (see BenchOptions; the defaults are what
    train.py does). Writes `out_csv` (columns BENCH_COLUMNS) when given.
    """
    unknown = [i for i in implementations if i not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {', '.join(BUILDERS)}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1 (got {warmup}, {repeats})")
    for shape in shapes:
        _check_shape(shape)
    dev = pick_device(device)
    saved_threads = torch.get_num_threads()
    saved_det = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if threads:
        torch.set_num_threads(threads)
    opts = BenchOptions(seed, num_examples, compile, amp, deterministic)
    size = matmul_size or MATMUL_SIZE.get(dev.type, 1024)
    rows, peaks = [], {}  # dtype -> (FLOP/s, name), measured once per dtype used
    try:
        for shape in shapes:
            shape_rows = []
            for name in implementations:
                _release(dev)
                reset_peak_memory(dev)
                impl = BUILDERS[name](shape, dev, opts)
                step_times = _time_calls(impl.step, dev, 0, warmup + repeats)[warmup:]
                data_times = _time_calls(impl.sample, dev, warmup + repeats, repeats)
                mem_mb, mem_kind = peak_memory_mb(dev)
                row = _row(shape, impl, dev, step_times, data_times, mem_mb, mem_kind)
                dtype = matmul_dtype(impl.precision)
                if dtype not in peaks:
                    peaks[dtype] = measure_matmul_peak(dev, size, dtype)
                peak_flops, peak_dtype = peaks[dtype]
                row.update(
                    threads=torch.get_num_threads(),
                    compile=bool(compile and name != "reference"),
                    warmup=warmup,
                    repeats=repeats,
                    matmul_peak_tflops=peak_flops / 1e12,
                    matmul_peak_dtype=peak_dtype,
                    matmul_size=size,
                    mfu=row["flops_per_step"] / (row["step_ms_median"] / 1e3) / peak_flops,
                )
                shape_rows.append(row)
                del impl
                if progress:
                    print(
                        f"bench {shape['name']}/{name}: {row['step_ms_median']:.2f} ms/step",
                        file=sys.stderr,
                    )
            ref = [r for r in shape_rows if r["implementation"] == "reference"]
            for r in shape_rows:
                r["speedup_vs_reference"] = (
                    ref[0]["step_ms_median"] / r["step_ms_median"] if ref else None
                )
            rows.extend(shape_rows)
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_det[0], warn_only=saved_det[1])
        _release(dev)
    if out_csv is not None:
        from gpicl.plotting import write_csv  # pandas: only when a file is asked for

        write_csv(rows, out_csv, columns=BENCH_COLUMNS)
    return rows


def _row(
    shape: dict,
    impl: Implementation,
    dev: torch.device,
    step_times: list[float],
    data_times: list[float],
    mem_mb: float,
    mem_kind: str,
) -> dict:
    batch_seqs = shape["tasks_per_step"] * shape["seqs_per_task"]
    tokens = batch_seqs * shape["seq_len"]
    median_s = statistics.median(step_times)
    flops = impl.flops_per_step
    return {
        "implementation": impl.name,
        "shape": shape["name"],
        "device": dev.type,
        "device_name": device_name(dev),
        "precision": impl.precision,
        "deterministic": impl.deterministic,
        **{k: shape[k] for k in SHAPE_KEYS[1:]},
        "batch_seqs": batch_seqs,
        "tokens_per_step": tokens,
        "num_params": sum(p.numel() for p in impl.model.parameters()),
        "step_ms_median": median_s * 1e3,
        "step_ms_min": min(step_times) * 1e3,
        "step_ms_max": max(step_times) * 1e3,
        "data_ms_median": statistics.median(data_times) * 1e3,
        "tokens_per_s": tokens / median_s,
        "fwd_flops_per_token": impl.fwd_flops_per_token,
        "flops_per_step": flops,
        "achieved_tflops": flops / median_s / 1e12,
        "peak_mem_mb": mem_mb,
        "mem_kind": mem_kind,
    }


# --------------------------------------------------------------------------- output
def format_table(rows: list[dict]) -> str:
    """A fixed-width table of the rows, headed by the device and its measured matmul peak."""
    if not rows:
        return "(no benchmark rows)"
    r0 = rows[0]
    peaks = {r["matmul_peak_dtype"]: r["matmul_peak_tflops"] for r in rows}
    peak_text = ", ".join(f"{dtype} {tflops:.3f}" for dtype, tflops in peaks.items())
    lines = [
        f"device: {r0['device']} ({r0['device_name']}), threads {r0['threads']}, "
        f"matmul peak TFLOP/s ({r0['matmul_size']}^3): {peak_text}; "
        f"median of {r0['repeats']} steps after {r0['warmup']} warm-up; "
        "MFU against the peak of each row's matmul dtype",
    ]
    header = (
        f"{'impl':<10} {'precision':<13} {'shape':<8} {'params':>10} {'seqs x L':>10} "
        f"{'step ms':>10} {'data ms':>9} {'tokens/s':>11} {'TFLOP/s':>8} {'MFU':>7} {'peak MB':>9} "
        f"{'speed-up':>8}"
    )
    lines += [header, "-" * len(header)]
    for r in rows:
        speedup = r["speedup_vs_reference"]
        lines.append(
            f"{r['implementation']:<10} {r['precision']:<13} {r['shape']:<8} "
            f"{r['num_params']:>10,} "
            f"{str(r['batch_seqs']) + ' x ' + str(r['seq_len']):>10} "
            f"{r['step_ms_median']:>10.2f} {r['data_ms_median']:>9.2f} "
            f"{r['tokens_per_s']:>11,.0f} {r['achieved_tflops']:>8.4f} "
            f"{100 * r['mfu']:>6.2f}% {r['peak_mem_mb']:>9.0f} "
            f"{'-' if speedup is None else f'{speedup:.2f}x':>8}"
        )
    return "\n".join(lines)
