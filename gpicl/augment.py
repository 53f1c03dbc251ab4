"""Tasks and sequences (docs/paper.md#task-generator, #sequences-and-tokens).

A task is (A, rho): a dense random projection A (Nx x Nx, entries N(0, 1/Nx)) and a permutation
rho of the 10 labels. One integer task id decides both, through a counter-based hash of
(task seed, id): the same id gives the same task on every call, batch position and device, and no
matrix is ever stored. Batches are built on the device: task ids x sequences per task, all
sequences of a task sharing its (A, rho).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
UNLIMITED_TASKS = 2**62  # "effectively unlimited" pool: ids are never repeated in practice

_STREAM_PROJECTION = 0
_STREAM_PERMUTATION = 1
_STREAM_RANDOM_IMAGES = 2
_STREAM_STEP = 3


# --------------------------------------------------------------------------- counter-based RNG
# 32-bit arithmetic in int32 tensors: multiplication wraps modulo 2^32 (two's complement) and
# right shifts are masked to act as logical shifts. tests/test_augment.py pins the results
# against a pure-Python reference, so a platform where this does not hold fails loudly.
_MUL_A = 0x7FEB352D
_MUL_B = 0x846CA68B - 2**32  # the same bits as a signed 32-bit constant
_GOLDEN = 0x9E3779B9 - 2**32


def _as_int32(v: torch.Tensor) -> torch.Tensor:
    """Low 32 bits of an int64 tensor, as int32 (exact, no reliance on narrowing casts)."""
    return (((v & 0xFFFFFFFF) + 2**31) % 2**32 - 2**31).to(torch.int32)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (xorshift-multiply), bijective on 32-bit words."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _MUL_A
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _MUL_B
    return x ^ ((x >> 16) & 0xFFFF)


def _task_keys(seed: int, ids: torch.Tensor, stream: int) -> torch.Tensor:
    """One 32-bit key per id: hash of (seed, id, stream). Negative ids are allowed."""
    ids = ids.to(torch.int64)
    k = _mix32(_as_int32(torch.full_like(ids, seed)) ^ _GOLDEN)
    k = _mix32(k ^ _as_int32(ids))
    k = _mix32(k ^ _as_int32(ids >> 32))
    return _mix32(k ^ stream)


def hash_bits(seed: int, ids: torch.Tensor, n: int, stream: int) -> torch.Tensor:
    """(len(ids), n) 32-bit words, a pure function of (seed, id, stream, position)."""
    keys = _task_keys(seed, ids, stream)[:, None]
    counter = torch.arange(n, device=ids.device, dtype=torch.int32)[None, :]
    # Two rounds, the key entering both, so two tasks never share a block of outputs.
    return _mix32(_mix32(counter ^ keys) ^ (keys * _GOLDEN))


def hash_uniform(seed: int, ids: torch.Tensor, n: int, stream: int) -> torch.Tensor:
    """(len(ids), n) uniforms in (0, 1) with 24-bit resolution."""
    top24 = (hash_bits(seed, ids, n, stream) >> 8) & 0xFFFFFF
    return (top24.to(torch.float32) + 0.5) * 2.0**-24


def hash_normal(seed: int, ids: torch.Tensor, n: int, stream: int) -> torch.Tensor:
    """(len(ids), n) standard normals: Box-Muller, both outputs of each uniform pair used."""
    half = (n + 1) // 2
    u = hash_uniform(seed, ids, 2 * half, stream)
    radius = torch.sqrt(-2.0 * torch.log(u[:, :half]))
    angle = (2.0 * math.pi) * u[:, half:]
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :n]


# --------------------------------------------------------------------------- tasks
def task_projections(seed: int, ids: torch.Tensor, input_size: int) -> torch.Tensor:
    """(T, Nx, Nx) projections, entries N(0, 1/Nx): standard deviation 1/sqrt(Nx)."""
    z = hash_normal(seed, ids, input_size * input_size, _STREAM_PROJECTION)
    return z.view(-1, input_size, input_size) / math.sqrt(input_size)


def task_permutations(seed: int, ids: torch.Tensor) -> torch.Tensor:
    """(T, 10) label permutations: rho(y) = perm[task, y]."""
    keys = hash_bits(seed, ids, NUM_CLASSES, _STREAM_PERMUTATION)
    return torch.argsort(keys, dim=1, stable=True)  # ties (rare) broken by label, on any device


def random_dataset_images(
    seed: int, slots: torch.Tensor, input_size: int, channels: int = 1
) -> torch.Tensor:
    """The synthetic Random dataset: per task slot 10 uniform-random images, one per class.

    Returned z-normalised with the uniform distribution's own statistics (mean 1/2, var 1/12),
    like every other dataset is normalised with its own statistics. Shape (T, 10, Nx).
    With channels=3, each image is a square of Nx/3 uniforms repeated 3 times, as the authors'
    RandomDataset with channel_expand: the square is concatenated with itself along its last
    (width) axis, then flattened, so every row appears 3 times in a row.
    """
    per_image = input_size // channels
    side = math.isqrt(per_image)
    if side * side * channels != input_size:
        raise ValueError(f"input size {input_size} is not a square image x {channels} channels")
    u = hash_uniform(seed, slots, NUM_CLASSES * per_image, _STREAM_RANDOM_IMAGES)
    u = ((u - 0.5) * math.sqrt(12.0)).view(-1, NUM_CLASSES, side, side)
    return torch.cat([u] * channels, dim=-1).reshape(-1, NUM_CLASSES, input_size)


def apply_tasks(
    x: torch.Tensor, y: torch.Tensor, seed: int, ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project inputs and permute labels per task; ids=None is the identity task.

    x: (T, S, L, Nx) preprocessed inputs, y: (T, S, L) labels; task t applies to x[t], y[t].
    """
    if ids is None:
        return x, y
    T, S, L, Nx = x.shape
    A = task_projections(seed, ids, Nx).to(x.dtype)  # (T, Nx, Nx)
    x = torch.bmm(x.reshape(T, S * L, Nx), A.transpose(1, 2)).view(T, S, L, Nx)  # A @ x
    perm = task_permutations(seed, ids)  # (T, 10)
    y = torch.gather(perm, 1, y.reshape(T, S * L)).view(T, S, L)
    return x, y


