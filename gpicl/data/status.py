"""What datasets exist, where each can come from, and which are prepared: `gpicl data --list`,
and the availability record the workflow keeps for a dataset no source could deliver."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from gpicl.data.prepare import (
    prepare_dataset,
    running_in_ci,
    source_plan,
    verify_npz,
)
from gpicl.data.registry import ARRAY_KEYS, DATASETS, get_spec
from gpicl.data.sources import OFFLINE_SOURCES, DatasetUnavailableError, folder_candidates
from gpicl.io import IntegrityError, read_json, sha256_file


def npz_path(name: str, datasets_dir: str | os.PathLike = "resources/datasets") -> Path:
    return Path(datasets_dir) / f"{name}.npz"


def status_path_of(npz: str | os.PathLike) -> Path:
    """The availability record written beside a prepared dataset (`<name>.status.json`)."""
    npz = Path(npz)
    return npz.with_name(npz.name.removesuffix(".npz") + ".status.json")


def _discard(npz: Path, problem: str) -> IntegrityError:
    """Remove a damaged dataset and its record, so the next workflow run prepares it again."""
    npz.unlink(missing_ok=True)
    status_path_of(npz).unlink(missing_ok=True)
    return IntegrityError(
        f"{npz}: {problem}; it and its status record were removed: the next "
        "`snakemake --cores all` prepares the dataset again"
    )


def dataset_problem(name: str, npz: str | os.PathLike) -> str | None:
    """Why a prepared dataset cannot be trusted (its record damaged, the .npz missing or not the
    bytes the record hashed), or None. Raises DatasetUnavailableError for a dataset whose
    record says no source could deliver it. A dataset without a record (prepared by hand) is
    not judged here."""
    npz = Path(npz)
    record_path = status_path_of(npz)
    if not record_path.is_file():
        if not npz.is_file():
            raise FileNotFoundError(f"{npz}: no such dataset file; run `gpicl data {name}`")
        return None
    try:
        record = read_json(record_path)
    except IntegrityError as err:
        return f"its status record is damaged ({err.args[0].split(';')[0]})"
    if record.get("dataset") != name:
        return f"its status record {record_path} is of {record.get('dataset')!r}"
    if not record.get("available"):
        raise DatasetUnavailableError(
            f"dataset {name} is needed but unavailable: {record.get('reason')} "
            f"({record_path}; see `gpicl data --list`)",
            dataset=name,
            reason=record.get("reason"),
        )
    if not npz.is_file():
        return "missing, though its status record says it was prepared"
    if sha256_file(npz) != record.get("sha256"):
        return f"content does not match the SHA-256 in {record_path}"
    return None


def check_prepared(name: str, npz: str | os.PathLike) -> None:
    """Raise IntegrityError, after removing the dataset and its record so that the next
    workflow run prepares it again, when `dataset_problem` finds one."""
    problem = dataset_problem(name, npz)
    if problem is not None:
        raise _discard(Path(npz), problem)


def load_prepared(name: str, npz: str | os.PathLike) -> dict:
    """The arrays of a prepared dataset, after `check_prepared`; errors name the file."""
    check_prepared(name, npz)
    try:
        with np.load(npz, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        problem = f"not a readable dataset ({type(err).__name__}: {err})"
        if status_path_of(npz).is_file():  # ours: prepare it again; a hand-made file is kept
            raise _discard(Path(npz), problem) from err
        raise ValueError(f"{npz}: {problem}") from err
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{npz}: not a prepared dataset (lacks arrays {missing})")
    return arrays


def discard_damaged(
    datasets_dir: str | os.PathLike = "resources/datasets", dry_run: bool = False
) -> list[str]:
    """Remove every prepared dataset whose record is damaged or whose .npz no longer matches
    it, so that this workflow run prepares it again (with dry_run, only report); one message
    per dataset. The workflow calls this before it plans anything."""
    messages = []
    for record_path in sorted(Path(datasets_dir).glob("*.status.json")):
        name = record_path.name.removesuffix(".status.json")
        npz = npz_path(name, datasets_dir)
        try:
            problem = dataset_problem(name, npz)
        except DatasetUnavailableError:
            continue  # recorded as unavailable: nothing to repair
        if problem is None:
            continue
        if not dry_run:
            npz.unlink(missing_ok=True)
            record_path.unlink(missing_ok=True)
        action = "would be prepared again" if dry_run else "removed; it is prepared again"
        messages.append(f"{npz}: {problem}: {action}")
    return messages


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
    return {
        "dataset": name,
        "available": True,
        "path": str(path),
        "reason": None,
        "sha256": sha256_file(path),  # checked by every reader (check_prepared)
    }
