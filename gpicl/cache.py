"""The augmentation cache: preprocessed tensors per (dataset, preprocessing spec), and fixed
evaluation task sets per meta-test dataset, so every model is scored on the same sequences."""

from __future__ import annotations

from pathlib import Path

import torch

from gpicl.augment import (
    NUM_CLASSES,
    PreprocessSpec,
    distinct_indices,
    preprocess_images,
    random_dataset_images,
)
from gpicl.io import save_torch

RANDOM_DATASET = "random"
SPLITS = ("test", "train")
# A validation set (sequences of the training split, e.g. "mnist_val") is named with this suffix.
VALIDATION_SUFFIX = "_val"
# Its unseen task ids start below the test sets' (-1..-tasks, tasks <= 2^20): disjoint from them.
VALIDATION_TASK_OFFSET = 2**20


def evalset_name(dataset: str, split: str = "test") -> str:
    """The name (and file stem) of an evaluation set: the dataset, "<dataset>_val" for train."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    return dataset + VALIDATION_SUFFIX if split == "train" else dataset


def parse_evalset_name(name: str) -> tuple[str, str]:
    """(dataset, split) of an evaluation set's name (evalset_name's inverse)."""
    if name.endswith(VALIDATION_SUFFIX):
        return name.removesuffix(VALIDATION_SUFFIX), "train"
    return name, "test"


def build_data_cache(
    dataset: str, npz_path: str | Path, spec: PreprocessSpec, out_path: str | Path
) -> None:
    """Preprocess both splits and z-normalise them with the training split's mean and std
    (one scalar each, the per-dataset statistics switch of the authors' code). The cache
    records its dataset and spec, so a reader can refuse one made for something else."""
    from gpicl.data.status import load_prepared

    raw = load_prepared(dataset, npz_path)
    splits = {k: torch.from_numpy(raw[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    x_train = preprocess_images(splits["x_train"], spec)
    mean, std = x_train.mean(), x_train.std()
    cache = {
        "x_train": ((x_train - mean) / std).flatten(1),
        "y_train": splits["y_train"].to(torch.int64),
        "x_test": ((preprocess_images(splits["x_test"], spec) - mean) / std).flatten(1),
        "y_test": splits["y_test"].to(torch.int64),
        "mean": mean,
        "std": std,
        "dataset": dataset,
        "spec": spec.tag,
    }
    save_torch(cache, out_path)


def build_eval_set(
    dataset: str,
    spec: PreprocessSpec,
    num_tasks: int,
    seqs_per_task: int,
    seq_len: int,
    seed: int,
    out_path: str | Path,
    num_test: int | None = None,
    split: str = "test",
) -> None:
    """Fixed evaluation sequences of one meta-test dataset.

    split "train": a validation set (to choose settings on, never on the test sequences):
    indices into the training split (`num_test` is then its size), unseen ids below
    -VALIDATION_TASK_OFFSET (disjoint from the test sets'), and a generator seeded with
    seed x 2^20 + 1 instead of seed. Not for the random dataset (it has no splits).

    - `seen_draws`: 31-bit integers; a run with a pool of n tasks evaluates seen task
      `draw % n`, so seen ids always lie in that run's pool.
    - `unseen_ids`: negative ids, which training (ids in 0..n-1) never draws.
    - `indices`: (tasks, sequences, length) indices into the test split, shared by the seen,
      unseen and identity evaluations (paired comparison); within a sequence all distinct
      (drawn without replacement), so a query never repeats a context image.
    - Random dataset: `images` (tasks, 10, Nx): per task 10 uniform images, one per class;
      `indices` pick which of the 10 appears at each position (with replacement, as the
      authors' jax.random.choice), and the label is that index.
    """
    if split not in SPLITS or (split == "train" and dataset == RANDOM_DATASET):
        raise ValueError(f"{dataset}: no {split!r} split to draw evaluation sequences from")
    offset = VALIDATION_TASK_OFFSET if split == "train" else 0
    gen = torch.Generator().manual_seed(seed if split == "test" else (seed * 2**20 + 1) % 2**63)
    evalset = {
        "dataset": dataset,
        "spec": spec.tag,
        "seen_draws": torch.randint(0, 2**31, (num_tasks,), generator=gen),
        "unseen_ids": -torch.arange(1, num_tasks + 1) - offset,
    }
    if split != "test":
        evalset["split"] = split  # test sets keep their former content
    if dataset == RANDOM_DATASET:
        evalset["images"] = random_dataset_images(
            seed, torch.arange(num_tasks), spec.input_size, spec.channels
        )
        evalset["indices"] = torch.randint(
            0, NUM_CLASSES, (num_tasks, seqs_per_task, seq_len), generator=gen
        )
    else:
        if num_test is None:
            raise ValueError(f"{dataset}: the size of the test split is needed")
        if seq_len > num_test:
            raise ValueError(
                f"{dataset}: a sequence of {seq_len} distinct test images cannot be drawn from a "
                f"test split of {num_test}"
            )
        rows = num_tasks * seqs_per_task
        evalset["indices"] = distinct_indices(num_test, rows, seq_len, gen).view(
            num_tasks, seqs_per_task, seq_len
        )
    save_torch(evalset, out_path)


def eval_inputs(evalset: dict, cache: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocessed inputs (T, S, L, Nx) and labels (T, S, L) of an evaluation set."""
    idx = evalset["indices"]
    if evalset["dataset"] == RANDOM_DATASET:
        images = evalset["images"]  # (T, 10, Nx)
        x = torch.gather(
            images[:, None].expand(-1, idx.shape[1], -1, -1),
            2,
            idx[..., None].expand(-1, -1, -1, images.shape[-1]),
        )
        return x, idx.clone()
    split = evalset.get("split", "test")
    return cache[f"x_{split}"][idx], cache[f"y_{split}"][idx]
