"""gpicl.models.lstm and gpicl.models.outer_lstm: the recurrent meta-learners of
docs/paper.md#models (causal, the authors' gate mechanics, state and parameter counts,
trainable)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES, make_tokens
from gpicl.models.lstm import LSTM, LSTMConfig
from gpicl.models.outer_lstm import OuterProductLSTM, OuterProductLSTMConfig

torch.set_num_threads(1)


def tiny(kind: str, seed: int = 0, nx: int = 6, **overrides):
    torch.manual_seed(seed)
    if kind == "lstm":
        return LSTM(LSTMConfig(input_size=nx, **{"hidden_size": 12, **overrides}))
    fields = {"hidden_size": 5, "heads": 3, **overrides}
    return OuterProductLSTM(OuterProductLSTMConfig(input_size=nx, **fields))


def random_sequence(B=3, L=12, nx=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, nx, generator=g), torch.randint(0, NUM_CLASSES, (B, L), generator=g)


KINDS = ["lstm", "outer"]


# --------------------------------------------------------------------------- causality, shapes
# (Perturbation causality for every model type: tests/test_model.py.)
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_position_t_from_earlier_tokens_only(kind):
    model = tiny(kind, seed=1)
    x, y = random_sequence(B=1)
    tokens = make_tokens(x, y).requires_grad_(True)
    logits = model(tokens)
    t = 5
    (grad,) = torch.autograd.grad(logits[0, t].sum(), tokens)
    assert grad[0, t + 1 :].abs().max() == 0
    assert grad[0, : t + 1].abs().amax(-1).min() > 0  # the state reaches back to token 0


@pytest.mark.parametrize("kind", KINDS)
def test_output_shape_and_batch_independence(kind):
    model = tiny(kind)
    x, y = random_sequence(B=4, L=9)
    tokens = make_tokens(x, y)
    with torch.no_grad():
        out = model(tokens)
        alone = model(tokens[2:3])
    assert out.shape == (4, 9, NUM_CLASSES) and torch.isfinite(out).all()
    assert torch.allclose(out[2:3], alone, rtol=0, atol=1e-6)  # sequences never mix


# --------------------------------------------------------------------------- counts
@pytest.mark.parametrize("kind", KINDS)
def test_num_params_counts_every_parameter(kind):
    model = tiny(kind)
    assert model.num_params() == sum(p.numel() for p in model.parameters())


def test_lstm_sizes_and_state_size():
    nx, h = 49, 32
    model = tiny("lstm", nx=nx, hidden_size=h)
    assert model.state_size() == 2 * h  # hidden + cell vectors
    assert model.state_size() == sum(s.numel() for s in model.initial_state(1))
    mlp = (nx + 10) * h + h + h * h + h
    lstm = 4 * h * (h + h) + 2 * 4 * h  # torch keeps two bias vectors
    assert model.num_params() == mlp + lstm + h * NUM_CLASSES + NUM_CLASSES
    assert model.cfg.hidden_size == h and model.cfg.seq_len == 100


def test_outer_lstm_sizes_and_state_size():
    nx, h, heads = 49, 16, 4
    model = tiny("outer", nx=nx, hidden_size=h, heads=heads)
    assert model.state_size() == heads * h * h + heads * h == 1088
    assert model.state_size() == sum(s.numel() for s in model.initial_state(1))
    mlp = (nx + 10) * h + h + h * h + h
    gates = (h + heads * h) * heads * 8 * h + heads * 8 * h
    head = heads * h * NUM_CLASSES + NUM_CLASSES
    assert model.num_params() == mlp + gates + 1 + head  # + the shared key scale
    cfg = OuterProductLSTMConfig(input_size=3)
    assert (cfg.hidden_size, cfg.heads, cfg.seq_len) == (16, 4, 100)


# --------------------------------------------------------------------------- init and mechanics
def test_lstm_init_haiku_style_with_forget_bias_one():
    h = 64
    model = tiny("lstm", hidden_size=h)
    lstm = model.lstm
    assert torch.equal(lstm.bias_ih_l0[h : 2 * h], torch.ones(h))
    assert lstm.bias_ih_l0[:h].abs().max() == 0 and lstm.bias_ih_l0[2 * h :].abs().max() == 0
    assert lstm.bias_hh_l0.abs().max() == 0
    # One truncated normal over concat(x, h): std 1/sqrt(2h), cut at 2 std (0.88 std after).
    w = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1)
    std = 1 / math.sqrt(2 * h)
    assert w.abs().max() <= 2 * std + 1e-6
    assert 0.83 * std < w.std() < 0.93 * std
    for layer in (model.mlp[0], model.mlp[2], model.head):
        assert layer.bias.abs().max() == 0
        assert layer.weight.abs().max() <= 2 / math.sqrt(layer.in_features) + 1e-6


def test_lstm_forget_bias_sits_in_the_forget_gate():
    """With recurrent weights off, input gate open, output gate open and a constant candidate g,
    the cell follows c_t = sigmoid(1) c_{t-1} + tanh(g) and the output reads tanh(c_t)."""
    h = 4
    model = tiny("lstm", hidden_size=h)
    lstm = model.lstm
    with torch.no_grad():
        lstm.weight_ih_l0.zero_()
        lstm.weight_hh_l0.zero_()
        lstm.bias_ih_l0[:h] = 30.0  # input gate ~1
        lstm.bias_ih_l0[2 * h : 3 * h] = 0.5  # candidate
        lstm.bias_ih_l0[3 * h :] = 30.0  # output gate ~1
        out, _ = lstm(torch.zeros(1, 6, h))
    c, expected = 0.0, []
    for _ in range(6):
        c = torch.sigmoid(torch.tensor(1.0)) * c + math.tanh(0.5)
        expected.append(torch.tanh(c))
    assert torch.allclose(out[0, :, 0], torch.stack(expected), atol=1e-5)


def _outer_reference(model: OuterProductLSTM, tokens: torch.Tensor) -> torch.Tensor:
    """The authors' OuterLSTM written out again: one Linear over concat(z, hidden), per head
    k1, k2 (3 x h each), q, o; gates outer(tanh(k1) softplus(s), tanh(k2)); read q^T C."""
    h, H = model.cfg.hidden_size, model.cfg.heads
    B, L, _ = tokens.shape
    z = model.mlp(tokens)
    hidden = torch.zeros(B, H * h)
    cell = torch.zeros(B, H, h, h)
    outs = []
    for t in range(L):
        gated = model.gates(torch.cat([z[:, t], hidden], dim=-1)).view(B, H, 8 * h)
        k1, k2, q, o = gated.split([3 * h, 3 * h, h, h], dim=-1)
        a = torch.tanh(k1.reshape(B, H, 3, h)) * F.softplus(model.key_scale)
        b = torch.tanh(k2.reshape(B, H, 3, h))
        i, g, f = torch.einsum("bhki,bhkj->kbhij", a, b)
        cell = torch.sigmoid(f + 1) * cell + torch.sigmoid(i) * g
        read = torch.einsum("bhij,bhi->bhj", cell, q)
        hidden = (torch.sigmoid(o) * torch.tanh(read)).reshape(B, H * h)
        outs.append(model.head(hidden))
    return torch.stack(outs, dim=1)


def test_outer_lstm_matches_the_written_out_mechanics():
    model = tiny("outer", seed=3)
    with torch.no_grad():
        model.key_scale.fill_(0.7)  # the scale must enter as softplus(s), not s
        for p in model.parameters():  # larger weights, so every nonlinearity matters
            p.mul_(2.0)
    x, y = random_sequence(B=2, L=7)
    tokens = make_tokens(x, y)
    with torch.no_grad():
        ours, ref = model(tokens), _outer_reference(model, tokens)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_outer_lstm_init_and_constant_forget_bias():
    model = tiny("outer", hidden_size=4, heads=2)
    assert model.key_scale.item() == 0.0  # softplus(0) = log 2 at init
    assert model.gates.bias.abs().max() == 0
    assert model.gates.weight.abs().max() <= 2 / math.sqrt(4 + 2 * 4) + 1e-6
    # Zero pre-activations: every gate matrix is 0, so the cell decays by sigmoid(0 + 1) and
    # nothing is written.
    cell = torch.randn(3, 2, 4, 4)
    with torch.no_grad():
        hidden, new_cell = model.step(torch.zeros(3, 2 * 8 * 4), cell)
    assert torch.allclose(new_cell, torch.sigmoid(torch.tensor(1.0)) * cell)
    assert hidden.shape == (3, 2 * 4) and hidden.abs().max() == 0  # q = 0 reads nothing


# --------------------------------------------------------------------------- trainable
def _alternating_batch(g: torch.Generator, B: int = 64, L: int = 8, nx: int = 4):
    """Labels a, b, a, b, ... with fresh random a, b and noise inputs: y_t = y_{t-2}, which token t
    does not carry (it carries y_{t-1} = the other label), so only a state can predict it."""
    pair = torch.randint(0, NUM_CLASSES, (B, 2), generator=g)
    y = pair[:, torch.arange(L) % 2]
    return make_tokens(torch.randn(B, L, nx, generator=g), y), y


@pytest.mark.parametrize(
    "kind, overrides, steps, bound",
    [("lstm", {"hidden_size": 32}, 80, 0.6), ("outer", {"hidden_size": 8, "heads": 2}, 120, 1.2)],
)
def test_recurrence_learns_to_recall_the_label_two_steps_back(kind, overrides, steps, bound):
    model = tiny(kind, nx=4, **overrides)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        tokens, y = _alternating_batch(g)
        logits = model(tokens)[:, 2:]  # positions 0, 1 cannot know their label
        loss = F.cross_entropy(logits.reshape(-1, NUM_CLASSES), y[:, 2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > math.log(NUM_CLASSES) - 0.2
    # Without memory the best loss is ~log 10 = 2.3 (fresh batches: nothing to memorise).
    assert sum(losses[-5:]) / 5 < bound, losses[::10]
