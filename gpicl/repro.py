"""Determinism switches and device choice, in one place."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def set_determinism(seed: int, threads: int | None = None) -> None:
    """Same inputs -> same bits on CPU; on CUDA, reproducible only on the same hardware."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
