"""The idx format of MNIST-like datasets: a 4-byte magic, big-endian uint32 dimensions, raw data.

We both parse it (canonical downloads) and write it (offline sources that ship the same pixels
in another container), so that every source is checked against the official idx md5s.
"""

from __future__ import annotations

import struct

import numpy as np

# idx type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """Bytes that are not a well-formed idx file."""


def parse_idx(data: bytes) -> np.ndarray:
    """Decode idx bytes into an array in native byte order; rejects any malformed header or size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"bad idx magic {data[:4].hex()!r}: expected 0x0000<type><ndim>")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise IdxFormatError(f"unknown idx type code 0x{type_code:02x}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(f"idx header truncated: {len(data)} bytes for {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[type_code]
    expected_len = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_len:
        raise IdxFormatError(
            f"idx size mismatch: shape {shape} needs {expected_len} bytes, got {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as idx bytes (the inverse of `parse_idx`)."""
    array = np.asarray(array)
    matching = [
        (code, dtype)
        for code, dtype in IDX_DTYPES.items()
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize
    ]
    if not matching:
        raise IdxFormatError(f"dtype {array.dtype} has no idx type code")
    type_code, dtype = matching[0]
    if array.ndim > 255:
        raise IdxFormatError(f"idx allows at most 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()
