"""The yardstick `gpicl bench` times ours against: the straightforward PyTorch way public
replications took. An fp32 nn.TransformerEncoder, and batches made on the host one sequence at a
time (a fresh projection and label permutation each), then copied to the device.

Kept apart from the benchmark's timing code so the yardstick can be read, and changed, on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gpicl.augment import NUM_CLASSES, make_tokens


class ReferenceTransformer(nn.Module):
    """The yardstick model: fp32 nn.TransformerEncoder (pre-LN, GELU, batch_first) with a causal
    mask, a linear token embedding, learned positions and a final LayerNorm. Attention width is
    the model width (key size = width / heads), as nn.MultiheadAttention requires."""

    def __init__(self, shape: dict):
        super().__init__()
        width, L = shape["width"], shape["seq_len"]
        self.embed = nn.Linear(shape["input_size"] + NUM_CLASSES, width)
        self.pos = nn.Parameter(0.1 * torch.randn(L, width))
        layer = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=shape["heads"],
            dim_feedforward=shape["mlp_ratio"] * width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, shape["layers"], norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.head = nn.Linear(width, NUM_CLASSES)
        mask = nn.Transformer.generate_square_subsequent_mask(L)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10)."""
        L = tokens.shape[1]
        h = self.embed(tokens) + self.pos[:L]  # (B, L, C)
        h = self.encoder(h, mask=self.causal_mask[:L, :L], is_causal=True)
        return self.head(h)


def reference_batch(
    x_train: torch.Tensor, y_train: torch.Tensor, batch_seqs: int, seq_len: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One task per sequence, made on the host in a Python loop: draw L examples, a fresh
    projection A ~ N(0, 1/Nx) and label permutation, apply them, then copy the batch over."""
    n, nx = x_train.shape
    tokens, targets = [], []
    for _ in range(batch_seqs):
        idx = torch.randint(0, n, (seq_len,))
        A = torch.randn(nx, nx) / math.sqrt(nx)
        perm = torch.randperm(NUM_CLASSES)
        x = x_train[idx] @ A.T
        y = perm[y_train[idx]]
        tokens.append(make_tokens(x, y))
        targets.append(y)
    return torch.stack(tokens).to(dev), torch.stack(targets).to(dev)
