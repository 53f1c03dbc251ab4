"""Load and validate params.yaml; resolve the full configuration of one run.

The schema lives in workflow/schemas/params.schema.yaml and is shared with Snakemake, so the
workflow and the CLI reject the same bad params, naming the key, before any compute.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml

from gpicl.augment import UNLIMITED_TASKS, PreprocessSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ValueError):
    pass


def validate_params(params: dict, source: str = "params.yaml") -> dict:
    """Raise ParamsError naming the offending key (e.g. tiers.cpu.train.lr) if invalid."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {key}: {err.message}")
        raise ParamsError(f"{source} is invalid:\n" + "\n".join(lines))
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    with path.open() as f:
        params = yaml.safe_load(f)
    return validate_params(params, str(path))


def tier_settings(params: dict, tier: str | None = None) -> dict:
    return params["tiers"][tier or params["tier"]]


def preprocess_spec(tier_cfg: dict) -> PreprocessSpec:
    return PreprocessSpec(**tier_cfg["preprocess"])


# A run's name says everything that differs from its tier's defaults:
#   <dataset>[-<model><size>][-t<log2 tasks>]-s<seed>, e.g. mnist-s0, mnist-transformer64-t16-s1
RUN_NAME = re.compile(
    r"^(?P<dataset>[a-z0-9_]+)"
    r"(?:-(?P<model>transformer|mlp)(?P<size>\d+))?"
    r"(?:-t(?P<log2_tasks>\d+))?"
    r"-s(?P<seed>\d+)$"
)


def run_name(
    dataset: str,
    seed: int,
    model: str | None = None,
    size: int | None = None,
    log2_tasks: int | None = None,
) -> str:
    name = dataset
    if model is not None:
        name += f"-{model}{size}"
    if log2_tasks is not None:
        name += f"-t{log2_tasks}"
    return f"{name}-s{seed}"


def parse_run_name(run: str) -> dict:
    match = RUN_NAME.match(run)
    if not match:
        raise ParamsError(
            f"run name {run!r} does not read <dataset>[-<model><size>][-t<k>]-s<seed>"
        )
    parts = match.groupdict()
    return {
        "dataset": parts["dataset"],
        "seed": int(parts["seed"]),
        "model": parts["model"],
        "size": None if parts["size"] is None else int(parts["size"]),
        "log2_tasks": None if parts["log2_tasks"] is None else int(parts["log2_tasks"]),
    }


def run_config(params: dict, tier: str, experiment: str, run: str) -> dict:
    """Everything one training run depends on (saved as its config.json): the tier's defaults,
    overridden by what the run's name fixes (model type and size, number of tasks)."""
    t = tier_settings(params, tier)
    parsed = parse_run_name(run)
    train = dict(t["train"])
    model = dict(t["model"])
    if parsed["log2_tasks"] is not None:
        train["num_tasks"] = 2 ** parsed["log2_tasks"]
    if train["num_tasks"] == "unlimited":
        train["num_tasks"] = UNLIMITED_TASKS
    if parsed["model"] == "transformer":
        model["width"] = parsed["size"]
    elif parsed["model"] == "mlp":
        model = {"type": "mlp", "hidden_size": parsed["size"]}
    return {
        "name": f"{experiment}/{run}",
        "tier": tier,
        "experiment": experiment,
        "train_dataset": parsed["dataset"],
        "seed": parsed["seed"],
        "task_seed": params["task_seed"],
        "preprocess": dict(t["preprocess"]),
        "model": model,
        "train": train,
    }