def make_tokens(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Token t = concat(x_t, onehot(y_{t-1})); the first token's label slot is zero.

    x: (..., L, Nx), y: (..., L) -> (..., L, Nx + 10).
    """
    prev = F.one_hot(y[..., :-1], NUM_CLASSES).to(x.dtype)
    prev = F.pad(prev, (0, 0, 1, 0))  # shift right by one position, zeros in front
    return torch.cat([x, prev], dim=-1)


# --------------------------------------------------------------------------- fixed sequences
def distinct_indices(n: int, rows: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """(rows, k) int64 indices into range(n), distinct within each row, each row a uniformly
    random ordered sample without replacement: the evaluation and probe sequences, which never
    show one test image twice (the authors stream a shuffled split into sequences).

    Robert Floyd's sampling, vectorised over rows (a loop over the k positions only, memory
    O(rows x k) whatever n), then a random order per row; a pure function of `gen`'s state.
    """
    if not 0 <= k <= n:
        raise ValueError(f"cannot draw {k} distinct indices from {n}")
    out = torch.empty(rows, k, dtype=torch.int64)
    for col, j in enumerate(range(n - k, n)):
        t = torch.randint(0, j + 1, (rows,), generator=gen)
        taken = (out[:, :col] == t[:, None]).any(1)
        out[:, col] = torch.where(taken, j, t)  # j was never drawable before: always new
    order = torch.argsort(torch.rand(rows, k, generator=gen, dtype=torch.float64), dim=1)
    return torch.gather(out, 1, order)


# --------------------------------------------------------------------------- training batches
@dataclass(frozen=True)
class BatchSpec:
    """What one meta-training step draws (docs/design.md#sequence-sampling-knobs)."""

    num_tasks: int  # pool size n: ids are drawn uniformly from {0..n-1}
    tasks_per_step: int
    seqs_per_task: int
    seq_len: int
    bias_fraction: float = 0.0  # fraction of a step's tasks replaced by task 0


def curriculum_examples(
    step: int, start: int, hold_steps: int, anneal_steps: int, num_train: int
) -> int | None:
    """Distinct base examples a training sequence may draw from at `step` (None = i.i.d.).

    `start` examples for the first `hold_steps` steps (long enough to leave the loss plateau),
    then geometric growth to the whole training split over `anneal_steps`, then i.i.d.
    """
    if step < hold_steps:
        return start
    progress = (step - hold_steps) / anneal_steps if anneal_steps > 0 else 1.0
    if progress >= 1.0:
        return None
    return min(num_train, max(start, round(start * (num_train / start) ** progress)))


def draw_task_ids(spec: BatchSpec, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Task ids of one step: uniform with replacement from {0..n-1}; a fraction set to id 0."""
    ids = torch.randint(0, spec.num_tasks, (spec.tasks_per_step,), generator=gen, device=device)
    n_biased = round(spec.bias_fraction * spec.tasks_per_step)
    if n_biased:
        ids[:n_biased] = 0
    return ids


def sample_training_batch(
    spec: BatchSpec,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    task_seed: int,
    gen: torch.Generator,
    distinct_examples: int | None = None,
    shard: tuple[int, int] = (0, 1),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's batch on x_train's device: tokens (B, L, Nx+10), targets (B, L), task ids (T,).

    Every sequence is a fresh draw of base examples (never a frozen sequence per task). With
    `distinct_examples=K`, each sequence first picks K base examples and then draws its L
    positions from those K (the exemplar-repetition curriculum); None means i.i.d. draws.
    `shard=(rank, world)`: all random draws are made for the whole step, then only this rank's
    contiguous share of the tasks is built, so data-parallel ranks together see exactly the
    batch one process would.
    """
    device = x_train.device
    T, S, L = spec.tasks_per_step, spec.seqs_per_task, spec.seq_len
    ids = draw_task_ids(spec, gen, device)
    n = x_train.shape[0]
    if distinct_examples is None:
        idx = torch.randint(0, n, (T, S, L), generator=gen, device=device)
    else:
        pool = torch.randint(0, n, (T, S, distinct_examples), generator=gen, device=device)
        pick = torch.randint(0, distinct_examples, (T, S, L), generator=gen, device=device)
        idx = torch.gather(pool, 2, pick)
    rank, world = shard
    if T % world:
        raise ValueError(f"tasks_per_step={T} is not divisible by {world} data-parallel ranks")
    mine = slice(rank * T // world, (rank + 1) * T // world)
    ids, idx = ids[mine], idx[mine]
    x, y = apply_tasks(x_train[idx], y_train[idx], task_seed, ids)
    tokens = make_tokens(x, y).flatten(0, 1)
    return tokens, y.flatten(0, 1), ids


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The RNG of one training step, a function of (run seed, step) only, so resuming a run
    replays exactly the batches an uninterrupted run would have drawn."""
    key = hash_bits(seed, torch.tensor([step]), 2, stream=_STREAM_STEP)[0]
    gen = torch.Generator(device=device)
    gen.manual_seed((int(key[0]) & 0xFFFFFFFF) << 32 | (int(key[1]) & 0xFFFFFFFF))
    return gen


# --------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class PreprocessSpec:
    """How raw images become model inputs: pixels / 255, channels, resize, z-normalise."""

    resize: int = 14  # output height = width (authors' code default 14)
    channels: int = 1  # 1: colour images -> luminance; 3: grayscale images repeated
    # True: antialiased bilinear resize; False: plain bilinear with half-pixel centres, as the
    # authors' tf.image.resize (its defaults: bilinear, antialias=False).
    antialias: bool = True

    @property
    def input_size(self) -> int:
        return self.resize * self.resize * self.channels

    @property
    def tag(self) -> str:
        """Short name used in cache file names: 'r14c1' (antialiased), 'r14c3aa0' (not)."""
        return f"r{self.resize}c{self.channels}" + ("" if self.antialias else "aa0")

    @classmethod
    def from_tag(cls, tag: str) -> PreprocessSpec:
        """The spec whose tag is `tag` (inverse of .tag); ValueError for anything else."""
        if re.fullmatch(SPEC_TAG_PATTERN, tag) is None:
            raise ValueError(f"not a preprocessing tag: {tag!r} (e.g. r14c1, r14c3aa0)")
        resize, rest = tag[1:].split("c", 1)
        return cls(int(resize), int(rest[0]), antialias=not rest.endswith("aa0"))

    def cli_options(self) -> str:
        """The options of `gpicl cache` and `gpicl evalset` that give this spec."""
        options = f"--resize {self.resize} --channels {self.channels}"
        return options if self.antialias else options + " --no-antialias"


# Every PreprocessSpec.tag, as a regular expression (the workflow's cache-file wildcard).
SPEC_TAG_PATTERN = r"r[1-9][0-9]*c[13](?:aa0)?"


_LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601


def preprocess_images(images: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, H', W', C') in [0, 1], channels and size
    per `spec` (bilinear resize, antialiased or not). Normalisation is separate (it needs train
    stats). Channels last: flattened, an input is H-major, then W, then C, as the authors'
    tf.reshape of an HWC image; a repeated grayscale pixel gives 3 equal consecutive values.

    With antialias=False this is the authors' tf.image.resize (bilinear, half-pixel centres:
    source coordinate (i + 0.5) x in/out - 0.5, clamped at the borders); the authors resize
    uint8 then divide by 255, which is the same linear map in the other order."""
    x = images.to(torch.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 3 and spec.channels == 1:
        x = (x * torch.tensor(_LUMINANCE)).sum(-1, keepdim=True)
    elif x.shape[-1] == 1 and spec.channels == 3:
        x = x.expand(*x.shape[:-1], 3)
    x = x.permute(0, 3, 1, 2)  # (N, C, H, W)
    if x.shape[-1] != spec.resize or x.shape[-2] != spec.resize:
        x = F.interpolate(
            x,
            size=(spec.resize, spec.resize),
            mode="bilinear",
            align_corners=False,
            antialias=spec.antialias,
        )
    return x.permute(0, 2, 3, 1).contiguous()
