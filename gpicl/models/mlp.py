"""The no-context baseline of Figure 2a (docs/paper.md#models): two hidden ReLU layers of width
`hidden_size`, applied to each example on its own. It never sees the context (the label slot of
the token is ignored), so it can only memorise tasks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from gpicl.augment import NUM_CLASSES


@dataclass(frozen=True)
class MLPConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features, of which only the first Nx are used
    seq_len: int = 100
    hidden_size: int = 128


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.Linear(cfg.input_size, cfg.hidden_size),
            nn.ReLU(),
            nn.Linear(cfg.hidden_size, cfg.hidden_size),
            nn.ReLU(),
            nn.Linear(cfg.hidden_size, NUM_CLASSES),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10) from x_t alone at every position."""
        return self.net(tokens[..., : self.cfg.input_size])

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """No state is carried along the sequence."""
        return 0
