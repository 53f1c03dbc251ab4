"""Finished meta-training runs as the meta-optimisation figures read them.

A run folder holds `done.json` (the finish marker with the resolved `train` settings), `log.csv`
(one row per step: step, loss, accuracy, grad_norm, distinct_examples) and `probe.csv` (step,
unseen_accuracy, task0_accuracy every `probe_every` steps; header only when probing is off).
Figures receive the `done.json` paths and `read_runs` reads the siblings.

The plateau end is recomputed from `log.csv` with the window and margin the figure is given
(params.yaml decides), not taken from `done.json`, so changing the rule needs no retraining.
`settings_difference` names what sets a run apart from a reference run, for labels.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpicl.io import damaged, read_json, sha256_file
from gpicl.metrics import CHANCE_LOSS, plateau_length

# The columns gpicl.train writes (train.LOG_COLUMNS; not imported, to keep torch out of figures).
LOG_COLUMNS = ("step", "loss", "accuracy", "grad_norm", "distinct_examples")
PROBE_COLUMNS = ("step", "unseen_accuracy", "task0_accuracy")
DONE_KEYS = ("name", "finished", "seed", "variant", "train")
TRAIN_KEYS = ("steps", "tasks_per_step", "seqs_per_task")
# Settings that change what is written, not how the model trains.
NON_TRAINING_SETTINGS = ("checkpoint_every", "probe_every")
# Defaults of settings that older run configs may lack.
SETTING_DEFAULTS: dict[str, Any] = {"bias_fraction": 0.0, "curriculum": None}
# Order in which differences are listed and variants sorted: the paper's levers first.
SETTING_ORDER = (
    "batch",
    "tasks_per_step",
    "seqs_per_task",
    "eps",
    "eps_root",
    "bias_fraction",
    "curriculum",
    "lr",
    "num_tasks",
    "seq_len",
    "steps",
    "amp",
    "amp_cpu",
)


@dataclass(frozen=True, eq=False)
class Run:
    """One finished run: its settings, its per-step log and probe rows, and its plateau end."""

    path: Path  # the done.json
    name: str
    seed: int
    variant: str | None
    train: Mapping[str, Any]
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


def _read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: {what} lacks columns {missing}")
    steps = frame["step"].to_numpy()
    if len(steps) > 1 and not np.all(np.diff(steps) > 0):
        raise ValueError(f"{path}: {what} steps are not strictly increasing")
    return frame


def read_run(done_path: str | os.PathLike, window: int = 25, margin: float = 0.05) -> Run:
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


def read_runs(
    done_paths: Iterable[str | os.PathLike], window: int = 25, margin: float = 0.05
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


def format_number(value: float) -> str:
    """Short and exact enough for labels: 0.3, 1e-8, 0, 3e-4."""
    text = f"{float(value):.3g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2), text)


def format_tasks(num_tasks: float) -> str:
    n = int(num_tasks)
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def _curriculum_text(curriculum: Mapping[str, Any] | None, other: Mapping | None) -> str:
    if not curriculum:
        return "no curriculum"
    start = int(curriculum["start_examples"])
    text = f"curriculum K={start}.."
    if other and int(other["start_examples"]) == start:
        text += f" hold {int(curriculum['hold_steps'])} anneal {int(curriculum['anneal_steps'])}"
    return text


def setting_differences(
    train: Mapping[str, Any], reference: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(setting, label text) for each training setting where `train` differs from `reference`,
    in SETTING_ORDER (then alphabetical); the batch split counts as one setting, "batch"."""
    run, ref = training_settings(train), training_settings(reference)
    keys = sorted(
        set(run) | set(ref),
        key=lambda k: (SETTING_ORDER.index(k) if k in SETTING_ORDER else len(SETTING_ORDER), k),
    )
    out: list[tuple[str, str]] = []
    for key in keys:
        value, ref_value = run.get(key), ref.get(key)
        if value == ref_value:
            continue
        if key in ("tasks_per_step", "seqs_per_task"):
            if out and out[-1][0] == "batch":
                continue
            tasks, seqs = int(run["tasks_per_step"]), int(run["seqs_per_task"])
            text = f"batch {tasks * seqs}"
            if seqs != int(ref["seqs_per_task"]):
                text += f" ({tasks}x{seqs})"
            out.append(("batch", text))
        elif key == "curriculum":
            out.append((key, _curriculum_text(value, ref_value)))
        elif key == "num_tasks":
            out.append((key, f"tasks {format_tasks(value)}"))
        elif key in ("amp", "amp_cpu"):
            out.append((key, f"{key} {'on' if value else 'off'}"))
        elif isinstance(value, float):
            out.append((key, f"{key}={format_number(value)}"))
        else:
            out.append((key, f"{key}={value}"))
    return out


