"""gpicl.models and gpicl.optim: the causal pre-LN Transformer with the authors' defaults and Adam
with eps_root inside the square root (docs/paper.md#objective-and-meta-training)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from gpicl.augment import NUM_CLASSES, make_tokens
from gpicl.models import MODEL_SOURCES, Transformer, TransformerConfig, build_model
from gpicl.optim import Adam

torch.set_num_threads(1)


def tiny_model(seed: int = 0, **overrides) -> Transformer:
    fields = dict(input_size=6, seq_len=12, width=16, layers=2, heads=3, key_size=5, mlp_ratio=2)
    fields.update(overrides)
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(**fields)).eval()


def random_sequence(B=3, L=12, nx=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, nx, generator=g), torch.randint(0, NUM_CLASSES, (B, L), generator=g)


# --------------------------------------------------------------------------- 6. causality
# (Perturbation causality for every model type, the Transformer included: below.)
def test_label_of_position_t_is_not_visible_at_position_t_by_gradient():
    model = tiny_model(seed=1)
    x, y = random_sequence(B=1)
    tokens = make_tokens(x, y).requires_grad_(True)
    logits = model(tokens)
    t = 5
    (grad,) = torch.autograd.grad(logits[0, t].sum(), tokens)
    assert grad[0, t + 1 :].abs().max() == 0  # no token after t (so neither y_t) reaches t
    assert grad[0, : t + 1].abs().amax(-1).min() > 0  # every earlier token does


# --------------------------------------------------------------------------- 7. model config
def test_default_config_is_authors_and_attention_width_need_not_equal_width():
    cfg = TransformerConfig(input_size=196)
    assert (cfg.width, cfg.layers, cfg.heads, cfg.key_size, cfg.mlp_ratio) == (512, 4, 8, 32, 4)
    assert cfg.seq_len == 100 and cfg.pos_init_std == 0.1
    assert cfg.heads * cfg.key_size != cfg.width  # 256 != 512: must still build and run
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    attn = model.blocks[0].attn
    assert attn.qkv.out_features == 3 * 8 * 32 and attn.out.in_features == 8 * 32
    with torch.no_grad():
        out = model(torch.randn(2, 7, 196 + NUM_CLASSES))
    assert out.shape == (2, 7, NUM_CLASSES)
    assert torch.isfinite(out).all()
    small = tiny_model()  # 3 heads x 5 = 15 != width 16
    assert small(make_tokens(*random_sequence())).shape == (3, 12, NUM_CLASSES)


def test_positional_embeddings_are_learned_with_init_std_point_one():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(input_size=8, seq_len=100, width=256, layers=1))
    names = {name for name, _ in model.named_parameters()}
    assert "pos" in names and model.pos.requires_grad
    assert model.pos.shape == (100, 256)
    # Truncated normal at +-2 std (Haiku's TruncatedNormal(0.1)): std 0.1 x 0.88 after truncation.
    std = model.pos.std().item()
    assert 0.08 < std < 0.105, std
    assert model.pos.abs().max().item() <= 0.2 + 1e-6
    assert abs(model.pos.mean().item()) < 0.005
    # Learned, not fixed: the loss reaches them.
    out = model(torch.randn(2, 10, 18))
    out.sum().backward()
    assert model.pos.grad[:10].abs().sum() > 0 and model.pos.grad[10:].abs().sum() == 0


def test_pre_layernorm_blocks_and_a_final_layernorm():
    model = tiny_model(layers=1)
    assert isinstance(model.ln_final, nn.LayerNorm)
    block = model.blocks[0]
    seen = {}

    def record(name):
        def hook(module, inputs, output):  # returns None: observes without replacing the output
            seen[name] = (inputs[0], output)

        return hook

    block.ln_attn.register_forward_hook(record("ln"))
    model.head.register_forward_hook(record("head"))
    block.register_forward_hook(record("block"))
    with torch.no_grad():
        model(make_tokens(*random_sequence()) * 20)
    block_in, block_out = seen["block"]
    assert torch.equal(seen["ln"][0], block_in)  # LayerNorm is applied first, inside the branch
    # The residual stream leaving a block is not normalised (post-LN would give std 1 per token).
    assert (block_out.std(-1) > 2).all()
    # The head reads the final LayerNorm's output: zero mean, unit variance per token.
    head_in = seen["head"][0]
    assert torch.allclose(head_in.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(head_in.var(-1, unbiased=False), torch.ones(()), atol=1e-3)


# The authors' Haiku initialisation (learned_optimization research/data_driven transformer.py
# and models.py): attention and MLP weights VarianceScaling(2 / layers) (fan-in, truncated
# normal, std sqrt(2 / (layers x fan_in)) after truncation); embedding and head hk.Linear's
# default (unit normal truncated at +-2, times 1/sqrt(fan_in): std 0.8796/sqrt(fan_in));
# positions TruncatedNormal(0.1); zero biases; LayerNorm scale 1, offset 0.
TRUNC = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _check_truncated_normal(name, w, std):
    """Empirical std within a tolerance of `std` (a truncated normal's std), zero mean, and no
    value beyond the truncation at 2 x std / TRUNC."""
    n = w.numel()
    tol = max(0.02, 5 / math.sqrt(2 * n))  # relative; the std estimate's sd is ~1/sqrt(2n)
    assert w.std().item() == pytest.approx(std, rel=tol), name
    assert abs(w.mean().item()) < 5 * std / math.sqrt(n), name
    bound = 2 * std / TRUNC
    assert w.abs().max().item() <= bound * (1 + 1e-6), name
    assert w.abs().max().item() > 0.9 * bound, name  # truncated there, not narrower


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_init_scales_follow_the_authors_haiku_code(layers):
    cfg = TransformerConfig(
        input_size=300, seq_len=100, width=256, layers=layers, heads=4, key_size=48
    )
    torch.manual_seed(layers)
    model = Transformer(cfg)

    def vs(fan_in):  # VarianceScaling(2 / layers), fan-in mode, after truncation
        return math.sqrt(2 / layers / fan_in)

    attn_width = cfg.heads * cfg.key_size
    for i, block in enumerate(model.blocks):
        q, k, v = block.attn.qkv.weight.detach().view(3, attn_width, cfg.width)
        for part, w in zip("qkv", (q, k, v), strict=True):  # 3 Haiku Linears, fan-in width
            _check_truncated_normal(f"block {i} {part}", w, vs(cfg.width))
        _check_truncated_normal(f"block {i} out", block.attn.out.weight, vs(attn_width))
        _check_truncated_normal(f"block {i} mlp in", block.mlp[0].weight, vs(cfg.width))
        hidden = cfg.mlp_ratio * cfg.width
        _check_truncated_normal(f"block {i} mlp out", block.mlp[2].weight, vs(hidden))
        for ln in (block.ln_attn, block.ln_mlp):
            assert torch.equal(ln.weight, torch.ones_like(ln.weight))
            assert torch.equal(ln.bias, torch.zeros_like(ln.bias)) and ln.eps == 1e-5
    fan_in = cfg.input_size + NUM_CLASSES
    _check_truncated_normal("embed", model.embed.weight, TRUNC / math.sqrt(fan_in))
    _check_truncated_normal("head", model.head.weight, TRUNC / math.sqrt(cfg.width))
    _check_truncated_normal("pos", model.pos, TRUNC * 0.1)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name  # LayerNorm offsets included
    assert torch.equal(model.ln_final.weight, torch.ones_like(model.ln_final.weight))


def test_mlp_gelu_is_the_tanh_approximation():
    """jax.nn.gelu defaults to approximate=True, which the authors' DenseBlock calls."""
    gelu = tiny_model().blocks[0].mlp[1]
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    tanh_form = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert torch.allclose(gelu(x), tanh_form, atol=1e-12, rtol=0)
    exact = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    assert (gelu(x) - exact).abs().max() > 1e-4  # the erf form would fail the first check


def test_cpu_autocast_runs_projections_in_bf16_and_attention_in_fp32(monkeypatch):
    """train's `amp_cpu`: bf16 matmuls, but CPU flash attention stays fp32 (faster there)."""
    model = tiny_model()
    tokens = make_tokens(*random_sequence())
    with torch.no_grad():
        exact = model(tokens)
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(q, k, v, **kwargs):
        out = sdpa(q, k, v, **kwargs)  # under an active CPU autocast this would come out bf16
        seen.append((q.dtype, k.dtype, v.dtype, out.dtype))
        return out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    qkv_out = []
    model.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: qkv_out.append(o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(tokens)
    assert qkv_out == [torch.bfloat16]
    assert seen == [(torch.float32,) * 4] * model.cfg.layers
    assert not torch.equal(mixed.float(), exact)  # bf16 really was used
    assert torch.allclose(mixed.float(), exact, atol=0.1)  # and is close to fp32
    with torch.no_grad():  # without autocast nothing is cast (the cpu tier's fp32 path)
        model(tokens)
    assert seen[-1] == (torch.float32,) * 4 and len(seen) == 2 * model.cfg.layers


def test_build_model_passes_config_and_rejects_unknown_type():
    cfg = {"type": "transformer", "width": 8, "layers": 1, "heads": 2, "key_size": 4}
    model = build_model(cfg, input_size=5, seq_len=9)
    assert model.cfg.input_size == 5 and model.cfg.seq_len == 9 and model.cfg.width == 8
    assert model.embed.in_features == 5 + NUM_CLASSES
    assert model.state_size() == 2 * 1 * 2 * 4 * 9
    with pytest.raises(ValueError, match="unknown model type"):
        build_model({"type": "gru"}, input_size=5, seq_len=9)


# Small configurations of every model type behind build_model (gpicl.models).
TINY_CONFIGS = {
    "transformer": {"width": 16, "layers": 2, "heads": 2, "key_size": 4, "mlp_ratio": 2},
    "lstm": {"hidden_size": 8},
    "outer_lstm": {"hidden_size": 4, "heads": 2},
    "sgd": {"hidden_size": 8, "inner_lr": 0.1},
    "maml": {"hidden_size": 8, "inner_lr": 0.1},
    "vsml": {"hidden_size": 4, "message_size": 3, "micro_ticks": 2},
}


def test_every_sequence_model_type_has_a_tiny_config_here():
    assert set(TINY_CONFIGS) | {"mlp"} == set(MODEL_SOURCES)


@pytest.mark.parametrize("kind", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("t", [0, 6, 10])
def test_every_model_is_causal_and_uses_the_context(kind, t):
    """For every method: the prediction at t ignores x_{t+1} and y_t (carried by token t+1),
    every later prediction sees them, and earlier labels matter (it learns in context). In
    float64: at init the outer-product LSTM carries an old input only weakly (~1e-5)."""
    torch.manual_seed(0)
    model = build_model({"type": kind, **TINY_CONFIGS[kind]}, input_size=6, seq_len=12)
    model = model.double().eval()
    x, y = random_sequence(B=3, L=12, nx=6, seed=2)
    x = x.double()
    with torch.no_grad():
        base = model(make_tokens(x, y))
        assert base.shape == (3, 12, NUM_CLASSES)
        x2 = x.clone()
        x2[:, t + 1] += 3.0
        y2 = y.clone()
        y2[:, t] = (y2[:, t] + 1) % NUM_CLASSES
        for changed in (model(make_tokens(x2, y)), model(make_tokens(x, y2))):
            assert torch.allclose(changed[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-12)
            diff_later = (changed[:, t + 1 :] - base[:, t + 1 :]).abs().amax(dim=(0, 2))
            assert (diff_later > 1e-9).all(), diff_later
        if t > 1:
            y3 = y.clone()
            y3[:, : t - 1] = (y3[:, : t - 1] + 3) % NUM_CLASSES  # earlier labels only
            earlier = model(make_tokens(x, y3))
            assert (earlier[:, t] - base[:, t]).abs().amax() > 1e-5
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    assert model.state_size() > 0


# --------------------------------------------------------------------------- 8. Adam eps_root
def _first_update(eps_root: float, g: float = 1e-6, lr: float = 1e-3) -> torch.Tensor:
    p = nn.Parameter(torch.zeros(50, dtype=torch.float64))
    opt = Adam([p], lr=lr, eps=1e-8, eps_root=eps_root)
    p.grad = torch.full_like(p, g)
    opt.step()
    return -p.detach()


def test_adam_eps_root_floors_the_denominator_on_tiny_gradients():
    lr, g = 1e-3, 1e-6
    with_root = _first_update(1e-8, g, lr)
    expected = lr * g / (math.sqrt(g * g + 1e-8) + 1e-8)  # first step: m_hat = g, v_hat = g^2
    assert torch.allclose(with_root, torch.full_like(with_root, expected), rtol=1e-9, atol=0)
    assert 0.9e-5 < expected < 1.1e-5
    without_root = _first_update(0.0, g, lr)
    assert torch.allclose(without_root, torch.full_like(without_root, lr * g / (g + 1e-8)))
    assert without_root[0] > 50 * with_root[0]  # ~lr versus ~lr/100


def test_adam_matches_reference_formula_over_several_steps():
    lr, b1, b2, eps, eps_root = 1e-2, 0.9, 0.999, 1e-8, 1e-8
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(20, dtype=torch.float64, generator=g) * 10.0 ** -(s % 4) for s in range(6)]
    p = nn.Parameter(torch.randn(20, dtype=torch.float64, generator=g))
    ref = p.detach().clone()
    m, v = torch.zeros_like(ref), torch.zeros_like(ref)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, eps_root=eps_root)
    for t, grad in enumerate(grads, start=1):
        p.grad = grad.clone()
        opt.step()
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        ref = ref - lr * m_hat / (torch.sqrt(v_hat + eps_root) + eps)
        assert torch.allclose(p.detach(), ref, rtol=1e-12, atol=1e-14)


def test_adam_without_eps_root_matches_torch_adam():
    g = torch.Generator().manual_seed(1)
    init = [torch.randn(7, 3, generator=g), torch.randn(5, generator=g)]
    ours = [nn.Parameter(t.clone()) for t in init]
    theirs = [nn.Parameter(t.clone()) for t in init]
    opt_ours = Adam(ours, lr=3e-3, betas=(0.9, 0.99), eps=1e-8, eps_root=0.0)
    opt_theirs = torch.optim.Adam(theirs, lr=3e-3, betas=(0.9, 0.99), eps=1e-8)
    for _ in range(8):
        grads = [torch.randn(t.shape, generator=g) for t in init]
        for p, q, grad in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_theirs.step()
    for p, q in zip(ours, theirs, strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7)
        assert not torch.equal(p.detach(), init[0] if p.shape == init[0].shape else init[1])


def test_adam_skips_parameters_without_gradients_and_rejects_bad_settings():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = Adam([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3)) and (a.detach() < 1).all()
    for bad in (dict(lr=0.0), dict(eps=-1.0), dict(eps_root=-1e-8)):
        with pytest.raises(ValueError):
            Adam([a], **bad)
