"""Load and validate params.yaml; resolve the full configuration of one run.

The schema lives in gpicl/params.schema.yaml (shipped in the wheel). The CLI and the Snakefile
both validate through validate_params (strict types, bounds, derived sizes) and read the file
through parse_params_file (duplicate keys and YAML errors named with their line), so both reject
the same bad params, naming the key, before any compute.

params.yaml states what the tiers share once, under `defaults`; each `tiers.<name>` holds what
differs. resolve_tiers deep-merges the defaults into every tier; load_params returns the
resolved params, and the Snakefile resolves its `config` the same way, so everything downstream
reads complete tiers.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import yaml

from gpicl.augment import NUM_CLASSES, UNLIMITED_TASKS, PreprocessSpec
from gpicl.models import MODEL_SOURCES, SIZE_FIELD

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")

# Bound on what values allocate together (each value alone is bounded by the schema): one
# tensor, or a model's training state. Fixed, not this machine's memory, so the same params
# validate the same everywhere. 64 GiB fits one large accelerator and is orders of magnitude
# above what the paper tier needs (its largest tensor is well under 1 GiB), so a size above it
# is a typo (an extra digit, 1e12 for 1e2), not a plan, and would fail inside a job.
MAX_TENSOR_BYTES = 64 * 2**30


class ParamsError(ValueError):
    pass


# --------------------------------------------------------------------------- reading the file
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: PyYAML (and so Snakemake) keep
    the last silently while DVC refuses the file, so each would run different params."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_at = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` merges; its keys may be overridden on purpose
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = first_at.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _yaml_error(path: Path, text: str, err: yaml.YAMLError) -> ParamsError:
    """`file:line:col: cause`, one line, in place of PyYAML's multi-line report."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        cause = _one_line(err.problem or err.context or "invalid YAML")
        if err.problem and err.context:
            since = f" from line {err.context_mark.line + 1}" if err.context_mark else ""
            cause += f" ({_one_line(err.context)}{since})"
        where = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        return ParamsError(f"{path}:{where} {cause}")
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        char = err.character if isinstance(err.character, int) else ord(err.character)
        return ParamsError(
            f"{path}:{line}:{column}: unacceptable character #x{char:04x}: {_one_line(err.reason)}"
        )
    return ParamsError(f"{path}: {_one_line(err)}")


def parse_params_file(path: str | Path = "params.yaml") -> dict:
    """The params file as a dict, parsed strictly (no schema): a duplicated key, invalid YAML,
    a binary file or a top level that is no mapping raise ParamsError naming the file (and the
    line), one line, so every entry point (CLI, Snakefile) reports a bad file alike."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ParamsError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(
            f"{path}: not a UTF-8 text file (byte 0x{data[err.start]:02x} at offset "
            f"{err.start}); params must be YAML"
        ) from err
    try:
        params = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        raise _yaml_error(path, text, err) from err
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ParamsError(f"{path}: {_one_line(err)}") from err
    if not isinstance(params, dict):
        found = "empty" if params is None else f"a {type(params).__name__}"
        raise ParamsError(f"{path}: the top level is {found}, not a mapping of params")
    return params


# --------------------------------------------------------------------------- tier defaults
def deep_merge(base, override):
    """`override` over `base`: two mappings merge key by key, recursively; otherwise (a number,
    string, list or None) `override` replaces `base`, so None sets a value and deletes no key.
    Neither argument is modified; the result shares no mutable value with them."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def resolve_tiers(params: dict) -> dict:
    """params with every tier complete: tiers[t] = deep_merge(defaults, tiers[t]), and the
    `defaults` block dropped (it is in every tier now). A copy; params is left as it is.
    Idempotent: resolved params (no `defaults`) come back equal."""
    resolved = copy.deepcopy(params)
    defaults = resolved.pop("defaults", None) or {}
    tiers = resolved.get("tiers")
    if isinstance(defaults, dict) and isinstance(tiers, dict):
        resolved["tiers"] = {name: deep_merge(defaults, block) for name, block in tiers.items()}
    return resolved


# --------------------------------------------------------------------------- schema
def _is_integer(checker, instance) -> bool:
    """An int, not a bool: JSON-schema's "integer" accepts 120.0, which fails later."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker, instance) -> bool:
    """A finite int or float, not a bool: NaN passes every minimum/maximum comparison."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)


