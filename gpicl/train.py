"""Meta-training loop: flat and linear (build data, model, optimiser; loop; checkpoint).

The batch of step s is a function of (run seed, s) only, and the checkpoint holds the model,
the optimiser and the log rows so far, so a resumed run continues bit for bit on CPU.
Files in the run folder: config.json, checkpoint.pt (working state, every `checkpoint_every`
steps), log.csv, and at the end model.pt and done.json (the marker that the run finished).
A checkpoint is resumed only when its fingerprint (gpicl.fingerprint: configuration, input
cache, training and model code, torch version) equals the run's; otherwise, or when it is
damaged, the run starts over from step 0 and says why.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from gpicl.augment import (
    BatchSpec,
    PreprocessSpec,
    apply_tasks,
    curriculum_examples,
    distinct_indices,
    make_tokens,
    sample_training_batch,
    step_generator,
)
from gpicl.fingerprint import fingerprint_difference, run_fingerprint
from gpicl.io import (
    IntegrityError,
    load_artifact,
    load_torch,
    save_torch,
    sha256_file,
    write_json,
    write_text,
)
from gpicl.metrics import plateau_length
from gpicl.models import build_model
from gpicl.optim import Adam, lr_factor
from gpicl.repro import device_name, peak_memory_mb, pick_device, set_determinism
from gpicl.results import LOG_COLUMNS, PROBE_COLUMNS  # the formats figures read back

READBACK_EVERY = 25  # steps between reading training stats back from the device
PROBE_TASKS, PROBE_SEQS = 4, 8  # unseen task ids -1..-4, 8 test-split sequences each


class NonFiniteLossError(FloatingPointError):
    pass


def load_cache(path: str | Path, device: torch.device) -> dict:
    """The augmentation cache of one (dataset, preprocessing spec): preprocessed tensors."""
    return load_artifact(path, "cache", map_location=device)


def check_cache_matches(cache: dict, cache_path, run_cfg: dict) -> None:
    """A cache made for another dataset or preprocessing would train a model labelled as
    something it is not."""
    wanted = (run_cfg["train_dataset"], PreprocessSpec(**run_cfg["preprocess"]).tag)
    made_for = (cache.get("dataset"), cache["spec"])
    if made_for != wanted:
        raise ValueError(
            f"{cache_path} is the cache of {made_for[0]} ({made_for[1]}), but run "
            f"{run_cfg['name']} trains on {wanted[0]} ({wanted[1]})"
        )


def batch_spec(train_cfg: dict) -> BatchSpec:
    return BatchSpec(
        num_tasks=train_cfg["num_tasks"],
        tasks_per_step=train_cfg["tasks_per_step"],
        seqs_per_task=train_cfg["seqs_per_task"],
        seq_len=train_cfg["seq_len"],
        bias_fraction=train_cfg.get("bias_fraction", 0.0),
    )


def training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    spec: BatchSpec,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    task_seed: int,
    gen: torch.Generator,
    distinct_examples: int | None,
    autocast,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """One meta-training step: batch made on the device, forward, loss, backward, Adam.

    Returns (loss, accuracy, gradient norm) as a device tensor: no host synchronisation. Under
    data parallelism `model` is the DistributedDataParallel wrapper and `shard` this rank's
    share; the returned statistics are averaged over ranks (equal shares: the global mean).
    """
    tokens, targets, _ = sample_training_batch(
        spec, x_train, y_train, task_seed, gen, distinct_examples, shard
    )
    with autocast:
        logits = model(tokens)
    # Cross-entropy at every position, averaged over positions, sequences and tasks.
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.linalg.vector_norm(
        torch.stack(torch._foreach_norm([p.grad for p in model.parameters()]))
    )
    optimizer.step()
    accuracy = (logits.argmax(-1) == targets).float().mean()
    stats = torch.stack([loss.detach(), accuracy, grad_norm])
    if shard[1] > 1:
        dist.all_reduce(stats)
        stats /= shard[1]
    return stats


def probe_sequences(cache: dict, seq_len: int, task_seed: int) -> tuple[torch.Tensor, ...]:
    """Fixed test-split sequences under unseen tasks and under task 0 (the biased task), as
    tokens and targets, for watching in-context learning during training (`probe_every`)."""
    x_test, y_test = cache["x_test"], cache["y_test"]
    gen = torch.Generator().manual_seed(task_seed)  # the same probe for every run
    rows = PROBE_TASKS * PROBE_SEQS  # without replacement, as the evaluation sets
    idx = distinct_indices(x_test.shape[0], rows, seq_len, gen).view(PROBE_TASKS, PROBE_SEQS, -1)
    idx = idx.to(x_test.device)
    x, y = x_test[idx], y_test[idx]
    unseen = -torch.arange(1, PROBE_TASKS + 1, device=x.device)
    probes = []
    for ids in (unseen, torch.zeros_like(unseen)):
        xt, yt = apply_tasks(x, y, task_seed, ids)
        probes += [make_tokens(xt, yt).flatten(0, 1), yt.flatten(0, 1)]
    return tuple(probes)


@torch.no_grad()
def probe_accuracy(model, probes, autocast) -> tuple[float, float]:
    """Mean accuracy over all positions on the probe's unseen tasks and on task 0."""
    model.eval()
    accuracies = []
    for tokens, targets in zip(probes[::2], probes[1::2], strict=True):
        with autocast:
            logits = model(tokens)
        accuracies.append((logits.argmax(-1) == targets).float().mean().item())
    model.train()
    return accuracies[0], accuracies[1]


