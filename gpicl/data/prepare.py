"""Turn a registered dataset into one verified .npz: the entry point of the data phase."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import numpy as np

from gpicl.data.checksums import ChecksumError, check_md5
from gpicl.data.formats import parse_payloads
from gpicl.data.registry import ARRAY_KEYS, DatasetSpec, get_spec
from gpicl.data.sources import (
    OFFLINE_SOURCES,
    DatasetUnavailableError,
    canonical_cache_dir,
    discard_cached,
    fetch_canonical,
    fetch_folder,
    fetch_offline,
    log,
)
from gpicl.io import atomic_path

SOURCES = ("auto", "download", "offline")  # the keywords; any other value is a folder path


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def is_folder_source(source: str | os.PathLike) -> bool:
    """Any source that is not one of the keywords names a local folder (use ./offline for a
    folder called "offline")."""
    return os.fspath(source) not in SOURCES


def source_plan(source: str | os.PathLike) -> list[str]:
    """The kinds of source tried, in order: "download", "offline" or "folder".

    A folder must exist; a missing one is a configuration error (ValueError), not an
    unavailable dataset.
    """
    if is_folder_source(source):
        folder = Path(source)
        if not folder.is_dir():
            why = "not a folder" if folder.exists() else "no such folder"
            raise ValueError(
                f"source must be one of {', '.join(SOURCES)} or an existing folder; "
                f"{os.fspath(source)!r} is neither ({why})"
            )
        return ["folder"]
    if source == "auto":
        # CI machines never reach the dataset hosts; skip straight to the offline source
        return ["offline"] if running_in_ci() else ["download", "offline"]
    return [os.fspath(source)]


def ways_to_provide(spec: DatasetSpec, download_dir: str | os.PathLike) -> str:
    """The ways a user can get this dataset, for the error raised when none worked."""
    files = ", ".join(file.name for file in spec.files.values())
    ways = [
        f"source='download' (or 'auto'): needs internet access to {' or '.join(spec.base_urls)}",
        f"source=FOLDER: a folder holding the official files ({files}) in FOLDER/{spec.name}/ "
        "or FOLDER/ itself; they are checked against the official md5s",
        f"or place those files in {canonical_cache_dir(spec, download_dir)}/ "
        "and use source='download' (they are verified, not downloaded again)",
    ]
    if spec.offline_source is None:
        ways.append("no offline source exists for this dataset")
    else:
        description = OFFLINE_SOURCES[spec.offline_source].description
        ways.append(f"source='offline': {description}")
    return "\n  ".join(ways)


def fetch_payloads(
    spec: DatasetSpec,
    source: str | os.PathLike,
    download_dir: str | os.PathLike,
    timeout: float,
) -> tuple[dict[str, bytes], str]:
    """Decompressed bytes of every file from the first source that delivers, and its kind."""
    failures = []
    for kind in source_plan(source):
        try:
            if kind == "download":
                payloads = fetch_canonical(spec, download_dir, timeout, network=not running_in_ci())
            elif kind == "folder":
                payloads = fetch_folder(spec, source)
            else:
                payloads = fetch_offline(spec, download_dir)
        except DatasetUnavailableError as err:
            failures.append((kind, str(err)))
            log(f"{spec.title}: {kind} source unavailable")
            continue
        return payloads, kind
    ci_skipped = source == "auto" and running_in_ci()
    ci_note = " (CI is set: canonical hosts skipped)" if ci_skipped else ""
    shown = os.fspath(source)
    reason = f"not obtainable with source={shown!r}{ci_note}: " + "; ".join(
        f"{kind}: {message.splitlines()[0].removeprefix(spec.title + ': ').rstrip(':')}"
        for kind, message in failures
    )
    raise DatasetUnavailableError(
        f"could not obtain {spec.title} ({spec.name}) with source={shown!r}{ci_note}:\n  "
        + "\n  ".join(f"{kind}: {message}" for kind, message in failures)
        + "\nWays to provide it:\n  "
        + ways_to_provide(spec, download_dir),
        dataset=spec.name,
        reason=reason,
    )


def verify_payloads(spec: DatasetSpec, payloads: dict[str, bytes]) -> None:
    """The gate every source passes through before any parser sees a byte.

    Checks each payload against the md5 of its decompressed bytes when the registry has one,
    else (uncompressed files: CIFAR-10, SVHN) against the md5 as served. Compressed files without
    a decompressed md5 (KMNIST) were checked as served by their source (pooch or the folder).
    Raises ChecksumError naming the file.
    """
    for file in spec.files.values():
        data = payloads[file.name]
        if file.content_md5 is not None:
            check_md5(data, file.content_md5, file.name, "decompressed")
        elif file.compression is None:
            check_md5(data, file.md5, file.name, "as served")


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


def verify_npz(name: str, path: str | os.PathLike, quick: bool = False) -> None:
    """Raise ValueError unless `path` holds a well-formed prepared `name` dataset.

    quick: read only the image arrays' headers (shape, dtype) and the small label arrays, so a
    listing of every dataset stays fast; pixel bytes are then not read (nor CRC-checked).
    """
    if not quick:
        load_npz(name, path)
        return
    spec = get_spec(name)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {m.removesuffix(".npy"): m for m in archive.namelist()}
            arrays: dict[str, np.ndarray] = {}
            for key, member in members.items():
                with archive.open(member) as f:
                    if key.startswith("y_"):
                        arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
                        continue
                    version = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                    # a zero-byte stand-in with the stored shape and dtype
                    arrays[key] = np.broadcast_to(np.zeros((), dtype=dtype), shape)
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz ({err})") from err
    check_arrays(spec, arrays)


def prepare_dataset(
    name: str,
    out_path: str | Path,
    source: str | os.PathLike = "auto",
    download_dir: str | Path = "resources/downloads",
    timeout: float = 10.0,
) -> Path:
    """Fetch `name`, verify every byte against the official md5s and write `out_path` (.npz).

    source: "auto" (canonical hosts, then the offline source; offline only when CI is set),
    "download" (canonical hosts only), "offline" (offline source only), or any other value: a
    folder holding the official files (in <folder>/<name>/ or <folder>/). Downloads are cached in
    download_dir. Raises ChecksumError on wrong bytes, DatasetUnavailableError when no source
    delivers (its `.dataset` and one-line `.reason` name what and why) and ValueError for an
    unknown dataset or a folder that does not exist; out_path is then left untouched.
    """
    spec = get_spec(name)
    out_path = Path(out_path)
    started = time.perf_counter()
    payloads, used = fetch_payloads(spec, source, download_dir, timeout)
    try:
        verify_payloads(spec, payloads)
    except ChecksumError as err:
        if used == "download":
            discard_cached(spec, download_dir, err.file)
        raise
    arrays = parse_payloads(spec, payloads)
    del payloads
    check_arrays(spec, arrays)
    write_npz(out_path, arrays)
    if used == "download":
        origin = "canonical download"
    elif used == "folder":
        origin = f"local folder {os.fspath(source)}"
    else:
        origin = OFFLINE_SOURCES[spec.offline_source].description
    elapsed = time.perf_counter() - started
    log(f"{spec.title}: verified from {origin}; wrote {out_path} ({elapsed:.1f} s)")
    return out_path
