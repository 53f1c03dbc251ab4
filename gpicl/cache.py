"""The augmentation cache: preprocessed tensors per (dataset, preprocessing spec), and fixed
evaluation task sets per meta-test dataset, so every model is scored on the same sequences."""

from __future__ import annotations

from pathlib import Path

import torch

from gpicl.augment import NUM_CLASSES, PreprocessSpec, preprocess_images, random_dataset_images
from gpicl.io import save_torch

RANDOM_DATASET = "random"


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
) -> None:
    """Fixed evaluation sequences of one meta-test dataset.

    - `seen_draws`: 31-bit integers; a run with a pool of n tasks evaluates seen task
      `draw % n`, so seen ids always lie in that run's pool.
    - `unseen_ids`: negative ids, which training (ids in 0..n-1) never draws.
    - `indices`: (tasks, sequences, length) indices into the test split, shared by the seen,
      unseen and identity evaluations (paired comparison).
    - Random dataset: `images` (tasks, 10, Nx): per task 10 uniform images, one per class;
      `indices` pick which of the 10 appears at each position, and the label is that index.
    """
    gen = torch.Generator().manual_seed(seed)
    evalset = {
        "dataset": dataset,
        "spec": spec.tag,
        "seen_draws": torch.randint(0, 2**31, (num_tasks,), generator=gen),
        "unseen_ids": -torch.arange(1, num_tasks + 1),
    }
    if dataset == RANDOM_DATASET:
        evalset["images"] = random_dataset_images(seed, torch.arange(num_tasks), spec.input_size)
        evalset["indices"] = torch.randint(
            0, NUM_CLASSES, (num_tasks, seqs_per_task, seq_len), generator=gen
        )
    else:
        if num_test is None:
            raise ValueError(f"{dataset}: the size of the test split is needed")
        evalset["indices"] = torch.randint(
            0, num_test, (num_tasks, seqs_per_task, seq_len), generator=gen
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
    return cache["x_test"][idx], cache["y_test"][idx]
