"""gpicl.augment: the hashed task pool (id -> A, rho), token layout, batch sampling, curriculum
and preprocessing (docs/paper.md#task-generator, #sequences-and-tokens)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from gpicl.augment import (
    NUM_CLASSES,
    SPEC_TAG_PATTERN,
    UNLIMITED_TASKS,
    BatchSpec,
    PreprocessSpec,
    _mix32,
    _task_keys,
    apply_tasks,
    curriculum_examples,
    distinct_indices,
    draw_task_ids,
    hash_bits,
    make_tokens,
    preprocess_images,
    random_dataset_images,
    sample_training_batch,
    step_generator,
    task_permutations,
    task_projections,
)
from gpicl.cache import build_eval_set
from gpicl.evaluate import task_ids_for
from gpicl.io import load_torch

torch.set_num_threads(1)

SEED = 20221208
MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------- pure-Python hash
def ref_mix32(x: int) -> int:
    """The 32-bit finaliser written with unbounded Python ints, reduced mod 2^32 by hand."""
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


def ref_task_key(seed: int, task_id: int, stream: int) -> int:
    golden = 0x9E3779B9
    k = ref_mix32((seed & MASK32) ^ golden)
    k = ref_mix32(k ^ (task_id & MASK32))
    k = ref_mix32(k ^ ((task_id >> 32) & MASK32))
    return ref_mix32(k ^ stream)


def ref_hash_bits(seed: int, task_id: int, n: int, stream: int) -> list[int]:
    key = ref_task_key(seed, task_id, stream)
    salt = (key * 0x9E3779B9) & MASK32
    return [ref_mix32(ref_mix32(j ^ key) ^ salt) for j in range(n)]


def as_signed32(values: list[int]) -> torch.Tensor:
    return torch.tensor([v - 2**32 if v >= 2**31 else v for v in values], dtype=torch.int32)


def as_unsigned(t: torch.Tensor) -> list[int]:
    return [int(v) & MASK32 for v in t.reshape(-1).tolist()]


# --------------------------------------------------------------------------- fake training data
def one_hot_dataset(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_train = identity rows (Nx = n), so A @ x_i is column i of A: every token can be decoded
    back to (base example, task) exactly. y_train cycles through the 10 classes."""
    return torch.eye(n), torch.arange(n) % NUM_CLASSES


