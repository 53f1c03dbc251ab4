"""gpicl.models.vsml: VSML, a grid of tiny shared LSTMs (docs/paper.md#vsml), checked against
a literal per-cell transcription of the authors' VSMLLayer, for causality, sharing, symmetries
and trainability."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpicl.augment import NUM_CLASSES, make_tokens
from gpicl.models import vsml as vsml_module
from gpicl.models.vsml import VSML, VSMLConfig

torch.set_num_threads(1)


def tiny_model(seed: int = 0, **overrides) -> VSML:
    fields = dict(input_size=4, seq_len=8, hidden_size=5, message_size=3, micro_ticks=2)
    fields.update(overrides)
    torch.manual_seed(seed)
    return VSML(VSMLConfig(**fields))


def random_sequence(B=3, L=8, nx=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, L, nx, generator=g), torch.randint(0, NUM_CLASSES, (B, L), generator=g)


def reference_logits(model: VSML, tokens: torch.Tensor) -> torch.Tensor:
    """The authors' VSMLLayer (self-messaging on), written cell by cell with Haiku's LSTM: cell
    (i, j) reads concat(bwd message of input i, x_i, fwd message of output j, y_j), ticks
    `micro_ticks` times on it; messages are the means of Linear(h) over j (backward) and over i
    (forward); logit j is channel 0 of output j's forward message."""
    c = model.cfg
    nx, h, m = c.input_size, c.hidden_size, c.message_size
    W, b = model.lstm.weight, model.lstm.bias
    # Our gate rows are (i, f, o, g); Haiku splits (i, g, f, o).
    i_, f_, o_, g_ = (slice(k * h, (k + 1) * h) for k in range(4))
    W, b = torch.cat([W[i_], W[g_], W[f_], W[o_]]), torch.cat([b[i_], b[g_], b[f_], b[o_]])

    def hk_lstm(inp, hid, cell):
        gi, gg, gf, go = (W @ torch.cat([inp, hid]) + b).split(h)
        cell = torch.sigmoid(gf + 1) * cell + torch.sigmoid(gi) * torch.tanh(gg)
        return torch.sigmoid(go) * torch.tanh(cell), cell

    out = []
    for seq in tokens:
        hid = [[torch.zeros(h) for _ in range(NUM_CLASSES)] for _ in range(nx)]
        cell = [[torch.zeros(h) for _ in range(NUM_CLASSES)] for _ in range(nx)]
        self_fwd, self_bwd = torch.zeros(NUM_CLASSES, m), torch.zeros(nx, m)
        row = []
        for token in seq:
            fwd_in = torch.cat([self_bwd, token[:nx, None]], -1)  # into input unit i
            bwd_in = torch.cat([self_fwd, token[nx:, None]], -1)  # into output unit j
            for i in range(nx):
                for j in range(NUM_CLASSES):
                    for _ in range(c.micro_ticks):
                        inp = torch.cat([fwd_in[i], bwd_in[j]])
                        hid[i][j], cell[i][j] = hk_lstm(inp, hid[i][j], cell[i][j])
            grid = torch.stack([torch.stack(r) for r in hid])  # (nx, 10, h)
            self_fwd = model.fwd_messenger(grid).mean(0)  # (10, m)
            self_bwd = model.bwd_messenger(grid).mean(1)  # (nx, m)
            row.append(self_fwd[:, 0])
        out.append(torch.stack(row))
    return torch.stack(out)


# --------------------------------------------------------------------------- mechanics
def test_matches_a_cell_by_cell_transcription_of_the_authors_layer_values_and_gradients():
    model = tiny_model(seed=3).double()
    with torch.no_grad():  # larger weights than at init, so every gate and message matters
        for p in model.parameters():
            p.mul_(2.5)
    x, y = random_sequence(B=2, L=5)
    tokens = make_tokens(x, y).double()
    ours, ref = model(tokens), reference_logits(model, tokens)
    assert ours.shape == (2, 5, NUM_CLASSES)
    assert ref[:, 1:].std() > 0.05  # the reference is not degenerate
    assert torch.allclose(ours, ref, rtol=0, atol=1e-9)
    # The hand-written backward of a tick against autograd through the transcription.
    weights = torch.randn(
        ours.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    params = list(model.parameters())
    ours_grad = torch.autograd.grad((ours * weights).sum(), params)
    ref_grad = torch.autograd.grad((ref * weights).sum(), params)
    for a, r in zip(ours_grad, ref_grad, strict=True):
        assert r.abs().max() > 0
        assert torch.allclose(a, r, rtol=1e-7, atol=1e-10)


def test_running_the_batch_in_chunks_changes_nothing(monkeypatch):
    model = tiny_model(seed=4)
    tokens = make_tokens(*random_sequence(B=5))
    whole = model(tokens)
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), model.lstm.weight)
    monkeypatch.setattr(vsml_module, "_CELLS_PER_CHUNK", 2 * 4 * NUM_CLASSES)  # 2 sequences
    chunked = model(tokens)
    (grad_chunked,) = torch.autograd.grad(chunked.square().sum(), model.lstm.weight)
    assert torch.allclose(chunked, whole, rtol=0, atol=1e-6)
    assert torch.allclose(grad_chunked, grad_whole, rtol=1e-5, atol=1e-7)


