"""Datasets: registry (URLs, md5s, shapes), sources (canonical hosts, offline packages), idx.

`prepare_dataset` is what the CLI and the workflow call; `load_npz` reads its output back.
"""

from gpicl.data.checksums import ChecksumError
from gpicl.data.idx import IdxFormatError, encode_idx, parse_idx
from gpicl.data.prepare import SOURCES, load_npz, prepare_dataset, verify_npz
from gpicl.data.registry import (
    ARRAY_KEYS,
    DATASET_NAMES,
    DATASETS,
    OFFLINE_DATASET_NAMES,
    DatasetSpec,
    RemoteFile,
    get_spec,
)
from gpicl.data.sources import DatasetUnavailableError

__all__ = [
    "ARRAY_KEYS",
    "DATASETS",
    "DATASET_NAMES",
    "OFFLINE_DATASET_NAMES",
    "SOURCES",
    "ChecksumError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "IdxFormatError",
    "RemoteFile",
    "encode_idx",
    "get_spec",
    "load_npz",
    "parse_idx",
    "prepare_dataset",
    "verify_npz",
]
