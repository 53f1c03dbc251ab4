"""The augmentation cache: colour and grayscale datasets under one preprocessing spec, so a
model meta-trained on MNIST can be meta-tested on CIFAR-10 or SVHN (same Nx)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpicl.augment import PreprocessSpec, preprocess_images
from gpicl.cache import build_data_cache, build_eval_set
from gpicl.io import load_torch


def _npz(path, shape, seed):
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (20, *shape), dtype=np.uint8),
        y_train=rng.integers(0, 10, 20).astype(np.int64),
        x_test=rng.integers(0, 256, (8, *shape), dtype=np.uint8),
        y_test=rng.integers(0, 10, 8).astype(np.int64),
    )
    return path


@pytest.mark.parametrize("channels", [1, 3])
def test_grayscale_and_colour_datasets_get_the_same_input_size(tmp_path, channels):
    spec = PreprocessSpec(resize=7, channels=channels)
    sizes = {}
    for name, shape in {"mnist": (28, 28), "cifar10": (32, 32, 3)}.items():
        npz = _npz(tmp_path / f"{name}.npz", shape, seed=len(name))
        build_data_cache(name, npz, spec, tmp_path / f"{name}.pt")
        cache = load_torch(tmp_path / f"{name}.pt")
        sizes[name] = cache["x_train"].shape[1]
        assert cache["x_test"].shape == (8, spec.input_size)
    assert sizes == {"mnist": 49 * channels, "cifar10": 49 * channels}


def test_cache_is_z_normalised_with_training_split_statistics(tmp_path):
    npz = _npz(tmp_path / "d.npz", (28, 28), seed=0)
    build_data_cache("d", npz, PreprocessSpec(resize=14, channels=1), tmp_path / "d.pt")
    cache = load_torch(tmp_path / "d.pt")
    assert abs(cache["x_train"].mean().item()) < 1e-5
    assert abs(cache["x_train"].std().item() - 1.0) < 1e-4
    # The test split is normalised with the training statistics, not its own.
    raw_test = torch.from_numpy(np.load(npz)["x_test"])
    expected = (preprocess_images(raw_test, PreprocessSpec(14, 1)) - cache["mean"]) / cache["std"]
    torch.testing.assert_close(cache["x_test"], expected.flatten(1))
    assert abs(cache["x_test"].mean().item()) > 1e-4  # its own statistics would give 0


# --------------------------------------------------------------------------- paper tier input
def test_paper_tier_expands_grayscale_to_three_equal_channels_in_hwc_order(tmp_path):
    """The authors' data.py: tf.image.resize, then channel_expand (concatenate the 1-channel
    HWC image 3 times on its channel axis), then tf.reshape(img, [-1]): H, then W, then C."""
    from gpicl.config import REPO_ROOT, load_params, preprocess_spec

    spec = preprocess_spec(load_params(REPO_ROOT / "params.yaml")["tiers"]["paper"])
    assert (spec.resize, spec.channels, spec.antialias) == (14, 3, False)
    npz = _npz(tmp_path / "mnist.npz", (28, 28), seed=3)
    build_data_cache("mnist", npz, spec, tmp_path / "mnist.pt")
    cache = load_torch(tmp_path / "mnist.pt")
    x = cache["x_test"]
    assert x.shape == (8, 14 * 14 * 3)
    planes = x.view(8, 14, 14, 3)
    assert torch.equal(planes[..., 0], planes[..., 1]) and torch.equal(
        planes[..., 0], planes[..., 2]
    )
    gray = PreprocessSpec(14, 1, antialias=False)
    build_data_cache("mnist", npz, gray, tmp_path / "gray.pt")
    one = load_torch(tmp_path / "gray.pt")["x_test"]  # same statistics: copies
    # Pixel-major, channels last (mean and std summed over 3x the values: float rounding).
    torch.testing.assert_close(x, one.repeat_interleave(3, dim=1), atol=1e-3, rtol=1e-3)
    # A colour image flattens the same way: entry 3 x (h x 14 + w) + c is pixel (h, w), colour c.
    rgb = torch.arange(14 * 14 * 3, dtype=torch.uint8).view(1, 14, 14, 3)
    flat = preprocess_images(rgb, spec).flatten(1)
    torch.testing.assert_close(flat, rgb.flatten(1).float() / 255)


# --------------------------------------------------------------------------- evaluation sets
def _sequences_with_a_repeat(indices: torch.Tensor) -> int:
    s = indices.sort(-1).values
    return int((s[..., 1:] == s[..., :-1]).any(-1).sum())


def test_evaluation_sequences_never_repeat_a_test_image(tmp_path):
    build_eval_set("mnist", PreprocessSpec(4, 1), 6, 20, 100, 7, tmp_path / "ev.pt", num_test=300)
    idx = load_torch(tmp_path / "ev.pt")["indices"]
    assert idx.shape == (6, 20, 100) and idx.min() >= 0 and idx.max() < 300
    assert _sequences_with_a_repeat(idx) == 0
    # The with-replacement draw this replaced repeats within almost every such sequence, so
    # the check above catches a regression.
    old = torch.randint(0, 300, idx.shape, generator=torch.Generator().manual_seed(7))
    assert _sequences_with_a_repeat(old) > 100
    # A pure function of the seed; every test image used about equally (12,000 / 300 = 40).
    build_eval_set("mnist", PreprocessSpec(4, 1), 6, 20, 100, 7, tmp_path / "ev2.pt", num_test=300)
    assert torch.equal(idx, load_torch(tmp_path / "ev2.pt")["indices"])
    assert torch.bincount(idx.flatten(), minlength=300).min() > 10
    with pytest.raises(ValueError, match="cannot be drawn from a test split of 50"):
        build_eval_set("mnist", PreprocessSpec(4, 1), 1, 1, 51, 7, tmp_path / "x.pt", num_test=50)


def test_random_dataset_sequences_still_draw_with_replacement(tmp_path):
    """data.py RandomDataset: jax.random.choice(key, 10, (batch, sequence)), replace=True."""
    build_eval_set("random", PreprocessSpec(4, 1), 2, 3, 100, 7, tmp_path / "ev.pt")
    assert _sequences_with_a_repeat(load_torch(tmp_path / "ev.pt")["indices"]) == 6


def test_probe_sequences_never_repeat_a_test_image():
    from gpicl.train import PROBE_SEQS, PROBE_TASKS, probe_sequences

    g = torch.Generator().manual_seed(0)
    cache = {"x_test": torch.randn(60, 6, generator=g), "y_test": torch.randint(0, 10, (60,))}
    for tokens in probe_sequences(cache, 50, task_seed=3)[::2]:  # unseen tasks, task 0
        assert tokens.shape == (PROBE_TASKS * PROBE_SEQS, 50, 16)
        for seq in tokens:
            assert torch.unique(seq[:, :6], dim=0).shape[0] == 50
