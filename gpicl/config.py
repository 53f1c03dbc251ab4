"""Load and validate params.yaml; resolve the full configuration of one run.

The schema lives in workflow/schemas/params.schema.yaml and is shared with Snakemake, so the
workflow and the CLI reject the same bad params, naming the key, before any compute.
"""

from __future__ import annotations

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


def run_name(experiment: str, train_dataset: str, seed: int) -> str:
    return f"{experiment}/{train_dataset}-s{seed}"


def run_config(params: dict, tier: str, experiment: str, train_dataset: str, seed: int) -> dict:
    """Everything one training run depends on; saved as the run's config.json."""
    t = tier_settings(params, tier)
    train = dict(t["train"])
    if train["num_tasks"] == "unlimited":
        train["num_tasks"] = UNLIMITED_TASKS
    return {
        "name": run_name(experiment, train_dataset, seed),
        "tier": tier,
        "experiment": experiment,
        "train_dataset": train_dataset,
        "seed": seed,
        "task_seed": params["task_seed"],
        "preprocess": dict(t["preprocess"]),
        "model": dict(t["model"]),
        "train": train,
    }
