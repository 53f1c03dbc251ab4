"""The outer-product LSTM (docs/paper.md#outer-product-lstm): an LSTM whose cell state is, per
head, an h x h matrix written by outer products, so its state grows as h^2 for h^1 parameters per
gate row. It lets the state-size-versus-parameter-count comparison vary state at a fixed
parameter count.

Mechanics follow the authors' `OuterLSTM` core in
learned_optimization/research/data_driven/model_components.py, used through the `LSTM` model of
models.py (its `lstm_creator`), i.e. with the same front and back as our gpicl.models.lstm:
- token -> 2-layer ReLU MLP of width h (the authors pass one hidden_size to both the MLP and the
  core) -> z_t;
- one Linear over concat(z_t, hidden_{t-1}) -> per head 8h numbers, split into k1 (3 x h),
  k2 (3 x h), a query q (h) and an output gate o (h);
- input, cell and forget gates (3 h x h matrices) = outer(tanh(k1) * softplus(s), tanh(k2)), with
  one learned scalar s (init 0) shared by all heads and gates;
- cell = sigmoid(f + 1) * cell + sigmoid(i) * g (constant forget bias +1, no tanh on g: it is
  already bounded by the tanh factors);
- read = q^T cell (q is not squashed), hidden = sigmoid(o) * tanh(read), all heads concatenated;
- a Linear(heads x h -> 10) reads the hidden vector at every step.
Our choices: the recurrence is unrolled in a Python loop over time (batched over sequences and
heads); the input part of the gate Linear is applied to all positions at once, before the loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES
from gpicl.models.transformer import _init_linear

FORGET_BIAS = 1.0


@dataclass(frozen=True)
class OuterProductLSTMConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features
    seq_len: int = 100  # unused by the recurrence; kept so every model is built alike
    hidden_size: int = 16  # h: width of the input MLP and side of each head's cell matrix
    heads: int = 4


class OuterProductLSTM(nn.Module):
    def __init__(self, cfg: OuterProductLSTMConfig):
        super().__init__()
        self.cfg = cfg
        h, H = cfg.hidden_size, cfg.heads
        self.mlp = nn.Sequential(
            nn.Linear(cfg.input_size + NUM_CLASSES, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
        )
        self.gates = nn.Linear(h + H * h, H * 8 * h)  # over concat(z_t, hidden_{t-1})
        self.key_scale = nn.Parameter(torch.zeros(()))  # softplus(0) = log 2 at init
        self.head = nn.Linear(H * h, NUM_CLASSES)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _init_linear(module)

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, heads x h), cell (B, heads, h, h)), zeros."""
        h, H = self.cfg.hidden_size, self.cfg.heads
        p = self.head.weight
        return p.new_zeros(batch_size, H * h), p.new_zeros(batch_size, H, h, h)

    def step(self, gated: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrence step from the gate pre-activations gated (B, heads x 8h) and the previous
        cell (B, heads, h, h) -> (hidden (B, heads x h), cell)."""
        B = gated.shape[0]
        h, H = self.cfg.hidden_size, self.cfg.heads
        gated = gated.view(B, H, 8 * h)
        k1 = torch.tanh(gated[..., : 3 * h]).view(B, H, 3, h, 1) * F.softplus(self.key_scale)
        k2 = torch.tanh(gated[..., 3 * h : 6 * h]).view(B, H, 3, 1, h)
        q, o = gated[..., 6 * h : 7 * h], gated[..., 7 * h :]
        i, g, f = (k1 * k2).unbind(2)  # outer products, each (B, H, h, h)
        cell = torch.sigmoid(f + FORGET_BIAS) * cell + torch.sigmoid(i) * g
        read = torch.matmul(q.unsqueeze(-2), cell).squeeze(-2)  # sum_i q_i cell_ij: (B, H, h)
        hidden = (torch.sigmoid(o) * torch.tanh(read)).reshape(B, H * h)
        return hidden, cell

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10); position t sees tokens 0..t only."""
        B, L, _ = tokens.shape
        h = self.cfg.hidden_size
        w_z, w_hidden = self.gates.weight.split([h, self.gates.in_features - h], dim=1)
        from_inputs = F.linear(self.mlp(tokens), w_z, self.gates.bias)  # (B, L, heads x 8h)
        hidden, cell = self.initial_state(B)
        outputs = []
        for t in range(L):
            hidden, cell = self.step(torch.addmm(from_inputs[:, t], hidden, w_hidden.t()), cell)
            outputs.append(hidden)
        return self.head(torch.stack(outputs, dim=1))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """Accessible state: every number the recurrence carries from one step to the next, i.e.
        the heads cell matrices (heads x h^2, the paper's count) plus the hidden vector the gates
        read back (heads x h): heads x h x (h + 1)."""
        h, H = self.cfg.hidden_size, self.cfg.heads
        return H * h * h + H * h
