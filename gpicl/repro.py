"""Determinism switches and device choice, in one place."""

from __future__ import annotations

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
