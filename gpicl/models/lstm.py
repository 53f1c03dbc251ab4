"""The LSTM meta-learner of Table 1 (docs/paper.md#lstm): token -> 2-layer ReLU MLP (width h)
-> LSTM (width h) -> 10-way linear output at every step. Its state grows with h, not with the
sequence, which is the point of comparing it with the Transformer.

Follows the authors' `LSTM` model in learned_optimization/research/data_driven/models.py (an MLP of
width hidden_size, hk.LSTM(hidden_size), hk.Linear(10)). torch.nn.LSTM (fused) replaces hk.LSTM;
the two differ only in parametrisation, see `_init_lstm`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from gpicl.augment import NUM_CLASSES
from gpicl.models.transformer import _init_linear


@dataclass(frozen=True)
class LSTMConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features
    seq_len: int = 100  # unused by the recurrence; kept so every model is built alike
    hidden_size: int = 128  # h: width of the input MLP and of the LSTM


def _init_lstm(lstm: nn.LSTM) -> None:
    """Haiku's LSTM is one Linear over concat(x, h) -> 4h gates, with a constant +1 added to the
    forget gate. We draw that Linear's matrix with `_init_linear` (std 1/sqrt(in + h)) and split it
    into torch's weight_ih / weight_hh; torch's two bias vectors start at zero except the forget
    slice of bias_ih, which starts at +1 (learned here, a constant in Haiku: equal at init).
    torch.nn.LSTM carries a redundant second bias (4h extra parameters), counted in num_params."""
    h, d = lstm.hidden_size, lstm.input_size
    joint = nn.Linear(d + h, 4 * h)
    _init_linear(joint)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(joint.weight[:, :d])
        lstm.weight_hh_l0.copy_(joint.weight[:, d:])
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[h : 2 * h] = 1.0  # torch's gate order is (input, forget, cell, output)


class LSTM(nn.Module):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_size
        self.mlp = nn.Sequential(
            nn.Linear(cfg.input_size + NUM_CLASSES, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
        )
        self.lstm = nn.LSTM(h, h, batch_first=True)
        self.head = nn.Linear(h, NUM_CLASSES)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _init_linear(module)
        _init_lstm(self.lstm)

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden, cell), zeros of shape (1, B, h) each, as torch.nn.LSTM takes them."""
        p = self.head.weight
        zeros = p.new_zeros(1, batch_size, self.cfg.hidden_size)
        return zeros, zeros.clone()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10); position t sees tokens 0..t only."""
        out, _ = self.lstm(self.mlp(tokens), self.initial_state(tokens.shape[0]))
        return self.head(out)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """Accessible state: every number the recurrence carries from one step to the next, i.e.
        the hidden vector and the cell vector, 2 x h (the paper's axis says ~h)."""
        return 2 * self.cfg.hidden_size
