"""gpicl.models.online: the SGD and MAML baselines (docs/paper.md#sgd-and-maml): a per-sequence
1-hidden-layer network trained online with Adam, predicting before each update; MAML meta-learns
its initial weights through the unrolled inner loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES, make_tokens
from gpicl.models.online import OnlineLearner, OnlineLearnerConfig

torch.set_num_threads(1)


def tiny(meta: bool = False, seed: int = 0, dtype=torch.float32, **overrides) -> OnlineLearner:
    fields = dict(input_size=6, seq_len=12, hidden_size=16, inner_lr=0.05, meta_learned_init=meta)
    fields.update(overrides)
    torch.manual_seed(seed)
    return OnlineLearner(OnlineLearnerConfig(**fields)).to(dtype)


def random_sequence(B=3, L=12, nx=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, nx, generator=g, dtype=dtype)
    return x, torch.randint(0, NUM_CLASSES, (B, L), generator=g)


def reference_net(model: OnlineLearner, weights: torch.Tensor) -> nn.Sequential:
    """A plain network holding one row of the model's (B, P) initial weights."""
    nx, h = model.cfg.input_size, model.cfg.hidden_size
    net = nn.Sequential(nn.Linear(nx, h), nn.ReLU(), nn.Linear(h, NUM_CLASSES)).to(weights.dtype)
    w1, b1, w2, b2 = weights.detach().split([h * nx, h, NUM_CLASSES * h, NUM_CLASSES])
    with torch.no_grad():
        net[0].weight.copy_(w1.view(h, nx))
        net[0].bias.copy_(b1)
        net[2].weight.copy_(w2.view(NUM_CLASSES, h))
        net[2].bias.copy_(b2)
    return net


# --------------------------------------------------------------------------- predict, then update
@pytest.mark.parametrize("meta", [False, True])
def test_position_zero_is_the_initial_network_and_y_t_first_acts_at_t_plus_one(meta):
    model = tiny(meta)
    x, y = random_sequence()
    with torch.no_grad():
        logits = model(make_tokens(x, y))
        init = model.initial_weights(x.shape[0])
        for b in range(x.shape[0]):
            expected = reference_net(model, init[b])(x[b, 0])
            assert torch.allclose(logits[b, 0], expected, rtol=0, atol=1e-6)
        # Later positions have been trained: they are not the initial network's outputs.
        untrained = torch.stack([reference_net(model, init[b])(x[b]) for b in range(3)])
        assert (logits[:, 1:] - untrained[:, 1:]).abs().amax(-1).min() > 1e-4
        t = 4
        y2 = y.clone()
        y2[:, t] = (y2[:, t] + 1) % NUM_CLASSES
        changed = model(make_tokens(x, y2))
        assert torch.equal(changed[:, : t + 1], logits[:, : t + 1])  # not visible before/at t
        assert (changed[:, t + 1] - logits[:, t + 1]).abs().amax(-1).min() > 1e-4  # used next


@pytest.mark.parametrize("meta", [False, True])
@pytest.mark.parametrize("lr", [1e-3, 0.05])
def test_matches_a_plain_network_trained_example_by_example_with_torch_adam(meta, lr):
    """Per sequence: predict x_t, then one torch.optim.Adam step on cross-entropy(x_t, y_t)."""
    dtype = torch.float64
    model = tiny(meta, dtype=dtype, inner_lr=lr, seq_len=25)
    x, y = random_sequence(B=3, L=25, dtype=dtype, seed=1)
    with torch.no_grad():
        logits = model(make_tokens(x, y))
        init = model.initial_weights(3, dtype=dtype)
    assert logits.dtype == dtype
    for b in range(3):
        net = reference_net(model, init[b])
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        expected = []
        for t in range(25):
            out = net(x[b, t])
            expected.append(out.detach())
            opt.zero_grad()
            F.cross_entropy(out, y[b, t]).backward()
            opt.step()
        expected = torch.stack(expected)
        assert torch.allclose(logits[b], expected, rtol=1e-9, atol=1e-10), (
            (logits[b] - expected).abs().max()
        )
        # The comparison is not vacuous: training moved the outputs far from the start.
        drift = (expected[1:] - reference_net(model, init[b])(x[b, 1:])).abs().max()
        assert drift > (1e-3 if lr == 1e-3 else 1e-1), drift


