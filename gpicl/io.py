"""Atomic file writes, deterministic serialisation and integrity checks on read.

Every artifact is written to a temporary file in the destination folder and renamed into place,
so a killed job never leaves a file that looks finished. Every artifact the project reads back
carries a SHA-256 of its content, recorded when it was written and checked when it is read:
torch files (caches, evaluation sets, checkpoints, models) start with a one-line header
`GPICL-SHA256 <hex>`, and JSON records hold the digest of the rest under `content_sha256`.
A damaged or truncated file is an IntegrityError that names the file and the command that
rebuilds it, never a silently different number.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)

TORCH_MAGIC = b"GPICL-SHA256 "
_HEADER_LEN = len(TORCH_MAGIC) + 64 + 1  # magic, hex digest, newline
JSON_DIGEST_KEY = "content_sha256"


class IntegrityError(ValueError):
    """A file the project wrote no longer holds what was written (or was never ours)."""


def rebuild_hint(path: str | os.PathLike) -> str:
    return f"rebuild it with: snakemake --cores all --forcerun {os.fspath(path)}"


def damaged(path: str | os.PathLike, problem: str) -> IntegrityError:
    return IntegrityError(
        f"{os.fspath(path)}: {problem}; the file is damaged; {rebuild_hint(path)}"
    )


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_stale_temp(path: Path) -> bool:
    """A temporary file of a writer that no longer runs (killed between mkstemp and rename)."""
    parts = path.name.split(".")  # "", name..., pid, random, "tmp"
    try:
        pid = int(parts[-3])
    except (IndexError, ValueError):
        return True  # a temporary of an older naming scheme: no writer can still own it
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete temporaries of `path` left by killed writers (a running writer's are kept)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        if _is_stale_temp(tmp):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary's name holds the writer's pid, so the next writer of the same file can tell
    a killed writer's leftover (removed) from a concurrent one's (kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Sorted keys and a trailing newline, so equal content gives equal bytes; the digest of
    that content is stored beside it (`content_sha256`) and checked by read_json."""
    if not isinstance(obj, dict) or JSON_DIGEST_KEY in obj:
        raise TypeError(f"write_json takes a dict without {JSON_DIGEST_KEY!r}")
    digest = hashlib.sha256(_canonical_json(obj).encode()).hexdigest()
    write_text(path, _canonical_json({**obj, JSON_DIGEST_KEY: digest}))


def read_json(path: str | os.PathLike) -> dict:
    """A record written by write_json, checked against its digest (the digest key removed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        record = json.loads(text)
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise damaged(path, f"not valid JSON ({err})") from err
    if not isinstance(record, dict) or JSON_DIGEST_KEY not in record:
        raise damaged(path, f"no {JSON_DIGEST_KEY} (not written by gpicl, or by an older version)")
    stored = record.pop(JSON_DIGEST_KEY)
    actual = hashlib.sha256(_canonical_json(record).encode()).hexdigest()
    if stored != actual:
        raise damaged(path, f"content does not match its {JSON_DIGEST_KEY}")
    return record


def save_torch(obj: Any, path: str | os.PathLike) -> str:
    """torch.save, atomically and byte-reproducibly, behind a header holding the SHA-256 of
    the archive; returns that digest. (Serialising to memory keeps the random temporary name
    out of the archive: torch names its records after a path's stem.)"""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(TORCH_MAGIC + digest.encode() + b"\n")
        f.write(payload)
    return digest


def torch_digest(path: str | os.PathLike) -> str:
    """The digest recorded in a torch file's header (its content hash, read in O(1))."""
    with open(path, "rb") as f:
        header = f.read(_HEADER_LEN)
    if not header.startswith(TORCH_MAGIC) or len(header) != _HEADER_LEN:
        raise damaged(path, "no gpicl integrity header (not written by gpicl, or truncated)")
    return header[len(TORCH_MAGIC) : -1].decode("ascii", errors="replace")


def load_torch(path: str | os.PathLike, map_location=None) -> Any:
    """torch.load of a file written by save_torch, after checking its SHA-256."""
    import torch

    data = Path(path).read_bytes()
    stored = torch_digest(path)
    payload = memoryview(data)[_HEADER_LEN:]
    if hashlib.sha256(payload).hexdigest() != stored:
        raise damaged(path, "content does not match the SHA-256 in its header")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:  # a digest match makes this a version problem, not damage
        raise IntegrityError(
            f"{os.fspath(path)}: cannot be read ({err}); {rebuild_hint(path)}"
        ) from err


# What each kind of torch file holds (gpicl.cache, gpicl.train), so that a file of the wrong
# kind (a cache given as a model) is refused by name instead of failing with a KeyError.
TORCH_FILE_KEYS = {
    "cache": ("a data cache", ("x_train", "y_train", "x_test", "y_test", "spec")),
    "evalset": ("an evaluation set", ("dataset", "spec", "seen_draws", "unseen_ids", "indices")),
    "model": ("a trained model", ("model", "config")),
}


def load_artifact(path: str | os.PathLike, kind: str, map_location=None) -> dict:
    """load_torch of a file that must be of `kind` (a key of TORCH_FILE_KEYS)."""
    obj = load_torch(path, map_location=map_location)
    what, keys = TORCH_FILE_KEYS[kind]
    missing = [k for k in keys if k not in obj] if isinstance(obj, dict) else list(keys)
    if missing:
        raise ValueError(f"{os.fspath(path)}: not {what} (it lacks {', '.join(missing)})")
    return obj


def rounded(values, digits: int = 6) -> list[float]:
    """Fixed precision for floats that go into result files."""
    return [round(float(v), digits) for v in values]