@functools.cache
def _schema() -> dict:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    # The run-name grammar is written once, below; the schema's model specs follow it.
    schema["$defs"]["model_spec"]["pattern"] = f"^{unnamed_groups(MODEL_SPEC)}$"
    return schema


def _waive_required(node, defs: dict):
    """A copy of a schema node with every `required` left out, its `$ref`s pointing at copies
    of the definitions treated alike (`#/$defs/<name>` -> `#/$defs/partial-<name>`, added to
    `defs`)."""
    if isinstance(node, list):
        return [_waive_required(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required" and isinstance(value, list):
            continue  # the keyword (a property named "required" would map to a schema)
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            name = value.removeprefix("#/$defs/")
            partial = f"partial-{name}"
            if partial not in defs:
                defs[partial] = {}  # placeholder: a definition that refers to itself ends here
                defs[partial] = _waive_required(defs[name], defs)
            out[key] = f"#/$defs/{partial}"
        else:
            out[key] = _waive_required(value, defs)
    return out


@functools.cache
def _partial_schema() -> dict:
    """The schema of params.yaml as written: `defaults` and each block of `tiers` may leave keys
    out (they are completed by resolve_tiers), but every key given must be known and valid.
    Derived from the schema, so each object is defined once."""
    schema = copy.deepcopy(_schema())
    defs, props = schema["$defs"], schema["properties"]
    props["defaults"] = _waive_required(props["defaults"], defs)
    props["tiers"]["properties"] = _waive_required(props["tiers"]["properties"], defs)
    return schema


def _describe(err: jsonschema.ValidationError) -> str:
    """The error's message; for oneOf/anyOf also why each alternative failed (else a bound
    such as num_tasks' maximum would go unnamed)."""
    inst, types = err.instance, err.validator_value
    if err.validator == "type" and isinstance(inst, float) and not math.isfinite(inst):
        if "number" in ([types] if isinstance(types, str) else types):
            return f"{inst!r} is not a finite number"
    if err.validator in ("oneOf", "anyOf") and err.context:
        reasons = []
        for sub in err.context:
            where = ".".join(str(p) for p in sub.relative_path)
            reason = f"{where}: {_describe(sub)}" if where else _describe(sub)
            if reason not in reasons:
                reasons.append(reason)
        return f"{err.message} ({'; '.join(reasons)})"
    return err.message


def _error_lines(err: jsonschema.ValidationError) -> list[str]:
    """`key: message` of one schema error; a missing or unknown key is named in full (e.g.
    tiers.ci.train.lr), not by the mapping that lacks or holds it."""
    path = [str(p) for p in err.absolute_path]
    inst = err.instance
    if err.validator == "required" and isinstance(inst, dict):
        missing = [k for k in err.validator_value if k not in inst]
        key = next((k for k in missing if err.message.startswith(repr(k))), None)
        if key is not None:
            where = ".".join(path)
            hint = ""
            if len(path) >= 2 and path[0] == "tiers":
                shared = ".".join(["defaults", *path[2:]])
                hint = f" (set it in {where} or {shared})"
            return [f"{'.'.join([*path, key])}: {err.message}{hint}"]
    if err.validator == "additionalProperties" and err.validator_value is False:
        if isinstance(inst, dict):
            known = err.schema.get("properties", {})
            unknown = [k for k in inst if k not in known]
            if unknown:
                allowed = ", ".join(known)
                return [
                    f"{'.'.join([*path, str(k)])}: unknown key (known: {allowed})" for k in unknown
                ]
    return [f"{'.'.join(path) or '(top level)'}: {_describe(err)}"]


def _schema_problems(schema: dict, params: dict) -> list[str]:
    errors = StrictValidator(schema).iter_errors(params)
    lines = []
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        lines += [line for line in _error_lines(err) if line not in lines]
    return lines


def validate_params(params: dict, source: str = "params.yaml") -> dict:
    """Raise ParamsError naming the offending key (e.g. tiers.cpu.train.lr) if invalid: strict
    types and bounds on every value as written (`defaults` and tier blocks may be partial, but
    every key must be known), then every tier complete once the defaults are merged in
    (resolve_tiers), then sizes of what the values allocate together. Returns params as given."""
    lines = _schema_problems(_partial_schema(), params)
    if not lines:
        resolved = resolve_tiers(params)
        lines = _schema_problems(_schema(), resolved)
        if not lines:
            lines = check_sizes(resolved)
    if lines:
        raise ParamsError(f"{source} is invalid:\n" + "\n".join(f"  {line}" for line in lines))
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    """The params file, parsed strictly, validated and resolved (every tier complete, see
    resolve_tiers); ParamsError names file, line or key."""
    return resolve_tiers(validate_params(parse_params_file(path), str(path)))


# --------------------------------------------------------------------------- derived sizes
def _over(what: str, factors: dict[str, int], unit_bytes: int) -> str | None:
    """`what, k1 x k2 x ... x unit = v1 x v2 x ... = N GiB, over the bound`; None within it."""
    total = math.prod(factors.values()) * unit_bytes
    if total <= MAX_TENSOR_BYTES:
        return None
    names = " x ".join(factors)
    values = " x ".join(f"{v:,}" for v in factors.values())
    return (
        f"{what}, {names} x {unit_bytes} bytes = {values} x {unit_bytes} bytes "
        f"= {total / 2**30:,.4g} GiB, over the {MAX_TENSOR_BYTES // 2**30} GiB bound "
        "(gpicl.config.MAX_TENSOR_BYTES)"
    )


def weight_count(model: dict, input_size: int, seq_len: int) -> int:
    """About how many parameters a model has: its weight matrices (biases, norms left out)."""
    kind = model.get("type", "transformer")
    tokens = input_size + NUM_CLASSES
    if kind == "transformer":
        w, attn = model["width"], model["heads"] * model["key_size"]
        per_layer = 4 * w * attn + 2 * model["mlp_ratio"] * w * w  # qkv + out, MLP
        return w * (tokens + seq_len + NUM_CLASSES) + model["layers"] * per_layer
    h = model["hidden_size"]
    if kind == "mlp":
        return h * (input_size + h + NUM_CLASSES)
    if kind == "lstm":
        return h * (tokens + h + 8 * h + NUM_CLASSES)
    if kind == "outer_lstm":
        heads = model["heads"]
        return h * (tokens + h) + (h + heads * h) * heads * 8 * h + heads * h * NUM_CLASSES
    if kind in ("sgd", "maml"):
        return h * (input_size + 1 + NUM_CLASSES)
    if kind == "vsml":
        m = model["message_size"]
        return (2 * (m + 1) + h) * 4 * h + 2 * h * m
    raise ParamsError(f"unknown model type {kind!r}")


def _tier_runs(params: dict, tier: str) -> Iterator[tuple[str, dict]]:
    """(where, run config) of one run of each kind the tier trains: the tier's model, each
    method, each grid point's model, each meta-optimisation variant (as run_config makes them)."""
    t, exps = tier_settings(params, tier), params["experiments"]
    yield f"tiers.{tier}", run_config(params, tier, "fig3", run_name("mnist", 0))
    for method, block in t["methods"].items():
        run = run_name("mnist", 0, method, block["model"][SIZE_FIELD[method]])
        yield f"tiers.{tier}.methods.{method}", run_config(params, tier, "table1", run)
    grid = exps["transitions"]["grids"][tier]
    for key, kind in (("transformer_widths", "transformer"), ("mlp_hidden_sizes", "mlp")):
        for i, size in enumerate(grid[key]):
            run = run_name("mnist", 0, kind, size)
            where = f"experiments.transitions.grids.{tier}.{key}.{i}"
            yield where, run_config(params, tier, "transitions", run)
    for i, spec in enumerate(exps["state_size"]["grids"][tier]["models"]):
        where = f"experiments.state_size.grids.{tier}.models.{i}"
        yield where, run_config(params, tier, "state_size", run_name("mnist", 0, spec=spec))
    compute = exps["compute"]["grids"][tier]
    for i, point in enumerate(compute["points"]):
        where = f"experiments.compute.grids.{tier}.points.{i}"
        yield where, run_config(params, tier, "compute", f"mnist-{point}-s0")
    for variant in exps["metaopt"]["grids"][tier]["variants"]:
        where = f"experiments.metaopt.grids.{tier}.variants.{variant}"
        yield where, run_config(params, tier, "metaopt", run_name("mnist", 0, variant=variant))
    for variant in lr_sweep_variants(params, tier):
        for spec in lr_sweep_specs(params, tier):
            run = run_name("mnist", 0, spec=spec, variant=variant)
            yield f"experiments.table1.lr_sweep.{tier}", run_config(params, tier, LR_SWEEP, run)


def _spec_problems(model: dict) -> list[str]:
    """A model spec's numbers (transformer64-k4-l1, lstm128) within the schema's bounds."""
    defs = _schema()["$defs"]
    kind = model.get("type", "transformer")
    fields = {SIZE_FIELD[kind]: "width"}
    if kind == "transformer":
        fields.update(key_size="width", layers="count")
    problems = []
    for field, bound in fields.items():
        low, high = defs[bound]["minimum"], defs[bound]["maximum"]
        if not low <= model[field] <= high:
            problems.append(f"{kind} {field} {model[field]} is outside [{low}, {high}]")
    return problems


def _run_problems(cfg: dict, nx: int, processes: int) -> list[str | None]:
    """What one run would allocate (its batch, task projections, curriculum pool, model)."""
    train, model = cfg["train"], cfg["model"]
    problems: list[str | None] = list(_spec_problems(model))
    if problems:
        return problems
    seq_len = train["seq_len"]
    per_step = {
        "train.tasks_per_step": train["tasks_per_step"],
        "train.seqs_per_task": train["seqs_per_task"],
    }
    tokens = {**per_step, "train.seq_len": seq_len, "(input size + 10)": nx + NUM_CLASSES}
    problems.append(_over("training batch (float32)", tokens, 4))
    projections = {"train.tasks_per_step": train["tasks_per_step"], "input size^2": nx * nx}
    problems.append(_over("task projections of a step (float32)", projections, 4))
    if train["curriculum"] is not None:
        pool = {
            **per_step,
            "train.curriculum.start_examples": train["curriculum"]["start_examples"],
        }
        problems.append(_over("curriculum example pool (int64)", pool, 8))
    kind = model.get("type", "transformer")
    weights = {f"{kind} parameters (model sizes, input size)": weight_count(model, nx, seq_len)}
    problems.append(_over("training state (weights, gradients, Adam moments)", weights, 16))
    if train["tasks_per_step"] % processes:
        problems.append(
            f"train.tasks_per_step {train['tasks_per_step']} is not divisible by processes "
            f"{processes} (the data-parallel ranks share a step's tasks)"
        )
    return problems


def curriculum_end(train: dict) -> int:
    """First step whose training sequences are i.i.d.: 0 without a curriculum, else
    hold_steps + anneal_steps (gpicl.augment.curriculum_examples)."""
    curriculum = train.get("curriculum")
    return curriculum["hold_steps"] + curriculum["anneal_steps"] if curriculum else 0


def iid_from_step(train: dict) -> int:
    """First step whose training sequences are i.i.d., at most the run's steps."""
    return min(train["steps"], curriculum_end(train))


def _curriculum_problem(cfg: dict) -> str | None:
    """A run evaluated on i.i.d. sequences must end its training on them too: a curriculum
    still running at the last step would leave the model trained on repeated exemplars."""
    train = cfg["train"]
    curriculum = train.get("curriculum")
    if not curriculum or train["steps"] == 0:
        return None
    ends = curriculum_end(train)
    if ends < train["steps"]:
        return None
    return (
        f"train.curriculum reaches i.i.d. sequences at step {ends} (hold_steps + "
        f"anneal_steps), not before the last step {train['steps']}: the run would end on "
        "repeated exemplars while it is evaluated on i.i.d. sequences"
    )


def check_sizes(params: dict) -> list[str]:
    """Per tier, what schema-valid values allocate together: every tensor and model within
    MAX_TENSOR_BYTES, even when each value is within its own bound. One line per problem,
    each naming where (the first place, when several runs share the problem)."""
    found: dict[tuple[str, str], str] = {}  # (tier, problem) -> where it was first seen
    params = resolve_tiers(params)
    for tier, t in params["tiers"].items():
        nx = PreprocessSpec(**t["preprocess"]).input_size
        evaluation = {
            "eval.tasks": t["eval"]["tasks"],
            "eval.seqs_per_task": t["eval"]["seqs_per_task"],
            "train.seq_len": t["train"]["seq_len"],
        }
        inputs = {**evaluation, "input size (preprocess.resize^2 x channels)": nx}
        for problem in (
            _over("evaluation indices (int64)", evaluation, 8),
            _over("evaluation inputs (float32)", inputs, 4),
        ):
            if problem is not None:
                found.setdefault((tier, problem), f"tiers.{tier}")
        for where, cfg in _tier_runs(params, tier):
            if not where.startswith("experiments.metaopt"):  # the plateau study may stop early
                found.setdefault((tier, _curriculum_problem(cfg) or ""), where)
            for problem in _run_problems(cfg, nx, t["processes"]):
                if problem is not None:
                    found.setdefault((tier, problem), where)
    return [f"{where}: {problem}" for (_, problem), where in found.items() if problem]


def tier_settings(params: dict, tier: str | None = None) -> dict:
    """One tier's complete settings: its block over `defaults` when params are as written
    (resolve_tiers), the block itself when they are resolved already."""
    block = params["tiers"][tier or params["tier"]]
    if params.get("defaults"):
        return deep_merge(params["defaults"], block)
    return block


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


def unnamed_groups(pattern: str) -> str:
    """A pattern with its named groups made anonymous, to embed in another regex (the
    schema's model specs, Snakemake's `run` wildcard)."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


# The `run` wildcard of the workflow: the same grammar, unanchored.
RUN_NAME_WILDCARD = unnamed_groups(RUN_NAME.pattern.removeprefix("^").removesuffix("$"))


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


def lr_variant(lr: float) -> str:
    """The variant name of one learning rate of a sweep: "lr" and the number with "." as "p"
    and "-" as "m" (1e-3 -> lr0p001, 3e-2 -> lr0p03, 2.5e-5 -> lr2p5em05)."""
    return "lr" + f"{lr:g}".replace(".", "p").replace("-", "m").replace("+", "")


def _lr_variants(lrs: list, where: str) -> dict[str, float]:
    """variant name -> learning rate; two rates of one name (equal to 6 digits) are refused."""
    variants = {lr_variant(float(lr)): float(lr) for lr in lrs}
    if len(variants) != len(lrs):
        raise ParamsError(f"{where}: learning rates {lrs} are not distinct to 6 digits")
    return variants


def sgd_lr_variants(params: dict, tier: str) -> dict[str, float]:
    """variant name -> inner learning rate, in the order of experiments.table1.sgd_lr_sweep of
    the tier."""
    sweep = (params["experiments"]["table1"].get("sgd_lr_sweep") or {}).get(tier) or []
    return _lr_variants(sweep, f"experiments.table1.sgd_lr_sweep.{tier}")


# The experiment (results/<tier>/runs/<name>/) of the meta-trained rows' learning-rate sweep.
LR_SWEEP = "lr_sweep"


def lr_sweep_grid(params: dict, tier: str) -> dict | None:
    """experiments.table1.lr_sweep of the tier ({fraction, lrs, seeds}), None without one."""
    return (params["experiments"]["table1"].get("lr_sweep") or {}).get(tier)


def lr_sweep_variants(params: dict, tier: str) -> dict[str, float]:
    """variant name -> meta-training learning rate of the tier's sweep, in its order."""
    grid = lr_sweep_grid(params, tier) or {}
    return _lr_variants(grid.get("lrs", []), f"experiments.table1.lr_sweep.{tier}.lrs")


def table1_methods(params: dict, tier: str, trained_only: bool = False) -> list[str]:
    """Table 1's methods besides the Transformer; `trained_only`: leave out methods with
    nothing to meta-train (SGD: 0 steps)."""
    methods = params["tiers"][tier]["methods"]
    return [
        method
        for method in params["experiments"]["table1"]["methods"][tier]
        if not (trained_only and methods[method].get("train", {}).get("steps") == 0)
    ]


def method_spec(params: dict, tier: str, method: str) -> str:
    """A method's model spec in run names: its type and the tier's size ("lstm128")."""
    return f"{method}{params['tiers'][tier]['methods'][method]['model'][SIZE_FIELD[method]]}"


def lr_sweep_specs(params: dict, tier: str) -> list[str | None]:
    """The model specs the sweep trains: None (the tier's Transformer, Table 1's GPICL row) and
    each meta-trained method of the tier's Table 1."""
    return [None, *(method_spec(params, tier, m) for m in table1_methods(params, tier, True))]


def scaled_budget(train: dict, fraction: float) -> dict:
    """Training settings over `fraction` of the run's steps, with warm-up, curriculum and
    checkpoints scaled alike: the short run is the long one compressed, so it too ends on
    i.i.d. sequences after the same share of its steps (a sweep's proxy for the full run)."""

    def scale(steps: int, least: int = 0) -> int:
        return max(least, round(steps * fraction))

    out = dict(train)
    out["steps"] = scale(train["steps"], least=1)
    out["checkpoint_every"] = min(scale(train["checkpoint_every"], least=1), out["steps"])
    if train.get("curriculum"):
        # The end is scaled once and kept before the last step; a run too short to hold a
        # curriculum and end it trains on i.i.d. sequences.
        curriculum = train["curriculum"]
        end = min(scale(curriculum_end(train)), out["steps"] - 1)
        hold = min(scale(curriculum["hold_steps"]), end - 1)
        out["curriculum"] = (
            {**curriculum, "hold_steps": hold, "anneal_steps": end - hold} if end >= 1 else None
        )
    if train.get("lr_schedule"):
        out["lr_schedule"] = {
            **train["lr_schedule"],
            "warmup_steps": scale(train["lr_schedule"]["warmup_steps"]),
        }
    if train.get("probe_every"):
        out["probe_every"] = scale(train["probe_every"], least=1)
    return out


def run_config(params: dict, tier: str, experiment: str, run: str) -> dict:
    """Everything one training run depends on (saved as its config.json): the tier's defaults,
    overridden by what the run's name fixes (model type and size, number of tasks)."""
    t = tier_settings(params, tier)
    parsed = parse_run_name(run)
    train = dict(t["train"])
    model = dict(t["model"])
    kind = parsed["model"]
    # A grid may train its runs on a smaller budget than Figure 3's (its `model`, `train`); a
    # method's own training settings (its recipe, e.g. the LSTM's longer run) win over the
    # grid's, so the state-size LSTMs train as Table 1's LSTM does.
    grid = params["experiments"].get(experiment, {}).get("grids", {}).get(tier, {})
    train.update(grid.get("train", {}))
    if kind in (None, "transformer"):
        model.update(grid.get("model", {}))
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
    if parsed["variant"] is not None and experiment == "table1":
        # Table 1's "SGD, tuned lr": one run per learning rate of the sweep (sgd_lr_variants).
        sweep = sgd_lr_variants(params, tier)
        if kind != "sgd" or parsed["variant"] not in sweep:
            raise ParamsError(
                f"run {run!r}: Table 1's variants are SGD learning rates of "
                f"experiments.table1.sgd_lr_sweep.{tier} ({', '.join(sweep) or 'none'})"
            )
        model["inner_lr"] = sweep[parsed["variant"]]
        extra["variant"] = parsed["variant"]
    elif experiment == LR_SWEEP:
        # One meta-trained Table 1 row at one learning rate of the sweep, on a shortened budget.
        sweep, grid = lr_sweep_variants(params, tier), lr_sweep_grid(params, tier)
        spec = None if kind is None else f"{kind}{parsed['size']}"
        beyond_spec = (parsed["key_size"], parsed["layers"], parsed["log2_tasks"])
        if (
            parsed["variant"] not in sweep
            or spec not in lr_sweep_specs(params, tier)
            or parsed["dataset"] != "mnist"
            or beyond_spec != (None, None, None)
        ):
            raise ParamsError(
                f"run {run!r}: the {LR_SWEEP} runs are the tier's meta-trained Table 1 rows on "
                f"MNIST ({', '.join(s or 'the Transformer' for s in lr_sweep_specs(params, tier))})"
                f" at a learning rate of experiments.table1.lr_sweep.{tier}.lrs "
                f"({', '.join(sweep) or 'none'})"
            )
        train = scaled_budget(train, grid["fraction"])
        train["lr"] = sweep[parsed["variant"]]
        extra["variant"] = parsed["variant"]
    elif parsed["variant"] is not None:
        # Training settings of a named variant of the experiment's grid (meta-optimisation).
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
