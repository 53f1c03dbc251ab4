"""What datasets exist, where each can come from, and which are prepared: `gpicl data --list`,
and the availability record the workflow keeps for a dataset no source could deliver."""

from __future__ import annotations

import os
from pathlib import Path

from gpicl.data.prepare import (
    prepare_dataset,
    running_in_ci,
    source_plan,
    verify_npz,
)
from gpicl.data.registry import DATASETS, get_spec
from gpicl.data.sources import OFFLINE_SOURCES, DatasetUnavailableError, folder_candidates


def npz_path(name: str, datasets_dir: str | os.PathLike = "resources/datasets") -> Path:
    return Path(datasets_dir) / f"{name}.npz"


def _would_try(name: str, source: str | os.PathLike) -> list[str]:
    """The sources `prepare_dataset(name, source=source)` would try, in order."""
    spec = get_spec(name)
    kinds = source_plan(source)
    tried = []
    for kind in kinds:
        if kind == "offline" and spec.offline_source is None:
            continue
        if kind == "folder":
            has_all = all(
                any((d / f.name).is_file() for d in folder_candidates(spec, source))
                for f in spec.files.values()
            )
            if not has_all:
                continue
        tried.append(kind)
    return tried


def list_datasets(
    datasets_dir: str | os.PathLike = "resources/datasets",
    source: str | os.PathLike = "auto",
) -> list[dict]:
    """One row per registered dataset, in registry order; nothing is downloaded.

    Keys: name, title, sources (kinds that exist for it: "canonical", "offline"), canonical
    (base URLs), offline (description or None), would_try (what `source` would try here:
    "download", "offline", "folder"; a folder counts only if it holds every file by name), path
    (of the .npz), present, verified (None when absent; the quick header check of `verify_npz`),
    problem (why verification failed, else None). Raises ValueError for a folder source that does
    not exist.
    """
    source_plan(source)  # a bad source is an error once, not one per row
    rows = []
    for name, spec in DATASETS.items():
        path = npz_path(name, datasets_dir)
        present = path.is_file()
        verified, problem = None, None
        if present:
            try:
                verify_npz(name, path, quick=True)
                verified = True
            except ValueError as err:
                verified, problem = False, str(err)
        offline = spec.offline_source
        rows.append(
            {
                "name": name,
                "title": spec.title,
                "sources": ["canonical"] + (["offline"] if offline is not None else []),
                "canonical": list(spec.base_urls),
                "offline": OFFLINE_SOURCES[offline].description if offline is not None else None,
                "would_try": _would_try(name, source),
                "path": str(path),
                "present": present,
                "verified": verified,
                "problem": problem,
            }
        )
    return rows


def format_dataset_list(rows: list[dict], source: str | os.PathLike | None = None) -> str:
    """A fixed-width table of `list_datasets` rows, then the offline sources it mentions."""
    header = ("dataset", "sources", "would try", "prepared .npz")
    if source is not None:
        note = " (CI: canonical skipped)" if source == "auto" and running_in_ci() else ""
        header = (*header[:2], f"source={os.fspath(source)}{note}", header[3])
    table = [header]
    for row in rows:
        if not row["present"]:
            state = f"missing ({row['path']})"
        elif row["verified"]:
            state = f"verified ({row['path']})"
        else:
            state = f"INVALID ({row['path']}): {row['problem']}"
        tried = ", ".join(row["would_try"]) or "none: unavailable"
        table.append((row["name"], ", ".join(row["sources"]), tried, state))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [
        ("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]).rstrip()
        for r in table
    ]
    offline = [f"  {row['name']}: {row['offline']}" for row in rows if row["offline"]]
    if offline:
        lines += ["", "offline sources:", *offline]
    return "\n".join(lines) + "\n"


def dataset_availability(
    name: str,
    out_path: str | os.PathLike,
    source: str | os.PathLike = "auto",
    download_dir: str | os.PathLike = "resources/downloads",
    timeout: float = 10.0,
) -> dict:
    """`prepare_dataset`, reporting instead of raising when no source can deliver the dataset.

    Returns {"dataset", "available", "path", "reason"}: available True with the written .npz
    path, or False with the one-line reason of the DatasetUnavailableError (path None; out_path
    untouched). Wrong bytes (ChecksumError), a malformed file, an unknown dataset and a missing
    folder still raise: they need a human, not a "data not available" cell.
    """
    try:
        path = prepare_dataset(
            name, out_path, source=source, download_dir=download_dir, timeout=timeout
        )
    except DatasetUnavailableError as err:
        return {"dataset": name, "available": False, "path": None, "reason": err.reason}
    return {"dataset": name, "available": True, "path": str(path), "reason": None}
