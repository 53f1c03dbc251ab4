"""The SGD and MAML baselines of Table 1 (docs/paper.md#sgd-and-maml): every sequence trains its own
1-hidden-layer ReLU network online with Adam, one update per example, and the prediction at step t
is made before the update on example t. SGD starts each sequence from fresh random weights (nothing
is meta-learned); MAML meta-learns the shared initial weights by backpropagating through the whole
unrolled inner loop, second order included.

Follows the authors' `SGD` model (learned_optimization/research/data_driven/models.py): the network
sees x alone (not the label slot), its loss is the cross-entropy of the single example, optax.adam
(b1 0.9, b2 0.999, eps 1e-8 outside the square root, no eps_root).

Token t = concat(x_t, onehot(y_{t-1})), so the label of example t arrives with token t+1: position
t predicts x_t with the current weights, then takes one Adam step on (x_t, y_t) using token t+1's
label slot. Causal by construction; the last example's label never arrives and is never used.

All sequences run at once on batched weights (B, P), flattened as [W1, b1, W2, b2]; Python loops
over time steps only. The inner gradient is written out by hand (a 1-hidden-layer network) as
ordinary differentiable tensor ops, so the meta-gradient through the unroll is the exact
second-order one; the Adam step has a hand-written backward to keep the graph small. The inner loop
always runs in fp32 (autocast off): bf16 would only add noise to a network this small."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from gpicl.augment import NUM_CLASSES
from gpicl.models.transformer import _init_linear


@dataclass(frozen=True)
class OnlineLearnerConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features, the inner network sees the first Nx
    seq_len: int = 100  # unused by the recurrence; kept so every model is built alike
    hidden_size: int = 128
    inner_lr: float = 1e-3
    meta_learned_init: bool = False  # False: SGD (fresh weights per sequence); True: MAML
    init_seed: int = 0  # SGD only: seeds the per-sequence initial weights
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    first_order: bool = False  # MAML ablation (FOMAML): inner gradients treated as constants
    # > 0: keep only (weights, moments) every this many steps and recompute the steps in between
    # during backward (MAML memory down ~1.4x at ~1.6x time with 10, CPU measurements)
    checkpoint_every: int = 0


class OnlineLearner(nn.Module):
    def __init__(self, cfg: OnlineLearnerConfig):
        super().__init__()
        if cfg.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {cfg.checkpoint_every}")
        self.cfg = cfg
        nx, h = cfg.input_size, cfg.hidden_size
        self._sizes = (h * nx, h, NUM_CLASSES * h, NUM_CLASSES)  # W1, b1, W2, b2
        if cfg.meta_learned_init:
            self.fc1 = nn.Linear(nx, h)
            self.fc2 = nn.Linear(h, NUM_CLASSES)
            _init_linear(self.fc1)
            _init_linear(self.fc2)

    # ------------------------------------------------------------------ initial weights
    def inner_size(self) -> int:
        """P: the inner network's weights and biases, h (Nx + 1) + 10 (h + 1)."""
        return sum(self._sizes)

    def initial_weights(
        self, batch_size: int, device=None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """(B, P) starting weights, one row per sequence. MAML: the meta-learned init, shared.
        SGD: Haiku's Linear init (truncated normal, std 1/sqrt(fan_in), zero bias) drawn per
        sequence from a generator seeded with init_seed, so every call with the same batch size
        draws the same weights and the rows of a batch differ."""
        if self.cfg.meta_learned_init:
            flat = torch.cat(
                [self.fc1.weight.flatten(), self.fc1.bias, self.fc2.weight.flatten(), self.fc2.bias]
            )
            return flat.expand(batch_size, -1)
        nx, h = self.cfg.input_size, self.cfg.hidden_size
        gen = torch.Generator(device=device).manual_seed(self.cfg.init_seed)
        w1 = torch.empty(batch_size, h, nx, device=device, dtype=dtype)
        w2 = torch.empty(batch_size, NUM_CLASSES, h, device=device, dtype=dtype)
        for w, fan_in in ((w1, nx), (w2, h)):
            std = 1.0 / math.sqrt(fan_in)
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=gen)
        zeros = w1.new_zeros(batch_size, h + NUM_CLASSES)
        return torch.cat([w1.flatten(1), zeros[:, :h], w2.flatten(1), zeros[:, h:]], dim=1)

    # ------------------------------------------------------------------ the inner loop
    def _unpack(self, p: torch.Tensor):
        B = p.shape[0]
        nx, h = self.cfg.input_size, self.cfg.hidden_size
        w1, b1, w2, b2 = p.split(self._sizes, dim=1)
        return w1.view(B, h, nx), b1, w2.view(B, NUM_CLASSES, h), b2

    def _steps(self, p, m, v, x, target, t0: int, last: int):
        """Positions t0 .. t0 + len - 1: predict x_t, then (unless t is the last position of the
        sequence) one Adam step on (x_t, target_t). Returns the new (p, m, v) and the logits."""
        c = self.cfg
        out = []
        for i in range(x.shape[1]):
            w1, bias1, w2, bias2 = self._unpack(p)
            xt = x[:, i]
            pre = torch.baddbmm(bias1.unsqueeze(2), w1, xt.unsqueeze(2)).squeeze(2)  # (B, h)
            hid = pre.clamp_min(0)
            logits = torch.baddbmm(bias2.unsqueeze(2), w2, hid.unsqueeze(2)).squeeze(2)
            out.append(logits)
            t = t0 + i
            if t == last:
                break
            # Gradient of cross-entropy(softmax(logits), target) for the single example.
            d_logits = logits.softmax(-1) - target[:, i]
            d_pre = torch.bmm(d_logits.unsqueeze(1), w2).squeeze(1) * (pre > 0)
            g = torch.cat(
                [
                    (d_pre.unsqueeze(2) * xt.unsqueeze(1)).flatten(1),
                    d_pre,
                    (d_logits.unsqueeze(2) * hid.unsqueeze(1)).flatten(1),
                    d_logits,
                ],
                dim=1,
            )
            if c.first_order:
                g = g.detach()
            p, m, v = _adam_step(p, m, v, g, t + 1, c)
        return p, m, v, torch.stack(out, dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10); position t sees tokens 0..t only."""
        with torch.autocast(tokens.device.type, enabled=False):  # a tiny network: fp32 inner loop
            return self._forward(tokens.float() if tokens.dtype in _HALF else tokens)

    def _forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, L, _ = tokens.shape
        nx = self.cfg.input_size
        x = tokens[..., :nx]
        # target_t = y_t, carried by token t + 1; the last position has none (never used).
        target = torch.nn.functional.pad(tokens[:, 1:, nx:], (0, 0, 0, 1))
        p = self.initial_weights(B, tokens.device, tokens.dtype)
        m = torch.zeros(B, p.shape[1], device=p.device, dtype=p.dtype)
        v = torch.zeros_like(m)
        k = self.cfg.checkpoint_every
        needs_graph = torch.is_grad_enabled() and (tokens.requires_grad or self.num_params() > 0)
        if k <= 0 or k >= L or not needs_graph:
            return self._steps(p, m, v, x, target, 0, L - 1)[3]
        outs = []
        for t0 in range(0, L, k):
            chunk = (x[:, t0 : t0 + k], target[:, t0 : t0 + k], t0, L - 1)
            p, m, v, logits = checkpoint(self._steps, p, m, v, *chunk, use_reentrant=False)
            outs.append(logits)
        return torch.cat(outs, dim=1)

    def num_params(self) -> int:
        """MAML: the initial weights, P. SGD: nothing is meta-learned, 0 (a 0-step run)."""
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """Accessible state: every number the online learner carries from one step to the next
        within a sequence, i.e. the inner network's weights and Adam's two moments, 3 x P with
        P = h (Nx + 1) + 10 (h + 1) (the step count is the position, not counted)."""
        return 3 * self.inner_size()


_HALF = (torch.float16, torch.bfloat16)


def _adam_step(p, m, v, g, step: int, c: OnlineLearnerConfig):
    """One Adam step (torch.optim.Adam's formula: bias-corrected, eps outside the square root) on
    batched weights. Returns new (p, m, v); the inputs are left untouched."""
    consts = (c.adam_b1, c.adam_b2, c.adam_eps, c.inner_lr, step)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (p, m, v, g)):
        return _AdamStep.apply(p, m, v, g, *consts)
    return _adam_forward(p, m, v, g, *consts)


def _adam_forward(p, m, v, g, b1, b2, eps, lr, step):
    m = torch.lerp(m, g, 1 - b1)
    v = torch.mul(v, b2).addcmul_(g, g, value=1 - b2)
    denom = v.sqrt().mul_(1 / math.sqrt(1 - b2**step)).add_(eps)
    return torch.addcdiv(p, m, denom, value=-lr / (1 - b1**step)), m, v


class _AdamStep(torch.autograd.Function):
    """The Adam step with a hand-written backward: it keeps only (g, m_new, v_new) for the
    backward pass (autograd on the plain formula keeps ~5 tensors of the weights' size per step,
    the bulk of MAML's memory), and defines the derivative of sqrt(v) at v = 0 as 0: a weight
    whose inner gradients have all been exactly 0 so far (a hidden unit the ReLU kept off) has
    m = v = 0 and no update, and autograd's inf x 0 there would turn the meta-gradient into nan.
    Not twice differentiable (the meta-gradient needs one reverse pass through the unroll)."""

    @staticmethod
    def forward(ctx, p, m, v, g, b1, b2, eps, lr, step):
        p, m, v = _adam_forward(p, m, v, g, b1, b2, eps, lr, step)
        ctx.consts = (b1, b2, eps, lr, step)
        ctx.save_for_backward(g, m, v)
        return p, m, v

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dp, dm, dv):
        g, m, v = ctx.saved_tensors
        b1, b2, eps, lr, step = ctx.consts
        bc2 = 1 - b2**step
        scale = lr / (1 - b1**step)
        # p_new = p - scale * m / (s + eps), s = sqrt(v / bc2), with m, v the new moments.
        s = v.div(bc2).sqrt_()
        denom = s + eps
        r = dp / denom if dp is not None else torch.zeros_like(m)
        dm_total = -scale * r if dm is None else dm.add(r, alpha=-scale)
        # d p_new / d v = scale * m / denom^2 / (2 s bc2); 0 where v = 0 (then m = 0 too).
        dv_p = torch.where(s > 0, r.mul_(m).div_(denom).div_(s).mul_(scale / (2 * bc2)), 0.0)
        dv_total = dv_p if dv is None else dv_p.add_(dv)
        dg = None
        if ctx.needs_input_grad[3]:
            dg = torch.addcmul(dm_total * (1 - b1), g, dv_total, value=2 * (1 - b2))
        dm_in = dm_total.mul_(b1) if ctx.needs_input_grad[1] else None
        dv_in = dv_total.mul_(b2) if ctx.needs_input_grad[2] else None
        return dp, dm_in, dv_in, dg, None, None, None, None, None
