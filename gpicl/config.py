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
from gpicl.models import MODEL_SOURCES, SIZE_FIELD

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
#   <dataset>[-<model><size>[-k<key size>][-l<layers>]][-v<variant>][-t<log2 tasks>]-s<seed>
# e.g. mnist-s0 (the tier's Transformer), mnist-transformer64-t16-s1, mnist-lstm128-s0,
# mnist-transformer64-k4-l1-s0 (key size and layers: Transformers only), mnist-vb256-t12-s0
# (training settings of variant b256 of the experiment's grid for the tier, 2^12 tasks).
# `<model><size>[-k..][-l..]` alone is a model spec, as listed in params.yaml's grids.
MODEL_SPEC = (
    r"(?P<model>" + "|".join(sorted(MODEL_SOURCES, key=len, reverse=True)) + r")(?P<size>\d+)"
    r"(?:-k(?P<key_size>\d+))?(?:-l(?P<layers>\d+))?"
)
RUN_NAME = re.compile(
    r"^(?P<dataset>[a-z0-9_]+)"
    rf"(?:-{MODEL_SPEC})?"
    r"(?:-v(?P<variant>[a-z0-9_]+))?"
    r"(?:-t(?P<log2_tasks>\d+))?"
    r"-s(?P<seed>\d+)$"
)
_INT_PARTS = ("seed", "size", "key_size", "layers", "log2_tasks")


def run_name(
    dataset: str,
    seed: int,
    model: str | None = None,
    size: int | None = None,
    log2_tasks: int | None = None,
    spec: str | None = None,
    variant: str | None = None,
) -> str:
    """The run's name; `spec` (e.g. "transformer64-k4") stands for model and size."""
    name = dataset
    if spec is not None:
        name += f"-{spec}"
    elif model is not None:
        name += f"-{model}{size}"
    if variant is not None:
        name += f"-v{variant}"
    if log2_tasks is not None:
        name += f"-t{log2_tasks}"
    name += f"-s{seed}"
    parse_run_name(name)  # a spec must read as one
    return name


def parse_run_name(run: str) -> dict:
    match = RUN_NAME.match(run)
    if not match:
        raise ParamsError(
            f"run name {run!r} does not read "
            "<dataset>[-<model><size>[-k<key size>][-l<layers>]][-v<variant>][-t<k>]-s<seed> "
            f"(models: {', '.join(MODEL_SOURCES)})"
        )
    parts = match.groupdict()
    if parts["model"] not in (None, "transformer") and (parts["key_size"] or parts["layers"]):
        raise ParamsError(f"run name {run!r}: -k and -l apply to Transformers only")
    return {
        key: (int(value) if key in _INT_PARTS and value is not None else value)
        for key, value in parts.items()
    }


def run_config(params: dict, tier: str, experiment: str, run: str) -> dict:
    """Everything one training run depends on (saved as its config.json): the tier's defaults,
    overridden by what the run's name fixes (model type and size, number of tasks)."""
    t = tier_settings(params, tier)
    parsed = parse_run_name(run)
    train = dict(t["train"])
    model = dict(t["model"])
    kind = parsed["model"]
    if kind == "mlp":
        model = {"type": "mlp", "hidden_size": parsed["size"]}
    elif kind not in (None, "transformer"):
        # Table 1's other methods: model and training settings of the tier's `methods` block.
        if kind not in t.get("methods", {}):
            raise ParamsError(f"run {run!r}: tiers.{tier}.methods has no entry {kind!r}")
        method = t["methods"][kind]
        model = {"type": kind, **method["model"]}
        train.update(method.get("train", {}))
        if kind == "sgd":
            model["init_seed"] = parsed["seed"]  # fresh networks drawn from the run's seed
    if kind is not None:
        model[SIZE_FIELD[kind]] = parsed["size"]
    for field in ("key_size", "layers"):
        if parsed[field] is not None:
            model[field] = parsed[field]
    extra = {}
    if parsed["variant"] is not None:
        # Training settings of a named variant of the experiment's grid (meta-optimisation).
        grid = params["experiments"].get(experiment, {}).get("grids", {}).get(tier, {})
        variants = grid.get("variants", {})
        if parsed["variant"] not in variants:
            raise ParamsError(
                f"run {run!r}: experiments.{experiment}.grids.{tier}.variants has no "
                f"{parsed['variant']!r} (has: {', '.join(variants) or 'none'})"
            )
        train.update(grid.get("base", {}))
        train.update(variants[parsed["variant"]])
        extra["variant"] = parsed["variant"]
    if parsed["log2_tasks"] is not None:
        train["num_tasks"] = 2 ** parsed["log2_tasks"]
    if train["num_tasks"] == "unlimited":
        train["num_tasks"] = UNLIMITED_TASKS
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
        **extra,
    }
