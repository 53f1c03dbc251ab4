"""Turn a registered dataset into one verified .npz: the entry point of the data phase."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from gpicl.data.checksums import ChecksumError, check_md5
from gpicl.data.idx import parse_idx
from gpicl.data.registry import ARRAY_KEYS, DatasetSpec, get_spec
from gpicl.data.sources import (
    OFFLINE_SOURCES,
    DatasetUnavailableError,
    canonical_cache_dir,
    discard_cached,
    fetch_canonical,
    fetch_offline,
    log,
)
from gpicl.io import atomic_path

SOURCES = ("auto", "download", "offline")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _source_plan(source: str) -> list[str]:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "auto":
        # CI machines never reach the dataset hosts; skip straight to the offline source
        return ["offline"] if running_in_ci() else ["download", "offline"]
    return [source]


def ways_to_provide(spec: DatasetSpec, download_dir: str | os.PathLike) -> str:
    """The ways a user can get this dataset, for the error raised when none worked."""
    files = ", ".join(file.name for file in spec.files.values())
    ways = [
        f"source='download': needs internet access to {' or '.join(spec.base_urls)}",
        f"place the official files ({files}) in {canonical_cache_dir(spec, download_dir)}/ "
        "and use source='download' (they are verified, not downloaded again)",
    ]
    if spec.offline_source is None:
        ways.append("no offline source exists for this dataset")
    else:
        description = OFFLINE_SOURCES[spec.offline_source].description
        ways.append(f"source='offline': {description}")
    return "\n  ".join(ways)


def fetch_idx_payloads(
    spec: DatasetSpec, source: str, download_dir: str | os.PathLike, timeout: float
) -> tuple[dict[str, bytes], str]:
    """Decompressed bytes of every file from the first source that delivers, and its name."""
    failures = []
    for kind in _source_plan(source):
        try:
            if kind == "download":
                payloads = fetch_canonical(spec, download_dir, timeout)
            else:
                payloads = fetch_offline(spec, download_dir)
        except DatasetUnavailableError as err:
            failures.append(f"{kind}: {err}")
            log(f"{spec.title}: {kind} source unavailable")
            continue
        return payloads, kind
    raise DatasetUnavailableError(
        f"could not obtain {spec.title} ({spec.name}) with source={source!r}"
        + (" (CI is set: canonical hosts skipped)" if source == "auto" and running_in_ci() else "")
        + ":\n  "
        + "\n  ".join(failures)
        + "\nWays to provide it:\n  "
        + ways_to_provide(spec, download_dir)
    )


def check_arrays(spec: DatasetSpec, arrays: dict[str, np.ndarray]) -> None:
    """Shapes, dtypes and label range as the registry says; ValueError otherwise."""
    if sorted(arrays) != sorted(ARRAY_KEYS):
        raise ValueError(f"{spec.name}: expected arrays {ARRAY_KEYS}, got {sorted(arrays)}")
    for key in ARRAY_KEYS:
        array = arrays[key]
        expected_dtype = np.uint8 if key.startswith("x_") else np.int64
        if array.shape != spec.shapes[key] or array.dtype != expected_dtype:
            raise ValueError(
                f"{spec.name} {key}: expected {spec.shapes[key]} {np.dtype(expected_dtype)}, "
                f"got {array.shape} {array.dtype}"
            )
        if (
            key.startswith("y_")
            and array.size
            and not (0 <= array.min() and array.max() < spec.num_classes)
        ):
            raise ValueError(f"{spec.name} {key}: labels outside 0..{spec.num_classes - 1}")


def arrays_from_idx(spec: DatasetSpec, payloads: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Verify each decompressed idx file against the registry's md5, then parse and check it.

    The one gate every source passes through: a mismatch raises ChecksumError naming the file.
    """
    arrays = {}
    for key, file in spec.files.items():
        data = payloads[file.name]
        if file.content_md5 is not None:
            check_md5(data, file.content_md5, file.name, "decompressed")
        array = parse_idx(data)
        arrays[key] = array.astype(np.int64) if key.startswith("y_") else array
    check_arrays(spec, arrays)
    return arrays


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Atomic, uncompressed .npz whose bytes depend only on the arrays.

    np.savez (Python 3.11's zipfile) stamps members 1980-01-01, not the clock; the file handle
    keeps it from appending ".npz" to the temporary name.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{key: np.ascontiguousarray(arrays[key]) for key in ARRAY_KEYS})


def load_npz(name: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a prepared dataset and check it is what the registry promises."""
    spec = get_spec(name)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    check_arrays(spec, arrays)
    return arrays


def verify_npz(name: str, path: str | os.PathLike) -> None:
    """Raise ValueError unless `path` holds a well-formed prepared `name` dataset."""
    load_npz(name, path)


def prepare_dataset(
    name: str,
    out_path: str | Path,
    source: str = "auto",
    download_dir: str | Path = "resources/downloads",
    timeout: float = 10.0,
) -> Path:
    """Fetch `name`, verify every byte against the official md5s and write `out_path` (.npz).

    source: "auto" (canonical hosts, then the offline source; offline only when CI is set),
    "download" (canonical hosts only) or "offline" (offline source only). Downloads are cached
    in download_dir. Raises ChecksumError on wrong bytes and DatasetUnavailableError when no
    source delivers; out_path is then left untouched.
    """
    spec = get_spec(name)
    out_path = Path(out_path)
    started = time.perf_counter()
    payloads, used = fetch_idx_payloads(spec, source, download_dir, timeout)
    try:
        arrays = arrays_from_idx(spec, payloads)
    except ChecksumError as err:
        if used == "download":
            discard_cached(spec, download_dir, err.file)
        raise
    write_npz(out_path, arrays)
    origin = (
        "canonical download"
        if used == "download"
        else OFFLINE_SOURCES[spec.offline_source].description
    )
    elapsed = time.perf_counter() - started
    log(f"{spec.title}: verified from {origin}; wrote {out_path} ({elapsed:.1f} s)")
    return out_path