def test_sgd_learns_within_a_sequence_on_repeated_inputs():
    """Ten fixed inputs, one per class (the Random dataset's structure): by the end of 100
    examples the online learner with the paper's settings is nearly always right."""
    torch.manual_seed(0)
    B, L, nx = 32, 100, 20
    protos = torch.randn(B, NUM_CLASSES, nx)
    y = torch.randint(0, NUM_CLASSES, (B, L))
    x = protos[torch.arange(B)[:, None], y]
    model = OnlineLearner(OnlineLearnerConfig(input_size=nx))
    with torch.no_grad():
        acc = (model(make_tokens(x, y)).argmax(-1) == y).float()
    assert acc[:, :5].mean() < 0.3
    assert acc[:, -20:].mean() > 0.9


# --------------------------------------------------------------------------- MAML
def _meta_loss(model, tokens, y):
    logits = model(tokens)
    return F.cross_entropy(logits.reshape(-1, NUM_CLASSES), y.reshape(-1))


def test_maml_meta_gradient_is_exact_second_order_and_differs_from_first_order():
    dtype = torch.float64
    model = tiny(True, dtype=dtype, inner_lr=0.1, seq_len=8)
    x, y = random_sequence(B=2, L=8, dtype=dtype, seed=2)
    tokens = make_tokens(x, y)
    params = list(model.parameters())
    grads = torch.autograd.grad(_meta_loss(model, tokens, y), params)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)  # W1, b1, W2, b2
    # Directional finite difference of the meta-loss through the whole unroll.
    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in params]
    eps = 1e-6
    with torch.no_grad():
        losses = []
        for sign in (1, -1):
            for p, d in zip(params, direction, strict=True):
                p.add_(sign * eps * d)
            losses.append(_meta_loss(model, tokens, y).item())
            for p, d in zip(params, direction, strict=True):
                p.sub_(sign * eps * d)
    numeric = (losses[0] - losses[1]) / (2 * eps)
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).item()
    assert math.isclose(analytic, numeric, rel_tol=1e-5), (analytic, numeric)
    # First-order MAML (inner gradients detached) gets a different, wrong-by-FD gradient.
    fo = tiny(True, dtype=dtype, inner_lr=0.1, seq_len=8, first_order=True)
    fo.load_state_dict(model.state_dict())
    fo_grads = torch.autograd.grad(_meta_loss(fo, tokens, y), list(fo.parameters()))
    fo_analytic = sum((g * d).sum() for g, d in zip(fo_grads, direction, strict=True)).item()
    assert not math.isclose(fo_analytic, numeric, rel_tol=1e-3), (fo_analytic, numeric)
    diff = torch.cat([(a - b).flatten() for a, b in zip(grads, fo_grads, strict=True)]).norm()
    assert diff > 1e-2 * torch.cat([g.flatten() for g in grads]).norm()


def test_maml_meta_gradient_stays_finite_with_hidden_units_that_never_fire():
    """Dead units have m = v = 0 for the whole sequence; d sqrt(v) at 0 must not give nan."""
    model = tiny(True, inner_lr=1e-3)
    with torch.no_grad():
        model.fc1.bias[:5] = -100.0
    x, y = random_sequence()
    loss = _meta_loss(model, make_tokens(x, y), y)
    loss.backward()
    for p in model.parameters():
        assert torch.isfinite(p.grad).all()
    assert model.fc1.weight.grad[:5].abs().max() == 0 and model.fc1.weight.grad[5:].abs().max() > 0


