"""Datasets: registry (URLs, md5s, shapes), sources (canonical hosts, offline packages, a local
folder), parsers (idx, CIFAR-10 pickles, SVHN .mat) and the listing behind `gpicl data --list`.

`prepare_dataset` is what the CLI and the workflow call; `load_prepared` reads its output
back, checked against its status record.
"""

from gpicl.data.checksums import ChecksumError
from gpicl.data.formats import DatasetFormatError
from gpicl.data.idx import IdxFormatError, encode_idx, parse_idx
from gpicl.data.prepare import (
    SOURCES,
    is_folder_source,
    load_npz,
    prepare_dataset,
    source_plan,
    verify_npz,
)
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
from gpicl.data.status import (
    dataset_availability,
    discard_damaged,
    format_dataset_list,
    list_datasets,
    load_prepared,
)

__all__ = [
    "ARRAY_KEYS",
    "DATASETS",
    "DATASET_NAMES",
    "OFFLINE_DATASET_NAMES",
    "SOURCES",
    "ChecksumError",
    "DatasetFormatError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "IdxFormatError",
    "RemoteFile",
    "dataset_availability",
    "discard_damaged",
    "encode_idx",
    "format_dataset_list",
    "get_spec",
    "is_folder_source",
    "list_datasets",
    "load_npz",
    "load_prepared",
    "parse_idx",
    "prepare_dataset",
    "source_plan",
    "verify_npz",
]
