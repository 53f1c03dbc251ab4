"""The result files the pipeline writes, read in one place each, with the checks that make a
malformed file fail here, naming it, rather than in the middle of a figure.

- Evaluation records: the JSON `gpicl.evaluate` writes (results/<tier>/eval/<experiment>/<run>/
  <dataset>.json); `read_eval_results`.
- Training runs: a run folder holds `done.json` (the finish marker with the resolved `train`
  settings and the SHA-256 of its logs), `log.csv` (LOG_COLUMNS, one row per step) and
  `probe.csv` (PROBE_COLUMNS every `probe_every` steps; header only when probing is off); callers
  pass the `done.json` paths and `read_runs` reads the siblings. The plateau end is recomputed
  from `log.csv` with the window and margin the caller gives (params.yaml decides), not taken
  from `done.json`, so changing the rule needs no retraining.
- Dataset availability records of `gpicl.data.dataset_availability`; `load_unavailable`.

No torch and no matplotlib here: `gpicl.train` takes its log columns from this module, and
figures import it without loading either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpicl.io import damaged, read_json, sha256_file
from gpicl.metrics import PLATEAU_MARGIN, PLATEAU_WINDOW, plateau_length, trailing_mean

# distinct_examples: the curriculum's K at that step; 0 means i.i.d. sequences.
LOG_COLUMNS = ("step", "loss", "accuracy", "grad_norm", "distinct_examples")
PROBE_COLUMNS = ("step", "unseen_accuracy", "task0_accuracy")

EVAL_KEYS = (
    "run",
    "train_dataset",
    "dataset",
    "seed",
    "tier",
    "method",
    "curriculum",
    "sequence_length",
    "task_sets",
)
TASK_SET_KEYS = ("num_tasks", "num_sequences", "accuracy", "loss", "correct_last")
# A (number of tasks x model size) sweep: its task sets and its keys beyond EVAL_KEYS.
SWEEP_TASK_SETS = ("seen", "unseen")
SWEEP_KEYS = ("model_size", "num_tasks")

DONE_KEYS = ("name", "finished", "seed", "variant", "train")
TRAIN_KEYS = ("steps", "tasks_per_step", "seqs_per_task")
# Settings that change what is written, not how the model trains.
NON_TRAINING_SETTINGS = ("checkpoint_every", "probe_every")
# Defaults of settings that older run configs may lack.
SETTING_DEFAULTS: dict[str, Any] = {"bias_fraction": 0.0, "curriculum": None}


def read_eval_results(
    paths: Iterable[str | os.PathLike],
    task_set: str,
    *more_task_sets: str,
    keys: Sequence[str] = (),
) -> list[tuple[Path, dict[str, Any]]]:
    """Evaluation records as (path, record), checked for EVAL_KEYS, for each task set named (its
    TASK_SET_KEYS, one accuracy per position) and for the extra `keys` the caller needs."""
    results = []
    for path in map(Path, paths):
        record = read_json(path)
        _check_eval_record(path, record, (task_set, *more_task_sets))
        missing = [key for key in keys if key not in record]
        if missing:
            raise ValueError(f"{path}: evaluation file lacks keys {missing}")
        results.append((path, record))
    return results


def _check_eval_record(path: Path, record: dict, task_sets: Sequence[str]) -> None:
    missing = [key for key in EVAL_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: evaluation record lacks keys {missing}")
    for name in task_sets:
        if name not in record["task_sets"]:
            raise ValueError(f"{path}: evaluation record has no task set {name!r}")
        stats = record["task_sets"][name]
        missing = [key for key in TASK_SET_KEYS if key not in stats]
        if missing:
            raise ValueError(f"{path}: task set {name!r} lacks keys {missing}")
        if len(stats["accuracy"]) != record["sequence_length"]:
            raise ValueError(
                f"{path}: {name} accuracy has {len(stats['accuracy'])} positions, "
                f"sequence_length is {record['sequence_length']}"
            )


def read_baseline_results(
    paths: Iterable[str | os.PathLike], task_set: str = "unseen"
) -> list[tuple[Path, dict[str, Any]]]:
    """The reference learners' records (`gpicl.baselines`: one file per meta-test dataset, one
    evaluation record per learner, seed 0), as (path, record) like read_eval_results."""
    results = []
    for path in map(Path, paths):
        data = read_json(path)
        if data.get("kind") != "baselines" or not isinstance(data.get("records"), list):
            raise ValueError(f"{path}: not a baselines file (gpicl baselines)")
        for record in data["records"]:
            _check_eval_record(path, record, [task_set])
            results.append((path, record))
    return results


def check_correct_last(path: Path, record: dict, task_set: str) -> None:
    """`correct_last / num_sequences` must be the last accuracy: catches a mislabelled file
    where a figure uses the counts (intervals, pooling over seeds)."""
    stats = record["task_sets"][task_set]
    if abs(stats["correct_last"] / stats["num_sequences"] - stats["accuracy"][-1]) > 1e-5:
        raise ValueError(
            f"{path}: {task_set} correct_last/num_sequences = {stats['correct_last']}/"
            f"{stats['num_sequences']} disagrees with the last accuracy {stats['accuracy'][-1]}"
        )


def log2_tasks(num_tasks: int, path: Path | str = "") -> int:
    """k for a task pool of 2^k tasks; other pool sizes have no row in the paper's figures."""
    n = int(num_tasks)
    if n < 1 or n & (n - 1):
        raise ValueError(f"{path}: num_tasks {num_tasks} is not a power of two")
    return n.bit_length() - 1


