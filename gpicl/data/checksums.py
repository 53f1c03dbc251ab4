"""Checksums and the one error a mismatch raises, shared by every source."""

from __future__ import annotations

import hashlib
import os


class ChecksumError(ValueError):
    """Bytes whose hash is not the registered one: the data cannot be trusted."""

    def __init__(
        self, file: str, expected: str, actual: str, algorithm: str = "md5", of: str = "bytes"
    ) -> None:
        self.file = file
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm
        super().__init__(
            f"{algorithm} mismatch for {file} ({of}): expected {expected}, got {actual}. "
            "The file is corrupted or not the official one; it was not used."
        )


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_digest_hex(path: str | os.PathLike, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def check_md5(data: bytes, expected: str, file: str, of: str = "bytes") -> None:
    actual = md5_hex(data)
    if actual != expected:
        raise ChecksumError(file, expected, actual, "md5", of)


def check_file_digest(path: str | os.PathLike, expected: str, algorithm: str, file: str) -> None:
    actual = file_digest_hex(path, algorithm)
    if actual != expected:
        raise ChecksumError(file, expected, actual, algorithm)