def data_parallel_setup() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun with several processes, else (0, 1).

    Gradients are averaged by DistributedDataParallel; every rank draws the same step's random
    numbers and builds only its share of the tasks (augment.sample_training_batch).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def autocast_context(dev: torch.device, amp: bool, amp_cpu: bool = False):
    """bf16 autocast on CUDA when `amp`, on CPU when `amp_cpu`; plain fp32 otherwise.

    CPUs with bf16 dot products (AVX512-BF16, AMX) multiply bf16 matrices several times faster
    than fp32 (docs/measurements.md), but the change of numerics is a choice, so it is its own
    switch (`train.amp_cpu`: on in the cpu tier, off by default)."""
    if (dev.type == "cuda" and amp) or (dev.type == "cpu" and amp_cpu):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _drain(pending: list, rows: list, name: str, last_checkpoint: int) -> None:
    """Move pending per-step stats into log rows; stop on the first non-finite loss."""
    stats = torch.stack([p[2] for p in pending]).tolist()
    for (step, k, _), (loss, acc, grad_norm) in zip(pending, stats, strict=True):
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"{name}: non-finite loss {loss} at step {step}; the run stops here without a "
                f"done marker (last checkpoint: step {last_checkpoint})"
            )
        rows.append((step, loss, acc, grad_norm, k))
    pending.clear()


def _save_checkpoint(
    path: Path, model, optimizer, step: int, rows: list, probe: list, fingerprint: dict, spent
) -> None:
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    state["spent"] = spent.total()  # compute so far, for timing.json after a resume
    save_torch({**state, "log": rows, "probe": probe, "fingerprint": fingerprint}, path)


def _resumable_checkpoint(path: Path, fingerprint: dict, dev: torch.device) -> dict | None:
    """The checkpoint to resume, or None (deleted, with the reason logged) when it is damaged
    or was made under a different fingerprint: a stale model must never be finished."""
    if not path.exists():
        return None
    try:
        ckpt = load_torch(path, map_location=dev)
        why = fingerprint_difference(ckpt.get("fingerprint"), fingerprint)
    except IntegrityError as err:
        ckpt, why = None, f"it is unreadable ({err})"
    if why is None:
        return ckpt
    logging.getLogger("gpicl.train").warning(
        "%s: not resumed, training starts over from step 0: %s", path, why
    )
    path.unlink()
    return None


