"""Determinism switches, device choice and the device and memory probes, in one place, so
training and the benchmark report the same quantities."""

from __future__ import annotations

import contextlib
import platform
import resource
from pathlib import Path

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """auto: CUDA when present, else CPU. A device asked for by name must exist here: a run that
    quietly fell back to other hardware would report numbers nobody asked for."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {requested}: unknown device; use auto, cpu, cuda or cuda:<n>")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {requested}: no CUDA device is available here "
                "(torch.cuda.is_available() is False); use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"--device {requested}: this machine has {count} CUDA device(s), "
                f"numbered 0..{count - 1}"
            )
    return dev


def set_determinism(seed: int, threads: int | None = None) -> None:
    """Same inputs -> same bits on CPU; on CUDA, reproducible only on the same hardware."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)


def device_name(dev: torch.device) -> str:
    """The hardware's name (GPU model, or CPU model from /proc/cpuinfo): timings mean little
    without it."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def reset_peak_memory(dev: torch.device) -> None:
    """Start a new peak for peak_memory_mb, so one measurement does not carry the last one's."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return
    # Linux: writing 5 to clear_refs resets the resident-set high-water mark (VmHWM).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(dev: torch.device) -> tuple[float, str]:
    """Peak memory in MiB since the last reset_peak_memory (else since the process started), and
    what was measured: the CUDA allocator's peak, or on CPU the process's resident-set
    high-water mark (all of the process, torch's libraries included)."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20, "cuda_max_allocated"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "rss_hwm"
    # ru_maxrss cannot be reset: the peak of the whole process so far (KiB on Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "maxrss_process"
