"""Parsers from verified canonical files to the four arrays every prepared dataset holds.

Each parser takes the dataset's spec and its payloads (decompressed bytes keyed by canonical file
name) and returns x_train, y_train, x_test, y_test: images uint8 (N, H, W) for grayscale or
(N, H, W, 3) for colour, labels int64. Parsers run only after `prepare.verify_payloads` matched
every payload against the registry's md5s, so a pickle is never opened unless it is the official
one; even then only numpy arrays may come out of it (the restricted unpickler).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Callable

import numpy as np

from gpicl.data.idx import parse_idx
from gpicl.data.registry import DatasetSpec
from gpicl.data.sources import load_numpy_pickle


class DatasetFormatError(ValueError):
    """Verified bytes that do not hold what the canonical format promises."""


def arrays_from_idx(spec: DatasetSpec, payloads: dict[str, bytes]) -> dict[str, np.ndarray]:
    """MNIST-like: one idx file per array; labels widened to int64."""
    arrays = {}
    for key, file in spec.files.items():
        array = parse_idx(payloads[file.name])
        arrays[key] = array.astype(np.int64) if key.startswith("y_") else array
    return arrays


# --- CIFAR-10 (python version): a tar.gz of pickled dicts -------------------------------------

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCHES = ("test_batch",)
CIFAR10_PIXELS = 3 * 32 * 32


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) int64) from one pickled CIFAR batch."""
    try:
        # latin1: the batches were pickled by Python 2; its str keys and the array's raw bytes
        # come back as str (bytes keys, had they been written so, are decoded below)
        batch = load_numpy_pickle(raw)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(f"{where}: {err}") from err
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{where}: expected a dict, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DatasetFormatError(f"{where}: expected keys 'data' and 'labels', got {sorted(batch)}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == CIFAR10_PIXELS
    ):
        shape = getattr(data, "shape", None)
        raise DatasetFormatError(
            f"{where}: data must be uint8 (N, {CIFAR10_PIXELS}), got "
            f"{type(data).__name__} {shape} {getattr(data, 'dtype', '')}"
        )
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DatasetFormatError(
            f"{where}: labels must be {len(data)} integers, got {labels.shape} {labels.dtype}"
        )
    # channel-planar rows: 1024 red, 1024 green, 1024 blue, each row-major 32x32
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def arrays_from_cifar10(spec: DatasetSpec, payloads: dict[str, bytes]) -> dict[str, np.ndarray]:
    """CIFAR-10: data_batch_1..5 in order are the training set, test_batch the test set."""
    archive_name = spec.files["archive"].name
    wanted = {f"{CIFAR10_FOLDER}/{b}" for b in CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES}
    raw: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payloads[archive_name]), mode="r:gz") as tar:
            for member in tar:  # read in memory: nothing is extracted onto the disk
                if member.name in wanted and member.isfile():
                    raw[member.name.rsplit("/", 1)[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DatasetFormatError(f"{archive_name}: not a readable tar.gz ({err})") from err
    missing = [b for b in CIFAR10_TRAIN_BATCHES + CIFAR10_TEST_BATCHES if b not in raw]
    if missing:
        raise DatasetFormatError(f"{archive_name}: {CIFAR10_FOLDER}/ lacks {', '.join(missing)}")

    def split(batches: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_cifar_batch(raw[b], f"{archive_name}:{b}") for b in batches]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_train, y_train = split(CIFAR10_TRAIN_BATCHES)
    x_test, y_test = split(CIFAR10_TEST_BATCHES)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


# --- SVHN cropped digits: MATLAB v5 .mat files ------------------------------------------------

SVHN_ZERO_LABEL = 10  # the .mat files label digit 0 as 10


def _svhn_split(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from scipy.io import loadmat
    except ImportError as err:  # pragma: no cover - scipy is a dependency
        raise ImportError("reading SVHN .mat files needs scipy (pip install scipy)") from err
    try:
        mat = loadmat(io.BytesIO(data))
    except (ValueError, TypeError, OSError) as err:
        raise DatasetFormatError(f"{where}: not a readable MATLAB file ({err})") from err
    if "X" not in mat or "y" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetFormatError(f"{where}: expected variables X and y, got {keys}")
    x, y = mat["X"], mat["y"]
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DatasetFormatError(
            f"{where}: X must be uint8 (32, 32, 3, N), got {x.shape} {x.dtype}"
        )
    n = x.shape[3]
    if y.shape not in ((n, 1), (n,)) or y.dtype.kind not in "iuf":
        raise DatasetFormatError(f"{where}: y must be ({n}, 1) numbers, got {y.shape} {y.dtype}")
    labels = y.reshape(n).astype(np.int64)
    if not np.array_equal(labels, y.reshape(n)):
        raise DatasetFormatError(f"{where}: y holds non-integer labels")
    if n and (labels.min() < 1 or labels.max() > SVHN_ZERO_LABEL):
        raise DatasetFormatError(f"{where}: y must be in 1..10, got {labels.min()}..{labels.max()}")
    labels[labels == SVHN_ZERO_LABEL] = 0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


def arrays_from_svhn(spec: DatasetSpec, payloads: dict[str, bytes]) -> dict[str, np.ndarray]:
    """SVHN: X (32, 32, 3, N) -> (N, 32, 32, 3); y (N, 1) with 10 meaning digit 0 -> 0..9."""
    x_train, y_train = _svhn_split(payloads[spec.files["train"].name], spec.files["train"].name)
    x_test, y_test = _svhn_split(payloads[spec.files["test"].name], spec.files["test"].name)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


PARSERS: dict[str, Callable[[DatasetSpec, dict[str, bytes]], dict[str, np.ndarray]]] = {
    "idx": arrays_from_idx,
    "cifar10_python": arrays_from_cifar10,
    "svhn_mat": arrays_from_svhn,
}


def parse_payloads(spec: DatasetSpec, payloads: dict[str, bytes]) -> dict[str, np.ndarray]:
    try:
        parser = PARSERS[spec.format]
    except KeyError:
        raise ValueError(f"{spec.name}: no parser for format {spec.format!r}") from None
    return parser(spec, payloads)