def test_maml_meta_training_lowers_the_loss_on_a_fixed_batch():
    model = tiny(True, inner_lr=1e-3)
    x, _ = random_sequence(B=8, seed=3)
    teacher = torch.randn(6, NUM_CLASSES, generator=torch.Generator().manual_seed(4))
    y = (x @ teacher).argmax(-1)  # one task shared by all sequences: the init can learn it
    tokens = make_tokens(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = _meta_loss(model, tokens, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_checkpointing_over_time_chunks_gives_the_same_outputs_and_meta_gradient():
    plain = tiny(True, dtype=torch.float64)
    chunked = tiny(True, dtype=torch.float64, checkpoint_every=5)  # chunks of 5, 5, 2
    chunked.load_state_dict(plain.state_dict())
    x, y = random_sequence(dtype=torch.float64)
    tokens = make_tokens(x, y)
    assert torch.allclose(plain(tokens), chunked(tokens), rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(_meta_loss(plain, tokens, y), [*plain.parameters()])
    gb = torch.autograd.grad(_meta_loss(chunked, tokens, y), [*chunked.parameters()])
    for a, b in zip(ga, gb, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("meta", [False, True])
def test_inner_loop_stays_fp32_under_bf16_autocast(meta):
    model = tiny(meta)
    x, y = random_sequence()
    tokens = make_tokens(x, y)
    with torch.no_grad():
        plain = model(tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = model(tokens)
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)


# --------------------------------------------------------------------------- SGD
def test_sgd_has_nothing_to_meta_train_and_is_deterministic_per_init_seed():
    model = tiny(False)
    assert list(model.parameters()) == [] and model.num_params() == 0
    x, y = random_sequence()
    tokens = make_tokens(x, y)
    out = model(tokens)  # grad enabled, but nothing requires grad: no graph is built
    assert not out.requires_grad
    assert torch.equal(out, model(tokens))
    assert torch.equal(out, tiny(False, seed=123)(tokens))  # torch's global seed plays no part
    other = tiny(False, init_seed=1)(tokens)
    assert (other - out).abs().amax(-1).min() > 1e-4


def test_sgd_draws_different_haiku_style_initial_weights_per_sequence():
    model = OnlineLearner(OnlineLearnerConfig(input_size=49))
    x, y = random_sequence(B=1, L=10, nx=49)
    tokens = make_tokens(x, y).expand(4, -1, -1)  # the same sequence four times
    with torch.no_grad():
        out = model(tokens)
    for i in range(1, 4):
        assert (out[i] - out[0]).abs().amax(-1).min() > 1e-4
    w = model.initial_weights(64)
    nx, h = 49, 128
    w1, b1, w2, b2 = w.split([h * nx, h, NUM_CLASSES * h, NUM_CLASSES], dim=1)
    assert torch.equal(w, model.initial_weights(64))
    assert not torch.equal(w1[0], w1[1])
    assert b1.abs().max() == 0 and b2.abs().max() == 0
    for weights, fan_in in ((w1, nx), (w2, h)):
        std = 1 / math.sqrt(fan_in)  # truncated at +-2 std: std x 0.88 after truncation
        assert 0.85 * std < weights.std().item() < 0.91 * std
        assert weights.abs().max().item() <= 2 * std + 1e-6


def test_sizes_and_config_defaults():
    cfg = OnlineLearnerConfig(input_size=49)
    assert (cfg.seq_len, cfg.hidden_size, cfg.inner_lr) == (100, 128, 1e-3)
    assert not cfg.meta_learned_init and cfg.init_seed == 0
    p = 128 * 50 + 10 * 129
    assert OnlineLearner(cfg).inner_size() == p
    assert OnlineLearner(cfg).state_size() == 3 * p  # weights + Adam's two moments
    maml = OnlineLearner(OnlineLearnerConfig(input_size=49, meta_learned_init=True))
    assert maml.num_params() == p and maml.state_size() == 3 * p
    with pytest.raises(ValueError):
        OnlineLearner(OnlineLearnerConfig(input_size=4, checkpoint_every=-1))


# --------------------------------------------------------------------------- causality
# (Perturbation causality for every model type: tests/test_model.py.)
@pytest.mark.parametrize("meta", [False, True])
def test_label_of_position_t_is_not_visible_at_position_t_by_gradient(meta):
    model = tiny(meta, seed=1)
    x, y = random_sequence(B=1)
    tokens = make_tokens(x, y).requires_grad_(True)
    logits = model(tokens)
    t = 5
    (grad,) = torch.autograd.grad(logits[0, t].sum(), tokens)
    assert grad[0, t + 1 :].abs().max() == 0  # no token after t (so neither y_t) reaches t
    assert grad[0, : t + 1].abs().amax(-1).min() > 0  # every earlier token does
    assert grad[0, 0, 6:].abs().max() == 0  # token 0's label slot is empty and unused