def read_sweep_results(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, dict]]:
    """Evaluation records of a (number of tasks x model size) sweep: both task sets, the sweep
    keys, and a task pool of 2^k tasks."""
    results = read_eval_results(paths, *SWEEP_TASK_SETS, keys=SWEEP_KEYS)
    for path, record in results:
        log2_tasks(record["num_tasks"], path)
    return results


def load_unavailable(status_files: Iterable[str | os.PathLike]) -> dict[str, str]:
    """dataset -> reason from JSON records of `gpicl.data.dataset_availability`
    ({"dataset", "available", "reason", ...}); available ones are left out."""
    unavailable = {}
    for path in sorted(Path(p) for p in status_files):
        record = read_json(path)
        if not record["available"]:
            unavailable[record["dataset"]] = record["reason"] or "no source could deliver it"
    return unavailable


@dataclass(frozen=True, eq=False)
class Run:
    """One finished run: its settings, its per-step log and probe rows, and its plateau end."""

    path: Path  # the done.json
    done: Mapping[str, Any]  # its content
    name: str
    seed: int
    variant: str | None
    train: Mapping[str, Any]  # done.json's train settings, SETTING_DEFAULTS filled in
    batch_size: int  # sequences per step: tasks_per_step x seqs_per_task
    steps: int  # the step budget (train.steps)
    log: pd.DataFrame  # LOG_COLUMNS, one row per step
    probe: pd.DataFrame  # PROBE_COLUMNS, possibly no rows
    plateau_step: int | None  # None: still on the plateau at the last step (censored)

    @property
    def censored(self) -> bool:
        return self.plateau_step is None

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def last_step(self) -> int:
        return int(self.log["step"].iloc[-1]) if len(self.log) else 0

    def trailing_loss(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, `window`-step trailing mean of the loss): the curve the plateau rule tests,
        from the first full window on."""
        steps = self.log["step"].to_numpy()
        smoothed = trailing_mean(self.log["loss"].to_numpy(dtype=np.float64), window)
        return steps[len(steps) - len(smoothed) :], smoothed


def _read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: {what} lacks columns {missing}")
    steps = frame["step"].to_numpy()
    if len(steps) > 1 and not np.all(np.diff(steps) > 0):
        raise ValueError(f"{path}: {what} steps are not strictly increasing")
    return frame


def read_run(
    done_path: str | os.PathLike, window: int = PLATEAU_WINDOW, margin: float = PLATEAU_MARGIN
) -> Run:
    """Read one finished run; errors name the file when the run is unfinished or incomplete."""
    done_path = Path(done_path)
    if not done_path.is_file():
        raise FileNotFoundError(f"{done_path}: no done.json (run not finished?)")
    done = read_json(done_path)
    missing = [k for k in DONE_KEYS if k not in done]
    if missing:
        raise ValueError(f"{done_path}: done.json lacks keys {missing}")
    if not done["finished"]:
        raise ValueError(
            f"{done_path}: unfinished run {done['name']} "
            f"({done.get('steps_done')} of {done['train'].get('steps')} steps)"
        )
    train = {**SETTING_DEFAULTS, **done["train"]}
    missing = [k for k in TRAIN_KEYS if k not in train]
    if missing:
        raise ValueError(f"{done_path}: done.json train settings lack {missing}")

    log_path = done_path.with_name("log.csv")
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: missing training log of run {done['name']}")
    # Training records the content hashes of its logs in done.json; a changed log is damage.
    for name, digest in done.get("sha256", {}).items():
        path = done_path.with_name(name)
        if name.endswith(".csv") and path.is_file() and sha256_file(path) != digest:
            raise damaged(path, f"content does not match the SHA-256 in {done_path}")
    log = _read_csv(log_path, LOG_COLUMNS, "training log")
    steps_done = done.get("steps_done", train["steps"])
    last = int(log["step"].iloc[-1]) if len(log) else 0
    if last != steps_done:
        raise ValueError(f"{log_path}: log ends at step {last}, done.json says {steps_done}")

    probe_path = done_path.with_name("probe.csv")
    if probe_path.is_file():
        probe = _read_csv(probe_path, PROBE_COLUMNS, "probe log")
    elif train.get("probe_every"):
        raise FileNotFoundError(
            f"{probe_path}: missing, but run {done['name']} probes every "
            f"{train['probe_every']} steps"
        )
    else:
        probe = pd.DataFrame({c: pd.Series(dtype="float64") for c in PROBE_COLUMNS})

    plateau = plateau_length(
        log["loss"].to_numpy(), log["step"].to_numpy(), window=window, margin=margin
    )
    return Run(
        path=done_path,
        done=done,
        name=str(done["name"]),
        seed=int(done["seed"]),
        variant=done["variant"],
        train=train,
        batch_size=int(train["tasks_per_step"]) * int(train["seqs_per_task"]),
        steps=int(train["steps"]),
        log=log,
        probe=probe,
        plateau_step=plateau,
    )


def compute_minutes(done_path: str | os.PathLike) -> tuple[float, float]:
    """(CPU-minutes, wall-minutes) of a finished run's training, over every call that trained
    it (timing.json beside its done.json)."""
    timing_path = Path(done_path).with_name("timing.json")
    if not timing_path.is_file():
        raise FileNotFoundError(f"{timing_path}: missing; the run's training time is unknown")
    timing = read_json(timing_path)
    if "cpu_seconds_total" not in timing:
        raise ValueError(f"{timing_path}: no cpu_seconds_total (written before it was recorded)")
    return timing["cpu_seconds_total"] / 60, timing["wall_seconds_total"] / 60


def read_runs(
    done_paths: Iterable[str | os.PathLike],
    window: int = PLATEAU_WINDOW,
    margin: float = PLATEAU_MARGIN,
) -> list[Run]:
    """Read finished runs, sorted by name; the same run twice (by name, or by seed and identical
    training settings) is an error, since a figure would count it twice."""
    runs = [read_run(p, window, margin) for p in done_paths]
    by_name: dict[str, Run] = {}
    by_settings: dict[tuple, Run] = {}
    for run in runs:
        if run.name in by_name:
            raise ValueError(f"duplicate run {run.name}: {by_name[run.name].path} and {run.path}")
        by_name[run.name] = run
        key = (run.seed, settings_key(run.train))
        if key in by_settings:
            raise ValueError(
                f"duplicate runs: {by_settings[key].path} and {run.path} have seed {run.seed} "
                "and identical training settings"
            )
        by_settings[key] = run
    return sorted(runs, key=lambda r: (r.name, r.seed))


def _canonical(value: Any) -> Any:
    """Numbers as floats (so 0 and 0.0 compare equal), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def training_settings(train: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that shape training (no output-only knobs), defaults filled in."""
    merged = {**SETTING_DEFAULTS, **train}
    return {k: _canonical(v) for k, v in merged.items() if k not in NON_TRAINING_SETTINGS}


def settings_key(train: Mapping[str, Any]) -> str:
    """A hashable, order-independent key: runs with equal keys differ only in seed."""
    return json.dumps(training_settings(train), sort_keys=True)


def group_by_settings(runs: Iterable[Run]) -> list[list[Run]]:
    """Runs that differ only in seed, each group sorted by seed; groups in first-seen order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(settings_key(run.train), []).append(run)
    return [sorted(g, key=lambda r: r.seed) for g in groups.values()]