def test_default_config_is_the_papers_and_parameters_are_shared():
    cfg = VSMLConfig(input_size=196)
    assert (cfg.hidden_size, cfg.message_size, cfg.micro_ticks, cfg.seq_len) == (16, 8, 2, 100)
    counts = set()
    for nx in (1, 49, 196):
        torch.manual_seed(0)
        model = VSML(VSMLConfig(input_size=nx))
        counts.add(model.num_params())
    # One LSTM on (2 x (8 + 1) inputs + 16 hidden) -> 4 x 16 gates, two Linear(16 -> 8): no
    # parameter depends on the grid's size.
    assert counts == {(2 * 9 + 16 + 1) * 64 + 2 * (16 + 1) * 8} == {2512}


def test_state_size_is_two_hidden_vectors_per_cell_of_the_grid():
    assert VSML(VSMLConfig(input_size=49)).state_size() == 49 * 10 * 2 * 16 == 15680
    assert VSML(VSMLConfig(input_size=196, hidden_size=4)).state_size() == 196 * 10 * 2 * 4
    # The state does grow with the grid while the parameters do not.
    small, big = tiny_model(input_size=2), tiny_model(input_size=8)
    assert big.state_size() == 4 * small.state_size() and big.num_params() == small.num_params()


# --------------------------------------------------------------------------- causality
# (Perturbation causality for every model type: tests/test_model.py.)
def test_label_of_position_t_is_not_visible_at_position_t_by_gradient():
    model = tiny_model(seed=1)
    x, y = random_sequence(B=1)
    tokens = make_tokens(x, y).requires_grad_(True)
    logits = model(tokens)
    t = 4
    (grad,) = torch.autograd.grad(logits[0, t, 2], tokens)
    assert grad[0, t + 1 :].abs().max() == 0  # no token after t (so neither y_t) reaches t
    assert grad[0, : t + 1, :4].abs().amin() > 0  # every input feature up to t does
    assert grad[0, :t, 4:].abs().amin() > 0  # every label slot before token t does
    # At token t, only class 2's own feedback reaches logit 2 (through the cells (i, 2)).
    assert grad[0, t, 4 + 2] != 0 and grad[0, t, 4:].count_nonzero() == 1


# --------------------------------------------------------------------------- symmetries
def test_invariant_to_permuting_input_units_and_equivariant_to_permuting_classes():
    """Every cell runs the same LSTM and messages are means, so renaming the input features
    changes nothing, and renaming the classes in the feedback renames the logits alike."""
    model = tiny_model(seed=2, input_size=6)
    x, y = random_sequence(nx=6, seed=4)
    tokens = make_tokens(x, y)
    g = torch.Generator().manual_seed(5)
    perm_in, perm_cls = torch.randperm(6, generator=g), torch.randperm(NUM_CLASSES, generator=g)
    with torch.no_grad():
        base = model(tokens)
        shuffled_inputs = model(torch.cat([tokens[..., perm_in], tokens[..., 6:]], -1))
        shuffled_classes = model(torch.cat([tokens[..., :6], tokens[..., 6:][..., perm_cls]], -1))
    assert torch.allclose(shuffled_inputs, base, rtol=0, atol=1e-5)
    assert torch.allclose(shuffled_classes, base[..., perm_cls], rtol=0, atol=1e-5)
    assert not torch.allclose(base[..., perm_cls], base, atol=1e-3)  # the check has teeth
    # Before any label is seen, nothing tells the classes apart: a uniform first prediction.
    assert torch.allclose(base[:, 0], base[:, 0, :1].expand(-1, NUM_CLASSES), atol=1e-6)


# --------------------------------------------------------------------------- training
def test_loss_falls_on_a_fixed_batch_in_a_few_dozen_adam_steps():
    """Sequences whose label never changes: solvable only by reading the fed-back label."""
    model = tiny_model(seed=0, hidden_size=8, message_size=4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, 4, generator=g)
    y = torch.randint(0, NUM_CLASSES, (16, 1), generator=g).expand(16, 8)
    tokens = make_tokens(x, y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(25):
        loss = F.cross_entropy(model(tokens)[:, 1:].reshape(-1, NUM_CLASSES), y[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert abs(losses[0] - torch.log(torch.tensor(10.0)).item()) < 0.25  # near chance at init
    assert losses[-1] < 0.2 * losses[0], losses