def difference_sort_key(train: Mapping[str, Any], reference: Mapping[str, Any]) -> tuple:
    """Orders variants by the lever they turn (SETTING_ORDER), then by its value."""
    run = training_settings(train)
    key = []
    for setting, text in setting_differences(train, reference):
        rank = SETTING_ORDER.index(setting) if setting in SETTING_ORDER else len(SETTING_ORDER)
        if setting == "batch":
            value = float(run["tasks_per_step"]) * float(run["seqs_per_task"])
        else:
            value = run.get(setting)
        if isinstance(value, float):
            key.append((rank, 0, value, text))
        else:
            key.append((rank, 1, 0.0, text))
    return tuple(key)


def settings_difference(train: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """How `train` differs from `reference`, e.g. "eps_root=0, batch 256"; "" when it does not."""
    return ", ".join(text for _, text in setting_differences(train, reference))


def describe_settings(train: Mapping[str, Any], omit_batch: bool = False) -> str:
    """The settings a title names: batch, tasks, lr, Adam eps / eps_root, bias, curriculum."""
    s = training_settings(train)
    parts = []
    if not omit_batch:
        parts.append(
            f"batch {int(s['tasks_per_step']) * int(s['seqs_per_task'])} "
            f"({int(s['tasks_per_step'])} tasks x {int(s['seqs_per_task'])})"
        )
    if "num_tasks" in s:
        parts.append(f"tasks {format_tasks(s['num_tasks'])}")
    for key in ("lr", "eps", "eps_root"):
        if key in s:
            parts.append(f"{key} {format_number(s[key])}")
    if s.get("bias_fraction"):
        parts.append(f"bias_fraction {format_number(s['bias_fraction'])}")
    if s.get("curriculum"):
        parts.append(_curriculum_text(s["curriculum"], None))
    return ", ".join(parts)


def group_by_settings(runs: Iterable[Run]) -> list[list[Run]]:
    """Runs that differ only in seed, each group sorted by seed; groups in first-seen order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(settings_key(run.train), []).append(run)
    return [sorted(g, key=lambda r: r.seed) for g in groups.values()]


def reference_group(runs: Sequence[Run], reference_variant: str | None, what: str) -> list[Run]:
    """The runs of `reference_variant`; they must share their training settings."""
    selected = [r for r in runs if r.variant == reference_variant]
    if not selected:
        found = sorted({str(r.variant) for r in runs})
        raise ValueError(
            f"{what}: no run of reference variant {reference_variant!r} among {len(runs)} runs "
            f"(variants: {', '.join(found) or 'none'})"
        )
    groups = group_by_settings(selected)
    if len(groups) > 1:
        diff = settings_difference(groups[1][0].train, groups[0][0].train)
        raise ValueError(
            f"{what}: runs of reference variant {reference_variant!r} differ in training "
            f"settings ({groups[0][0].name} vs {groups[1][0].name}: {diff})"
        )
    return groups[0]


def trailing_mean(run: Run, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean of the last `window` losses): the curve `metrics.plateau_length` tests,
    defined from the first full window on."""
    losses = run.log["loss"].to_numpy(dtype=np.float64)
    steps = run.log["step"].to_numpy()
    if len(losses) < window:
        return steps[:0], losses[:0]
    smoothed = np.convolve(losses, np.full(window, 1.0 / window), mode="valid")
    return steps[window - 1 :], smoothed


def plateau_rule(window: int, margin: float) -> str:
    """The plateau-end rule in words, for titles."""
    return (
        f"plateau end: first step where the {window}-step trailing mean of the loss is "
        f"<= ln 10 - {margin:g} = {CHANCE_LOSS - margin:.3f}"
    )


def censored_mean(values: Sequence[float], censored: Sequence[bool]) -> tuple[float, bool]:
    """Mean with censored runs counted at their budget: a lower bound when any is censored."""
    if not len(values):
        return math.nan, False
    return float(np.mean(values)), bool(any(censored))
