"""Decoder-only causal Transformer with the authors' code defaults (docs/paper.md#transformer):
pre-LayerNorm blocks, final LayerNorm, learned positions, MLP 4x with GELU (tanh approximation,
JAX's default), no dropout. Attention width is heads x key_size, independent of the model width.

Initialisation follows the authors' Haiku code (learned_optimization, research/data_driven:
transformer.py and models.py) scale for scale:
- attention projections (query, key, value, output) and both MLP layers: Haiku's
  VarianceScaling(2 / layers), fan-in mode, truncated normal: std sqrt(2 / (layers x fan_in))
  after truncation at +-2 standard deviations; zero biases;
- input embedding and output head: Haiku's Linear default, a unit normal truncated at +-2 times
  1/sqrt(fan_in) (std 0.88/sqrt(fan_in) after truncation); zero biases;
- positional embeddings: Haiku's TruncatedNormal(0.1) (std 0.088 after truncation);
- LayerNorm: scale 1, offset 0, eps 1e-5 (Haiku's and torch's defaults).
tests/test_model.py pins every scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES


@dataclass(frozen=True)
class TransformerConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features
    seq_len: int = 100
    width: int = 512  # "model size" on the paper's axes
    layers: int = 4
    heads: int = 8
    key_size: int = 32  # per head
    mlp_ratio: int = 4
    pos_init_std: float = 0.1


# Standard deviation of a unit normal truncated to [-2, 2] (Haiku's correction constant).
TRUNCATED_UNIT_STD = 0.87962566103423978


def _truncated_normal_(w: torch.Tensor, scale: float) -> None:
    """A unit normal truncated to [-2, 2], times `scale` (Haiku's TruncatedNormal(scale))."""
    nn.init.trunc_normal_(w, std=scale, a=-2 * scale, b=2 * scale)


def _init_linear(layer: nn.Linear, variance_scale: float | None = None) -> None:
    """Zero bias; weights as Haiku's Linear default (variance_scale None: truncated normal
    with scale 1/sqrt(fan_in)) or as Haiku's VarianceScaling(variance_scale) in fan-in mode
    (scale corrected for the truncation, so the std is sqrt(variance_scale / fan_in))."""
    fan_in = layer.in_features
    if variance_scale is None:
        scale = 1.0 / math.sqrt(fan_in)
    else:
        scale = math.sqrt(variance_scale / fan_in) / TRUNCATED_UNIT_STD
    _truncated_normal_(layer.weight, scale)
    nn.init.zeros_(layer.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads, self.key_size = cfg.heads, cfg.key_size
        self.qkv = nn.Linear(cfg.width, 3 * cfg.heads * cfg.key_size)
        self.out = nn.Linear(cfg.heads * cfg.key_size, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, self.key_size).unbind(2)  # (B, L, H, K)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, L, K)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU flash attention is ~5x slower in bf16 than in fp32 at these head sizes
            # (docs/measurements.md): under CPU autocast the linear layers run in bf16 and
            # attention in fp32.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, L, self.heads * self.key_size))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln_attn = nn.LayerNorm(cfg.width)
        self.attn = CausalSelfAttention(cfg)
        self.ln_mlp = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width),
            nn.GELU(approximate="tanh"),  # jax.nn.gelu's default
            nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.input_size + NUM_CLASSES, cfg.width)
        self.pos = nn.Parameter(torch.empty(cfg.seq_len, cfg.width))
        _truncated_normal_(self.pos, cfg.pos_init_std)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_final = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, NUM_CLASSES)
        _init_linear(self.embed)
        _init_linear(self.head)
        block_scale = 2.0 / cfg.layers  # the authors' init_scale, shared by attention and MLP
        for block in self.blocks:
            for layer in (block.attn.qkv, block.attn.out, block.mlp[0], block.mlp[2]):
                _init_linear(layer, block_scale)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10); position t sees tokens 0..t only."""
        L = tokens.shape[1]
        h = self.embed(tokens) + self.pos[:L]  # (B, L, C)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_final(h))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """Accessible state: the keys and values cached over a full sequence, in every layer
        (2 x layers x heads x key_size x seq_len numbers)."""
        c = self.cfg
        return 2 * c.layers * c.heads * c.key_size * c.seq_len

    def flops_per_token(self) -> int:
        return _forward_flops_per_token(self.cfg)


def _forward_flops_per_token(c: TransformerConfig) -> int:
    """Forward multiply-adds x 2 per token, from the shapes (attention over a full sequence).
    LayerNorm, GELU, softmax and the loss are left out, as nanoGPT counts."""
    attn_width = c.heads * c.key_size
    per_layer = (
        c.width * 3 * attn_width  # qkv
        + attn_width * c.width  # out projection
        + 2 * c.width * c.mlp_ratio * c.width  # MLP
        + attn_width * c.seq_len  # scores + weighted sum, causal: about half of 2 x L
    )
    return 2 * (
        (c.input_size + NUM_CLASSES) * c.width + c.layers * per_layer + c.width * NUM_CLASSES
    )


def _config(model_cfg: dict, input_size: int, seq_len: int) -> TransformerConfig:
    """model_cfg as build_model reads it (a params.yaml model block), defaults filled in."""
    fields = {k: v for k, v in model_cfg.items() if k != "type"}
    return TransformerConfig(input_size=input_size, seq_len=seq_len, **fields)


def transformer_forward_flops_per_token(model_cfg: dict, input_size: int, seq_len: int) -> int:
    """Forward FLOPs per token of the Transformer model_cfg describes, without building it (the
    benchmark counts shapes too large to allocate, and the reference's layout)."""
    return _forward_flops_per_token(_config(model_cfg, input_size, seq_len))


def transformer_train_flops(model_cfg: dict, input_size: int, seq_len: int, batch: int) -> int:
    """FLOPs of one training step on `batch` sequences of seq_len tokens: the backward pass
    costs twice the forward, so 3 x forward."""
    return 3 * transformer_forward_flops_per_token(model_cfg, input_size, seq_len) * batch * seq_len
