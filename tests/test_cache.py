"""The augmentation cache: colour and grayscale datasets under one preprocessing spec, so a
model meta-trained on MNIST can be meta-tested on CIFAR-10 or SVHN (same Nx)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpicl.augment import PreprocessSpec, preprocess_images
from gpicl.cache import build_data_cache
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
