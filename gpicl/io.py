"""Atomic file writes and deterministic serialisation.

Every artifact is written to a temporary file in the destination folder and renamed into place,
so a killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Sorted keys and a trailing newline, so equal content gives equal bytes."""
    write_text(path, json.dumps(obj, sort_keys=True, indent=1) + "\n")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically and byte-reproducibly: writing through a file handle keeps the
    random temporary name out of the archive (torch names its records after a path's stem)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def rounded(values, digits: int = 6) -> list[float]:
    """Fixed precision for floats that go into result files."""
    return [round(float(v), digits) for v in values]