def decode_examples(x_part: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Indices i with x_part[..., :] == A[:, i] exactly; -1 where no column matches."""
    cols = A.T  # (Nx, Nx): row i is column i of A
    eq = (x_part[..., None, :] == cols).all(-1)  # (..., Nx)
    found = eq.any(-1)
    return torch.where(
        found, eq.to(torch.int64).argmax(-1), torch.full(found.shape, -1, dtype=torch.int64)
    )


# --------------------------------------------------------------------------- 1. projection scale
@pytest.mark.parametrize("nx", [196, 49])
def test_projection_std_is_one_over_sqrt_nx(nx):
    num_ids = max(1, 300_000 // (nx * nx))
    A = task_projections(SEED, torch.arange(num_ids), nx)
    assert A.shape == (num_ids, nx, nx)
    z = A.double().flatten()
    n = z.numel()
    std = z.std().item()
    target = 1.0 / math.sqrt(nx)
    # Standard error of a sample std is ~ std / sqrt(2n): < 0.2% here; allow 1.5%.
    assert abs(std / target - 1) < 0.015, (std, target)
    # The replications' bug (std 1/Nx) is many standard errors away.
    assert abs(std - 1.0 / nx) > 0.5 * target
    assert abs(z.mean().item()) < 5 * target / math.sqrt(n)
    # Normal shape: mass within 1 and 2 standard deviations, and a normal kurtosis of 3.
    u = z / target
    within1 = (u.abs() < 1).double().mean().item()
    within2 = (u.abs() < 2).double().mean().item()
    assert abs(within1 - 0.6827) < 0.006, within1
    assert abs(within2 - 0.9545) < 0.004, within2
    kurtosis = ((u - u.mean()) ** 4).mean().item() / u.var().item() ** 2
    assert abs(kurtosis - 3.0) < 0.1, kurtosis


def test_projection_rows_are_not_correlated():
    """Entries are independent: the Box-Muller pairing does not couple neighbouring entries."""
    nx = 49
    z = task_projections(SEED, torch.arange(60), nx).double().flatten() * math.sqrt(nx)
    for lag in (1, nx, (nx * nx) // 2):
        corr = torch.corrcoef(torch.stack([z[:-lag], z[lag:]]))[0, 1].item()
        assert abs(corr) < 0.01, (lag, corr)


# --------------------------------------------------------------------------- 2. id -> task
def test_mix32_matches_pure_python_reference_including_int32_wraparound():
    values = [0, 1, 2, 0x7FFFFFFF, 2**31, 2**31 + 12345, 0x9E3779B9, 0xDEADBEEF, MASK32, 123456789]
    got = as_unsigned(_mix32(as_signed32(values)))
    assert got == [ref_mix32(v) for v in values]
    # A finaliser that actually mixes: distinct inputs give distinct outputs here.
    assert len(set(got)) == len(values)


def test_task_keys_and_hash_bits_match_pure_python_reference():
    ids = [0, 1, 7, 2**25 - 1, 2**31, 2**40 + 3, UNLIMITED_TASKS - 1, -1, -2, -(2**33)]
    for stream in (0, 1, 3):
        keys = as_unsigned(_task_keys(SEED, torch.tensor(ids), stream))
        assert keys == [ref_task_key(SEED, i, stream) for i in ids]
    bits = hash_bits(SEED, torch.tensor(ids), 5, 0)
    assert bits.shape == (len(ids), 5)
    for row, task_id in zip(bits, ids, strict=True):
        assert as_unsigned(row) == ref_hash_bits(SEED, task_id, 5, 0)


def test_same_id_gives_same_task_regardless_of_batch_position_or_companions():
    nx = 16
    A_alone = task_projections(SEED, torch.tensor([5]), nx)[0]
    perm_alone = task_permutations(SEED, torch.tensor([5]))[0]
    for batch in ([5], [3, 5], [5, 5, 9], [-4, 0, 1, 5, 2**30], [5] * 7):
        ids = torch.tensor(batch)
        A, perm = task_projections(SEED, ids, nx), task_permutations(SEED, ids)
        for pos, task_id in enumerate(batch):
            if task_id == 5:
                assert torch.equal(A[pos], A_alone)
                assert torch.equal(perm[pos], perm_alone)
    # Calls are pure: a second call gives the same bits.
    assert torch.equal(task_projections(SEED, torch.tensor([5]), nx)[0], A_alone)


def test_different_ids_give_different_tasks_and_negative_ids_work():
    ids = torch.tensor([0, 1, 2, 3, -1, -2, -3, 2**25 - 1, 2**40, -(2**40)])
    A = task_projections(SEED, ids, 8)
    perm = task_permutations(SEED, ids)
    assert torch.isfinite(A).all()
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not torch.equal(A[i], A[j]), (ids[i], ids[j])
    # 10! permutations: ten ids should give (at least nearly) ten distinct permutations.
    assert len({tuple(p.tolist()) for p in perm}) >= 9
    # id and -id are different tasks (no abs() anywhere), and another task seed is another pool.
    assert not torch.equal(A[1], A[4])
    assert not torch.equal(task_projections(SEED + 1, ids[:1], 8), A[:1])


def test_permutations_are_valid_permutations_of_ten_labels():
    perm = task_permutations(SEED, torch.arange(-200, 300))
    assert perm.shape == (500, NUM_CLASSES)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(NUM_CLASSES).expand(500, -1))
    # Every task permutes: rho(y) = y for all y happens with probability 1/10! only.
    identity = (perm == torch.arange(NUM_CLASSES)).all(1)
    assert not identity.any()
    # Each label lands on each slot about uniformly (500 tasks -> ~50 each).
    counts = torch.zeros(NUM_CLASSES, NUM_CLASSES)
    for p in perm:
        counts[torch.arange(NUM_CLASSES), p] += 1
    assert counts.min() > 20 and counts.max() < 85


# --------------------------------------------------------------------------- 3. task pool
@pytest.mark.parametrize("num_tasks", [1, 3, 2**25, UNLIMITED_TASKS])
def test_training_draws_ids_only_from_pool_never_unseen_ids(num_tasks, tmp_path):
    spec = BatchSpec(num_tasks=num_tasks, tasks_per_step=16, seqs_per_task=1, seq_len=2)
    drawn = torch.cat(
        [draw_task_ids(spec, step_generator(0, s, torch.device("cpu")), "cpu") for s in range(300)]
    )
    assert drawn.min() >= 0 and drawn.max() < num_tasks
    if num_tasks <= 3:
        assert set(drawn.tolist()) == set(range(num_tasks))  # uniform over the whole pool
    else:
        assert len(set(drawn.tolist())) > 0.99 * drawn.numel()

    # The same holds for the ids sample_training_batch actually applies.
    x_train, y_train = one_hot_dataset(4)
    for s in range(20):
        _, _, ids = sample_training_batch(
            spec, x_train, y_train, SEED, step_generator(1, s, torch.device("cpu"))
        )
        assert ids.min() >= 0 and ids.max() < num_tasks

    build_eval_set("random", PreprocessSpec(resize=2), 8, 2, 4, 7, tmp_path / "ev.pt")
    evalset = load_torch(tmp_path / "ev.pt")
    unseen = task_ids_for("unseen", evalset, num_tasks)
    assert (unseen < 0).all()
    assert not set(unseen.tolist()) & set(drawn.tolist())
    seen = task_ids_for("seen", evalset, num_tasks)
    assert seen.min() >= 0 and seen.max() < num_tasks
    assert task_ids_for("identity", evalset, num_tasks) is None


def test_bias_fraction_sets_that_fraction_of_a_steps_ids_to_zero():
    spec = BatchSpec(
        num_tasks=2**25, tasks_per_step=16, seqs_per_task=1, seq_len=2, bias_fraction=0.25
    )
    for s in range(50):
        ids = draw_task_ids(spec, step_generator(3, s, torch.device("cpu")), "cpu")
        assert int((ids == 0).sum()) == 4  # 0.25 x 16 (a random 0 has probability ~1e-6)
    unbiased = BatchSpec(num_tasks=2**25, tasks_per_step=16, seqs_per_task=1, seq_len=2)
    ids = draw_task_ids(unbiased, step_generator(3, 0, torch.device("cpu")), "cpu")
    assert int((ids == 0).sum()) == 0


# --------------------------------------------------------------------------- 4-5. batches, tokens
def _batch(num_tasks=5, T=4, S=3, L=20, nx=16, k=None, seed=0, step=0):
    spec = BatchSpec(num_tasks=num_tasks, tasks_per_step=T, seqs_per_task=S, seq_len=L)
    x_train, y_train = one_hot_dataset(nx)
    gen = step_generator(seed, step, torch.device("cpu"))
    tokens, targets, ids = sample_training_batch(spec, x_train, y_train, SEED, gen, k)
    return spec, x_train, y_train, tokens, targets, ids


def test_all_sequences_of_a_task_share_its_projection_and_permutation():
    nx, T, S, L = 16, 4, 3, 20
    _, _, y_train, tokens, targets, ids = _batch(num_tasks=2**25, T=T, S=S, L=L, nx=nx)
    assert tokens.shape == (T * S, L, nx + NUM_CLASSES) and targets.shape == (T * S, L)
    assert len(set(ids.tolist())) == T  # distinct tasks, so a mix-up would be visible
    A, perm = task_projections(SEED, ids, nx), task_permutations(SEED, ids)
    x_part = tokens[..., :nx].view(T, S, L, nx)
    y = targets.view(T, S, L)
    for t in range(T):
        idx = decode_examples(x_part[t], A[t])
        assert (idx >= 0).all(), "a token of task t is not A_t applied to a base example"
        assert torch.equal(y[t], perm[t][y_train[idx]])
        for other in range(T):
            if other != t:
                assert (decode_examples(x_part[t], A[other]) < 0).all()


def test_sequences_are_fresh_draws_not_one_frozen_sequence_per_task():
    nx, T, S, L = 32, 1, 4, 30
    _, _, _, tokens, _, ids = _batch(num_tasks=1, T=T, S=S, L=L, nx=nx)
    A = task_projections(SEED, ids, nx)[0]
    idx = decode_examples(tokens[..., :nx], A)
    assert len({tuple(r.tolist()) for r in idx}) == S
    # The same task on the next step draws other sequences.
    _, _, _, tokens2, _, ids2 = _batch(num_tasks=1, T=T, S=S, L=L, nx=nx, step=1)
    assert torch.equal(ids, ids2)
    assert not torch.equal(decode_examples(tokens2[..., :nx], A), idx)


def test_token_carries_previous_label_never_current_and_first_label_slot_is_zero():
    nx, T, S, L = 16, 3, 2, 25
    _, _, _, tokens, targets, ids = _batch(num_tasks=2**25, T=T, S=S, L=L, nx=nx)
    slot = tokens[..., nx:]
    assert torch.equal(slot[:, 0], torch.zeros_like(slot[:, 0]))
    prev = F.one_hot(targets[:, :-1], NUM_CLASSES).float()
    assert torch.equal(slot[:, 1:], prev)
    changed = targets[:, 1:] != targets[:, :-1]
    assert changed.any()  # otherwise "previous" and "current" would be indistinguishable
    current = F.one_hot(targets[:, 1:], NUM_CLASSES).float()
    assert not (slot[:, 1:] == current).all(-1)[changed].any()
    # The input part is the projected x_t of the same position.
    A = task_projections(SEED, ids, nx).repeat_interleave(S, dim=0)  # (B, Nx, Nx)
    idx = torch.stack([decode_examples(tokens[b, :, :nx], A[b]) for b in range(T * S)])
    assert (idx >= 0).all()
    x_train, _ = one_hot_dataset(nx)
    projected = torch.einsum("bij,blj->bli", A, x_train[idx])
    assert torch.allclose(tokens[..., :nx], projected, atol=1e-6)


def test_make_tokens_layout_on_hand_values():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # (1, L=3, Nx=2)
    y = torch.tensor([[7, 2, 9]])
    tok = make_tokens(x, y)
    assert tok.shape == (1, 3, 12)
    assert torch.equal(tok[..., :2], x)
    expected = torch.zeros(3, 10)
    expected[1, 7] = 1.0  # token 1 carries y_0
    expected[2, 2] = 1.0  # token 2 carries y_1; y_2 = 9 appears nowhere
    assert torch.equal(tok[0, :, 2:], expected)


def test_apply_tasks_is_projection_then_permutation_and_none_is_identity():
    T, S, L, nx = 2, 2, 5, 6
    x = torch.randn(T, S, L, nx, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (T, S, L), generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([11, -3])
    xt, yt = apply_tasks(x, y, SEED, ids)
    A, perm = task_projections(SEED, ids, nx), task_permutations(SEED, ids)
    for t in range(T):
        assert torch.allclose(xt[t], x[t] @ A[t].T, atol=1e-5)  # A @ x per example
        assert torch.equal(yt[t], perm[t][y[t]])
    xi, yi = apply_tasks(x, y, SEED, None)
    assert torch.equal(xi, x) and torch.equal(yi, y)


def test_step_generator_is_a_function_of_seed_and_step_only():
    cpu = torch.device("cpu")
    draw = [torch.randint(0, 2**31, (4,), generator=step_generator(0, s, cpu)) for s in (0, 1, 0)]
    assert torch.equal(draw[0], draw[2])
    assert not torch.equal(draw[0], draw[1])
    other_seed = torch.randint(0, 2**31, (4,), generator=step_generator(1, 0, cpu))
    assert not torch.equal(draw[0], other_seed)


# --------------------------------------------------------------------------- 11. curriculum
def test_curriculum_holds_start_then_grows_monotonically_then_is_iid():
    start, hold, anneal, n = 10, 20, 100, 60_000
    ks = [curriculum_examples(s, start, hold, anneal, n) for s in range(hold + anneal)]
    assert ks[: hold + 1] == [start] * (hold + 1)  # held, and the anneal starts from `start`
    assert all(isinstance(k, int) for k in ks)
    assert all(a <= b for a, b in zip(ks, ks[1:], strict=False))
    assert ks[-1] > n // 2 and max(ks) <= n
    for s in (hold + anneal, hold + anneal + 1, 10 * (hold + anneal)):
        assert curriculum_examples(s, start, hold, anneal, n) is None
    assert curriculum_examples(0, start, 0, 50, n) == start  # no hold: starts at `start`
    assert curriculum_examples(1, start, 0, 50, n) > start
    assert curriculum_examples(0, start, 0, 0, n) is None  # nothing to anneal: i.i.d.
    assert curriculum_examples(25, 500, 0, 50, 100) == 100  # never more than the split holds


def test_distinct_examples_bounds_base_examples_per_sequence():
    nx, T, S, L, K = 64, 2, 4, 30, 3
    _, _, _, tokens, _, ids = _batch(num_tasks=2**25, T=T, S=S, L=L, nx=nx, k=K)
    A = task_projections(SEED, ids, nx).repeat_interleave(S, dim=0)
    idx = torch.stack([decode_examples(tokens[b, :, :nx], A[b]) for b in range(T * S)])
    assert (idx >= 0).all()
    distinct = [len(set(r.tolist())) for r in idx]
    assert max(distinct) <= K
    # Different sequences draw different exemplar sets (not one frozen set).
    assert len({frozenset(r.tolist()) for r in idx}) > 1
    # Without the curriculum the same shapes give many more distinct examples: the test has teeth.
    _, _, _, tokens_iid, _, ids_iid = _batch(num_tasks=2**25, T=T, S=S, L=L, nx=nx, k=None)
    A = task_projections(SEED, ids_iid, nx).repeat_interleave(S, dim=0)
    idx = torch.stack([decode_examples(tokens_iid[b, :, :nx], A[b]) for b in range(T * S)])
    assert min(len(set(r.tolist())) for r in idx) > K


# --------------------------------------------------------------------------- 14. preprocessing
def test_preprocess_colour_to_luminance_with_one_channel():
    rgb = torch.tensor([200, 100, 50], dtype=torch.uint8)
    images = rgb.expand(2, 14, 14, 3).clone()
    out = preprocess_images(images, PreprocessSpec(resize=14, channels=1))
    assert out.shape == (2, 14, 14, 1) and out.dtype == torch.float32
    lum = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert torch.allclose(out, torch.full_like(out, lum), atol=1e-6)


def test_preprocess_grayscale_repeated_to_three_channels_and_resized():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8, generator=g)
    same = preprocess_images(images, PreprocessSpec(resize=28, channels=3))
    assert same.shape == (3, 28, 28, 3)
    for c in range(3):
        assert torch.allclose(same[..., c], images.float() / 255)
    small = preprocess_images(images, PreprocessSpec(resize=14, channels=3))
    assert small.shape == (3, 14, 14, 3)
    assert torch.equal(small[..., 0], small[..., 1]) and torch.equal(small[..., 1], small[..., 2])
    assert small.min() >= 0 and small.max() <= 1
    # Antialiased downsizing averages: the mean is kept, the pixel noise is smoothed.
    assert abs(small.mean().item() - same.mean().item()) < 0.01
    assert small.std() < 0.8 * same.std()
    # A constant image stays that constant after resizing (pixels / 255, no other scaling).
    flat = preprocess_images(torch.full((1, 28, 28), 51, dtype=torch.uint8), PreprocessSpec())
    assert flat.shape == (1, 14, 14, 1)
    assert torch.allclose(flat, torch.full_like(flat, 0.2), atol=1e-6)


def test_preprocess_spec_input_size():
    assert PreprocessSpec().input_size == 196  # authors' default: 14 x 14 x 1
    assert PreprocessSpec(resize=14, channels=3).input_size == 588
    assert PreprocessSpec(resize=32, channels=3).input_size == 3072
    assert PreprocessSpec(resize=7, channels=1).input_size == 49
    assert PreprocessSpec(resize=32, channels=3).tag == "r32c3"


def test_preprocess_tag_round_trips_and_marks_only_the_unantialiased_mode():
    assert PreprocessSpec(7, 1).tag == "r7c1"  # the default mode keeps the tags of old caches
    assert PreprocessSpec(14, 3, antialias=False).tag == "r14c3aa0"
    for spec in (PreprocessSpec(7, 1), PreprocessSpec(14, 3, False), PreprocessSpec(32, 1, False)):
        assert re.fullmatch(SPEC_TAG_PATTERN, spec.tag)
        assert PreprocessSpec.from_tag(spec.tag) == spec
    assert PreprocessSpec(14, 3, False).cli_options() == "--resize 14 --channels 3 --no-antialias"
    assert PreprocessSpec(7, 1).cli_options() == "--resize 7 --channels 1"
    for bad in ("r14c2", "r0c1", "r14c1aa1", "14c1", "r14c1-aa0"):
        with pytest.raises(ValueError, match="not a preprocessing tag"):
            PreprocessSpec.from_tag(bad)


def test_resize_without_antialias_is_tf_half_pixel_bilinear_by_hand():
    """tf.image.resize(method=bilinear, antialias=False), the authors' data.py: source
    coordinate (i + 0.5) x in/out - 0.5, linear between the two nearest pixels, clamped at the
    borders. Hand-computed cases, separable images img[i, j] = a[i] + b[j]."""
    plain = PreprocessSpec(resize=4, channels=1, antialias=False)
    a = torch.tensor([0.0, 20, 0, 40, 0, 80])  # 6 -> 4: sources 0.25, 1.75, 3.25, 4.75
    b = torch.tensor([0.0, 60, 0, 120, 0, 160])
    img = (a[:, None] + b[None, :]).to(torch.uint8)[None]
    expected = torch.tensor([5.0, 5, 30, 60])[:, None] + torch.tensor([15.0, 15, 90, 120])
    out = preprocess_images(img, plain)[0, ..., 0]
    torch.testing.assert_close(out, expected / 255, atol=1e-6, rtol=0)
    smooth = preprocess_images(img, PreprocessSpec(resize=4, channels=1))[0, ..., 0]
    assert (smooth - out).abs().max() > 0.01  # antialiasing is another filter
    # Upsampling 2 -> 3: sources -1/6 (clamped to pixel 0), 1/2, 7/6 (clamped to pixel 1).
    up = preprocess_images(
        torch.tensor([[[0, 100], [200, 40]]], dtype=torch.uint8),
        PreprocessSpec(resize=3, antialias=False),
    )[0, ..., 0]
    hand = torch.tensor([[0.0, 50, 100], [100, 85, 70], [200, 120, 40]]) / 255
    torch.testing.assert_close(up, hand, atol=1e-6, rtol=0)
    # The tiers' sizes: 28 -> 14 averages each 2x2 block; 28 -> 7 averages the centre 2x2 of
    # each 4x4 block (sources 4i + 1.5), ignoring the other 12 pixels.
    g = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8, generator=g)
    x = digits.float() / 255
    half = preprocess_images(digits, PreprocessSpec(resize=14, antialias=False))[..., 0]
    torch.testing.assert_close(half, x.view(2, 14, 2, 14, 2).mean((2, 4)), atol=1e-6, rtol=0)
    quarter = preprocess_images(digits, PreprocessSpec(resize=7, antialias=False))[..., 0]
    centres = x.view(2, 7, 4, 7, 4)[:, :, 1:3, :, 1:3].mean((2, 4))
    torch.testing.assert_close(quarter, centres, atol=1e-6, rtol=0)


def test_distinct_indices_are_distinct_uniform_and_seeded():
    idx = distinct_indices(300, 64, 100, torch.Generator().manual_seed(1))
    assert idx.shape == (64, 100) and idx.dtype == torch.int64
    assert idx.min() >= 0 and idx.max() < 300
    s = idx.sort(1).values
    assert (s[:, 1:] > s[:, :-1]).all()  # no index twice in a row
    assert torch.equal(idx, distinct_indices(300, 64, 100, torch.Generator().manual_seed(1)))
    full = distinct_indices(7, 5, 7, torch.Generator().manual_seed(2))
    assert (full.sort(1).values == torch.arange(7)).all()  # k = n: permutations
    # Every ordered pair (first, second) of 5 items equally likely: 1/20 each.
    pairs = distinct_indices(5, 40_000, 2, torch.Generator().manual_seed(3))
    freq = torch.bincount(pairs[:, 0] * 5 + pairs[:, 1], minlength=25).float() / 40_000
    off_diagonal = freq.view(5, 5)[~torch.eye(5, dtype=torch.bool)]
    assert (off_diagonal - 0.05).abs().max() < 0.006 and freq.view(5, 5).diag().sum() == 0
    with pytest.raises(ValueError, match="cannot draw 11 distinct"):
        distinct_indices(10, 1, 11, torch.Generator())


def test_random_dataset_with_three_channels_tiles_each_row_as_the_authors():
    """data.py RandomDataset with channel_expand: concatenate the (14, 14) image with itself
    along its last axis, then flatten: (14, 42), each row 3 times in a row."""
    slots = torch.arange(3)
    one = random_dataset_images(5, slots, 49)
    three = random_dataset_images(5, slots, 147, channels=3)
    assert three.shape == (3, NUM_CLASSES, 147)
    rows = three.view(3, NUM_CLASSES, 7, 3, 7)
    for c in range(3):
        assert torch.equal(rows[:, :, :, c].reshape(3, NUM_CLASSES, 49), one)
    with pytest.raises(ValueError, match="not a square image"):
        random_dataset_images(5, slots, 50, channels=3)