def _write_log(run_dir: Path, rows: list, probe: list) -> None:
    """log.csv (every step) and probe.csv (every `probe_every` steps; header only when off)."""
    lines = [",".join(LOG_COLUMNS)]
    for step, loss, acc, gnorm, k in rows:
        lines.append(f"{step},{loss:.6f},{acc:.6f},{gnorm:.6e},{k}")
    write_text(run_dir / "log.csv", "\n".join(lines) + "\n")
    lines = [",".join(PROBE_COLUMNS)] + [f"{s},{u:.6f},{t:.6f}" for s, u, t in probe]
    write_text(run_dir / "probe.csv", "\n".join(lines) + "\n")


class ComputeSpent:
    """Wall and process-CPU seconds of training, summed over every call that trained the run
    (a resumed run adds to what its checkpoint recorded). CPU seconds count every thread of
    the process, so they measure compute even when other jobs share the cores."""

    def __init__(self, before: dict | None = None):
        self.before = dict(before or {"wall_s": 0.0, "cpu_s": 0.0})
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def this_call(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0

    def total(self) -> dict:
        wall, cpu = self.this_call()
        return {"wall_s": self.before["wall_s"] + wall, "cpu_s": self.before["cpu_s"] + cpu}


def _timing(dev: torch.device, spent: ComputeSpent, steps: int) -> dict:
    """Wall time and peak memory of this call (resident set on CPU, allocator peak on CUDA),
    probed as gpicl.bench does, and the run's compute over all calls."""
    peak_mb, _ = peak_memory_mb(dev)
    seconds, _ = spent.this_call()
    total = spent.total()
    return {
        "device": device_name(dev),
        "threads": torch.get_num_threads(),
        "seconds_this_call": round(seconds, 2),
        "steps_this_call": steps,
        "steps_per_second": round(steps / max(seconds, 1e-9), 3),
        "peak_memory_mb": round(peak_mb, 1),
        "wall_seconds_total": round(total["wall_s"], 2),
        "cpu_seconds_total": round(total["cpu_s"], 2),
    }


def train(
    run_cfg: dict,
    cache_path: str | Path,
    run_dir: str | Path,
    device: str = "auto",
    threads: int | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict:
    """Meta-train one run to its fixed step budget (resuming from checkpoint.pt if present).

    `stop_after` ends the call early after that many total steps (for tests of resumption);
    the run then has a checkpoint but no done.json.
    """
    run_dir = Path(run_dir)
    rank, world = data_parallel_setup()
    lead = rank == 0  # only rank 0 writes files
    dev = pick_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(dev)
    set_determinism(run_cfg["seed"], threads)
    tcfg = run_cfg["train"]
    cache = load_cache(cache_path, dev)  # checked before anything in the run folder changes
    check_cache_matches(cache, cache_path, run_cfg)
    fingerprint = run_fingerprint(run_cfg, cache_path)
    ckpt_path = run_dir / "checkpoint.pt"
    if lead:
        write_json(run_dir / "config.json", run_cfg)
        ckpt = _resumable_checkpoint(ckpt_path, fingerprint, dev)  # a stale one is deleted
    if world > 1:
        dist.barrier()

    x_train, y_train = cache["x_train"], cache["y_train"]
    spec = batch_spec(tcfg)
    model = build_model(run_cfg["model"], x_train.shape[1], spec.seq_len).to(dev)
    steps = tcfg["steps"]
    if model.num_params() == 0:
        # A learner with nothing to meta-train (the SGD baseline): its run is 0 steps and
        # model.pt holds only its configuration.
        if steps != 0:
            raise ValueError(f"{run_cfg['name']}: the model has no parameters; set steps: 0")
        optimizer = net = None
    else:
        if steps == 0:
            raise ValueError(f"{run_cfg['name']}: steps is 0 but the model has parameters")
        optimizer = Adam(
            model.parameters(), lr=tcfg["lr"], eps=tcfg["eps"], eps_root=tcfg["eps_root"]
        )
        net = DistributedDataParallel(model) if world > 1 else model

    start, rows, probe, spent_before = 0, [], [], None
    if not lead:  # rank 0 read (and judged) it above; the others read what it kept
        ckpt = load_torch(ckpt_path, map_location=dev) if ckpt_path.exists() else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, rows = ckpt["step"], [tuple(r) for r in ckpt["log"]]
        probe = [tuple(r) for r in ckpt.get("probe", [])]
        spent_before = ckpt.get("spent")
    probe_every = tcfg.get("probe_every", 0)
    probes = probe_sequences(cache, spec.seq_len, run_cfg["task_seed"]) if probe_every else None

    end = steps if stop_after is None else min(steps, stop_after)
    curriculum = tcfg.get("curriculum")
    autocast = autocast_context(dev, tcfg["amp"], tcfg["amp_cpu"])
    every = tcfg["checkpoint_every"]
    pending: list = []  # per-step stats stay on the device until read back (no per-step sync)
    last_checkpoint = start
    spent = ComputeSpent(spent_before)
    bar = tqdm(
        total=steps,
        initial=start,
        desc=run_cfg["name"],
        disable=not (progress and lead),
        mininterval=2.0,
        unit="step",
    )
    model.train()
    for step in range(start, end):
        k = None
        if curriculum:
            k = curriculum_examples(
                step,
                curriculum["start_examples"],
                curriculum["hold_steps"],
                curriculum["anneal_steps"],
                x_train.shape[0],
            )
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = tcfg["lr"] * lr_factor(step, steps, tcfg.get("lr_schedule"))
        gen = step_generator(run_cfg["seed"], step, dev)
        stats = training_step(
            net,
            optimizer,
            spec,
            x_train,
            y_train,
            run_cfg["task_seed"],
            gen,
            k,
            autocast,
            shard=(rank, world),
        )
        pending.append((step + 1, k or 0, stats))
        bar.update(1)
        if probe_every and (step + 1) % probe_every == 0:
            probe.append((step + 1, *probe_accuracy(model, probes, autocast)))
        at_checkpoint = (step + 1) % every == 0 or step + 1 == end
        if at_checkpoint or len(pending) == READBACK_EVERY:
            _drain(pending, rows, run_cfg["name"], last_checkpoint)
            bar.set_postfix(loss=f"{rows[-1][1]:.4f}", acc=f"{rows[-1][2]:.3f}")
        if at_checkpoint and lead:
            _save_checkpoint(ckpt_path, model, optimizer, step + 1, rows, probe, fingerprint, spent)
            _write_log(run_dir, rows, probe)
        if at_checkpoint:
            last_checkpoint = step + 1
    bar.close()
    summary = {"steps_done": end, "finished": end == steps}
    if world > 1:
        dist.barrier()
        if not lead:
            return summary
    if end == steps:
        # Written here too: a rerun that resumes from the final checkpoint trains no step, and
        # the workflow removes a rerun job's old outputs before starting it.
        _write_log(run_dir, rows, probe)
        model_digest = save_torch(
            {"model": model.state_dict(), "config": run_cfg, "fingerprint": fingerprint},
            run_dir / "model.pt",
        )
        summary.update(
            # Content hashes of the files beside done.json, checked by whoever reads them.
            sha256={
                "model.pt": model_digest,
                "log.csv": sha256_file(run_dir / "log.csv"),
                "probe.csv": sha256_file(run_dir / "probe.csv"),
            },
            fingerprint=fingerprint,
            name=run_cfg["name"],
            final_loss=round(rows[-1][1], 6) if rows else None,
            final_accuracy=round(rows[-1][2], 6) if rows else None,
            num_params=model.num_params(),
            state_size=model.state_size(),
            # First step whose smoothed loss is a margin below chance (gpicl.metrics); None if
            # the run never left the plateau.
            plateau_step=plateau_length([r[1] for r in rows], [r[0] for r in rows]),
            # What the run was, so figures of training runs need no other file.
            seed=run_cfg["seed"],
            variant=run_cfg.get("variant"),
            num_tasks=tcfg["num_tasks"],
            train=tcfg,
        )
        write_json(run_dir / "done.json", summary)
    # Machine-dependent numbers stay out of done.json so that results are byte-identical.
    write_json(run_dir / "timing.json", _timing(dev, spent, end - start))
    return summary
