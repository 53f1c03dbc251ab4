"""VSML, Variable Shared Meta Learning (Kirsch & Schmidhuber 2021), the strongest baseline of
Table 1 (docs/paper.md#vsml): a grid of Nx x 10 tiny LSTMs, one per weight of a single layer
from the Nx inputs to the 10 classes, all sharing one set of parameters. The learning algorithm
lives in the LSTMs' states, so the state is large (Nx x 10 x 2 x hidden) while the parameter count
is a few thousand, whatever the input size.

Mechanics followed: google/learned_optimization, learned_optimization/research/data_driven/
models.py, classes `VSML` (fast_hidden_size 0: one layer from inputs to classes) and `VSMLLayer`
(self_msg on, message size 8, hidden 16, 2 micro-ticks); the sub-LSTM is Haiku's hk.LSTM. The
layer itself matches louiskirsch/vsml-neurips2021, vsml_layers.py (`dense`). Per time step t:

- Cell (i, j) receives concat(sb_i, x_i, sf_j, y_j): the forward message into input unit i (the
  scalar x_i, plus the backward message sb_i that unit i aggregated at step t-1) and the backward
  message into output unit j (the feedback y_j = onehot(y_{t-1})_j, plus the forward message sf_j
  that output unit j aggregated at step t-1). That input stays fixed over the micro-ticks; the
  LSTM runs `micro_ticks` times on it.
- sf_j = mean_i Linear_f(h_ij) (message_size channels) and sb_i = mean_j Linear_b(h_ij);
  channel 0 of sf_j is logit j of the prediction at step t.
- Everything starts at zero; the first token's label slot is zero (make_tokens), as in the code.

Our choices (the function computed is the code's unless stated): the affine maps commute with
the mean, so each message layer is applied to the mean of h rather than to every cell; the gate
pre-activation of a cell splits into an input-unit part and an output-unit part (computed once per
step, not per cell and tick) plus the recurrent part (one matmul for all cells per tick); gates
are stored in the order (i, f, o, g) rather than Haiku's (i, g, f, o), which with i.i.d. initial
weights is the same distribution; forget bias +1 as in Haiku; Haiku's Linear initialisation
(transformer._init_linear). The code's log_softmax is left to the loss, as for the other models.
Speed on CPU: a tick is one autograd node with a hand-written backward, and tanh is computed as
2 sigmoid(2z) - 1 (equal to float precision, ~5x faster than torch.tanh on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from gpicl.augment import NUM_CLASSES
from gpicl.models.transformer import _init_linear

# Sequences run in chunks of about this many cells (16 sequences at Nx = 49): one chunk's
# tensors stay in cache across the ops of a tick. Measured on one CPU thread, chunking made a
# training step 1.3-1.5x faster than running a batch of 64 (Nx = 49) or 16 (Nx = 196) at once.
_CELLS_PER_CHUNK = 8192


@dataclass(frozen=True)
class VSMLConfig:
    input_size: int  # Nx; tokens carry Nx + 10 features
    seq_len: int = 100  # unused by the model (nothing is per position); kept for the interface
    hidden_size: int = 16  # of each tiny LSTM
    message_size: int = 8
    micro_ticks: int = 2


class _Tick(torch.autograd.Function):
    """One micro-tick of every cell at once: gates = pre + w @ hid, then the LSTM update.

    Rows of the gates are (i, f, o, g), all (4h, cells). The caller scales g's rows by 2 (in pre
    and w) so one sigmoid yields all four gates, tanh(z) = 2 sigmoid(2z) - 1. The backward is
    written out because autograd's generic one spent most of its time zero-filling and
    accumulating the gradients of the gate slices. Saved per cell: hid, cell, sigmoids, tanh(c)."""

    @staticmethod
    def forward(ctx, pre, w, hid, cell):
        h = hid.shape[0]
        sig = torch.sigmoid_(torch.addmm(pre, w, hid))
        i, f, o, sg = sig.split(h)
        g = sg.mul(2).sub_(1)
        new_cell = torch.addcmul(f * cell, i, g)
        tc = torch.sigmoid_(new_cell.mul(2)).mul_(2).sub_(1)
        ctx.save_for_backward(w, hid, cell, sig, tc)
        return o * tc, new_cell

    @staticmethod
    def backward(ctx, d_hid, d_cell):
        w, hid, cell, sig, tc = ctx.saved_tensors
        h = hid.shape[0]
        i, f, o, sg = sig.split(h)
        if d_hid is None:
            d_hid = torch.zeros_like(tc)
        d_sig = torch.empty_like(sig)  # gradient w.r.t. the sigmoids, then the pre-activations
        di, df, do, dsg = d_sig.split(h)
        torch.mul(d_hid, tc, out=do)
        dc = tc.square().neg_().add_(1).mul_(o).mul_(d_hid)  # through h = o tanh(c)
        if d_cell is not None:
            dc.add_(d_cell)
        torch.mul(dc, sg.mul(2).sub_(1), out=di)
        torch.mul(dc, cell, out=df)
        torch.mul(dc, i, out=dsg).mul_(2)  # g = 2 sg - 1
        d_gates = d_sig.mul_(sig).mul_(torch.rsub(sig, 1))
        d_w = d_gates @ hid.T if ctx.needs_input_grad[1] else None
        d_prev_hid = w.T @ d_gates if ctx.needs_input_grad[2] else None
        d_prev_cell = dc.mul_(f) if ctx.needs_input_grad[3] else None
        return d_gates, d_w, d_prev_hid, d_prev_cell


class VSML(nn.Module):
    def __init__(self, cfg: VSMLConfig):
        super().__init__()
        self.cfg = cfg
        h, m = cfg.hidden_size, cfg.message_size
        self.side = m + 1  # per side of a cell: one message (m) plus one scalar (x_i or y_j)
        # Haiku's LSTM: one Linear on concat(input, hidden), input = the two sides.
        self.lstm = nn.Linear(2 * self.side + h, 4 * h)
        self.fwd_messenger = nn.Linear(h, m)  # cell -> output unit (channel 0: the logit)
        self.bwd_messenger = nn.Linear(h, m)  # cell -> input unit
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _init_linear(module)
        forget = torch.zeros(4 * h)
        forget[h : 2 * h] = 1.0  # Haiku adds 1 to the forget gate's pre-activation
        scale = torch.ones(4 * h)
        scale[3 * h :] = 2.0  # g's rows, for tanh through the sigmoid (see _Tick)
        self.register_buffer("forget_bias", forget, persistent=False)
        self.register_buffer("gate_scale", scale, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, Nx + 10) -> logits (B, L, 10); position t sees tokens 0..t only."""
        per_chunk = max(1, _CELLS_PER_CHUNK // (self.cfg.input_size * NUM_CLASSES))
        return torch.cat([self._run(part) for part in tokens.split(per_chunk)], 0)

    def _run(self, tokens: torch.Tensor) -> torch.Tensor:
        """The grid over the whole sequence for a chunk of sequences.

        Tensors are feature-major, (features, B, Nx, 10) flattened to (features, cells), so each
        gate is a contiguous slab and the recurrent matmul of all cells is one addmm per tick."""
        c = self.cfg
        B, L, _ = tokens.shape
        nx, h, m, s = c.input_size, c.hidden_size, c.message_size, self.side
        cells = B * nx * NUM_CLASSES
        w = self.lstm.weight * self.gate_scale[:, None]  # (4h, 2s + h)
        w_in, w_out, w_rec = w[:, :s], w[:, s : 2 * s], w[:, 2 * s :]
        bias = ((self.lstm.bias + self.forget_bias) * self.gate_scale)[:, None, None]
        seq = tokens.permute(1, 2, 0)  # (L, Nx + 10, B)

        hid = tokens.new_zeros(h, cells)
        cell = tokens.new_zeros(h, cells)
        sb = tokens.new_zeros(m, B, nx)  # backward messages into the input units
        sf = tokens.new_zeros(m, B, NUM_CLASSES)  # forward messages into the output units
        logits = []
        for t in range(L):
            # The input-unit and output-unit parts of the gates: (4h, B, Nx) and (4h, B, 10).
            into_in = torch.cat([sb, seq[t, None, :nx].transpose(1, 2)], 0)  # (s, B, Nx)
            into_out = torch.cat([sf, seq[t, None, nx:].transpose(1, 2)], 0)  # (s, B, 10)
            pre_in = torch.einsum("gk,kbi->gbi", w_in, into_in)
            pre_out = torch.einsum("gk,kbj->gbj", w_out, into_out) + bias
            pre = (pre_in[..., None] + pre_out[:, :, None, :]).reshape(4 * h, cells)
            for _ in range(c.micro_ticks):
                hid, cell = _Tick.apply(pre, w_rec, hid, cell)
            grid = hid.view(h, B, nx, NUM_CLASSES)
            sf = torch.einsum("mk,kbj->mbj", self.fwd_messenger.weight, grid.mean(2))
            sf = sf + self.fwd_messenger.bias[:, None, None]
            sb = torch.einsum("mk,kbi->mbi", self.bwd_messenger.weight, grid.mean(3))
            sb = sb + self.bwd_messenger.bias[:, None, None]
            logits.append(sf[0])  # (B, 10)
        return torch.stack(logits, 1)

    def num_params(self) -> int:
        """(2 (m + 1) + h + 1) x 4h for the shared LSTM plus 2 (h + 1) m for the two message
        layers: 2,512 at the defaults, whatever Nx."""
        return sum(p.numel() for p in self.parameters())

    def state_size(self) -> int:
        """Accessible state: Nx x 10 tiny LSTMs x (h + c), i.e. Nx x 10 x 2 x hidden numbers. The
        messages carried to the next step are affine maps of the means of h, so they add none."""
        c = self.cfg
        return c.input_size * NUM_CLASSES * 2 * c.hidden_size
