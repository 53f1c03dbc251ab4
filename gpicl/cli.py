"""`gpicl data|cache|evalset|train|evaluate|baselines|figure|validate|bench|export`: what the
Snakemake rules call; `gpicl predict`: the meta-trained model as a classifier of CSV files.

Each command does one phase for one artifact; the workflow decides which and when.

Every command checks its arguments and inputs before it writes anything, and a user error ends
with `gpicl <command>: error: <message>` on stderr (the message names the option, key or file),
not a traceback. Exit codes:

  0    success
  1    the computation failed: a non-finite loss, a dataset no source could deliver, downloaded
       bytes that do not match the official checksum (EXIT_FAILED)
  2    bad arguments, params or inputs: argparse's usage errors, an invalid params.yaml or run
       config, a missing input file, a file where a folder belongs, inputs that disagree
       (EXIT_USAGE)
  3    a damaged file: an artifact whose content no longer matches its recorded SHA-256; the
       message names the file and how to rebuild it (EXIT_DAMAGED)
  130  interrupted (Ctrl-C) (EXIT_INTERRUPTED)

Anything else is a bug and keeps its traceback (Python's exit code 1). GPICL_TRACEBACK=1 shows
the traceback of user errors too, for when a ValueError turns out to be a bug.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_INTERRUPTED = 130

# Upper bounds in the spirit of params.schema.yaml: far above any real setting, far below sizes
# whose tensors would not fit in any machine.
MAX_RESIZE = 1024
MAX_COUNT = 2**20  # tasks, sequences per task, examples
MAX_SEQ_LEN = 65536
MAX_THREADS = 1024
MAX_SEED = 2**63 - 1
MAX_STEPS = 2**62
MAX_MATMUL = 32768
MAX_TIMEOUT_S = 86400.0  # data.timeout_s of params.schema.yaml
NO_ANTIALIAS_HELP = (
    "plain bilinear resize, as the authors' tf.image.resize (preprocess.antialias: false)"
)

RUN_CONFIG_KEYS = (
    "name",
    "tier",
    "experiment",
    "train_dataset",
    "seed",
    "task_seed",
    "preprocess",
    "model",
    "train",
)
# What gpicl.train.batch_spec and gpicl.train.train read without a default.
TRAIN_KEYS = (
    "steps",
    "num_tasks",
    "tasks_per_step",
    "seqs_per_task",
    "seq_len",
    "lr",
    "eps",
    "eps_root",
    "checkpoint_every",
    "amp",
    "amp_cpu",
)


# --------------------------------------------------------------------------- argument types
def _range_problem(value: int, lo: int, hi: int) -> str | None:
    if lo <= value <= hi:
        return None
    # Bounds near int64's only guard against overflow; naming them would read as a target.
    bound = f"at least {lo}" if hi >= MAX_STEPS else f"in {lo}..{hi}"
    return f"must be {bound}, got {value}"


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in lo..hi, so nonsense is refused before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        problem = _range_problem(value, lo, hi)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse type: a finite positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_TIMEOUT_S:g}] seconds, got {text}")
    return value


class _LazyChoices:
    """Allowed values read on first use: building the parser must not import the figures
    (matplotlib) or the dataset registry for commands that need neither."""

    def __init__(self, load: Callable[[], Iterable[str]]):
        self._load = load
        self._values: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value) -> bool:
        return value in self._get()

    def __iter__(self):
        return iter(self._get())


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written (the exit-code table); each option's help ends with its
    choices, when it has some, and its default (a required option says so instead)."""

    def _get_help_string(self, action):
        help = action.help or ""
        if isinstance(action, argparse._SubParsersAction) or getattr(action, "_filled", False):
            return help  # the commands are listed below it; or completed by _format_action
        if action.choices is not None and "%(choices)" not in help:
            help += " (one of: %(choices)s)"
        if action.required and action.option_strings:
            help += " (required)"
        else:
            with_choices = copy.copy(action)
            with_choices.help = help
            help = super()._get_help_string(with_choices)  # appends the default
        return help.strip()

    def _format_action(self, action):
        if action.help is None:  # argparse would show no help line; show default and choices
            filled = self._get_help_string(action)
            if filled:
                action = copy.copy(action)
                action.help, action._filled = filled, True
        return super()._format_action(action)


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), "unknown" when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gpicl")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _dataset_names() -> tuple[str, ...]:
    from gpicl.data.registry import DATASET_NAMES

    return DATASET_NAMES


def _test_dataset_names() -> tuple[str, ...]:
    from gpicl.cache import RANDOM_DATASET

    return (*_dataset_names(), RANDOM_DATASET)


def _evalset_names() -> tuple[str, ...]:
    from gpicl.cache import evalset_name

    return (*_test_dataset_names(), *(evalset_name(d, "train") for d in _dataset_names()))


def _figure_names() -> list[str]:
    from gpicl.figures.registry import REGISTRY

    return sorted(REGISTRY)


def _schema() -> dict:
    import yaml

    from gpicl.config import SCHEMA_PATH

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _tier_names() -> list[str]:
    return _schema()["properties"]["tier"]["enum"]


# --------------------------------------------------------------------------- path checks
def _require_file(path: str | os.PathLike, option: str) -> Path:
    """An input that must exist, checked before any work so the error names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{option} {path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a folder, not a file")
    return path


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing ancestor of `path` must be a folder (else mkdir fails late)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{option} {path}: {parent} is a file, not a folder")
            return


def _check_output(path: str | os.PathLike, option: str, *inputs) -> Path:
    """A file the command will write: not a folder, not under a file, not one of its inputs."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a folder; give the path of a file")
    _check_parents(path, option)
    for other in inputs:
        if other is not None and path.resolve() == Path(other).resolve():
            raise ValueError(f"{option} {path}: is also an input; it would be overwritten")
    return path


def _check_folder(path: str | os.PathLike, option: str) -> Path:
    """A folder the command may create: refused when a file is in its place."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path}: is a file, not a folder")
    _check_parents(path, option)
    return path


def _check_device(device: str) -> None:
    from gpicl.repro import pick_device

    pick_device(device)


def _json_object(text: str, option: str) -> dict:
    """JSON text that must be an object; NaN and Infinity are refused (results never hold them)."""

    def no_constant(name: str):
        raise ValueError(f"{option}: {name} is not allowed")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"{option}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option}: expected a JSON object {{...}}, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- run configs
def _run_config_schema() -> dict:
    """params.yaml's own rules for a tier's preprocessing and training settings, so that a run
    config given by hand is held to what gpicl.config.run_config could have produced."""
    from gpicl.augment import UNLIMITED_TASKS

    schema = _schema()
    defs = schema["$defs"]
    tier = defs["tier"]["properties"]
    # A run's train block: the tier's settings, overridden by a method or grid variant.
    train = {**tier["train"]["properties"], **defs["train_overrides"]["properties"]}
    train["num_tasks"] = {"type": "integer", "minimum": 1, "maximum": UNLIMITED_TASKS}
    return {
        "$defs": defs,
        "type": "object",
        "required": list(RUN_CONFIG_KEYS),
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "tier": schema["properties"]["tier"],
            "experiment": {"type": "string", "minLength": 1},
            "train_dataset": {"type": "string", "minLength": 1},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            "task_seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            "variant": {"type": "string"},
            "preprocess": tier["preprocess"],
            "model": {"type": "object"},
            "train": {
                "type": "object",
                "required": list(TRAIN_KEYS),
                "properties": train,
                "additionalProperties": False,
            },
        },
    }


def _check_model_config(model: dict) -> None:
    """The model block names a known model type and only fields of its config, with values of
    the fields' types (build_model would fail later with a TypeError)."""
    import dataclasses

    from gpicl.models import _MODELS

    kind = model.get("type", "transformer")
    if kind not in _MODELS:
        raise ValueError(f"--run-config: model.type {kind!r} is not one of {', '.join(_MODELS)}")
    fields = {f.name: f for f in dataclasses.fields(_MODELS[kind][1])}
    for key, value in model.items():
        if key == "type":
            continue
        if key not in fields or key in ("input_size", "seq_len"):
            settable = sorted(set(fields) - {"input_size", "seq_len"})
            raise ValueError(
                f"--run-config: model.{key} is not a setting of {kind} ({', '.join(settable)})"
            )
        default = fields[key].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            kind_name = type(default).__name__
            raise ValueError(
                f"--run-config: model.{key} must be of type {kind_name}, got {value!r}"
            )


def check_run_config(cfg) -> dict:
    """Refuse anything but a run config (gpicl.config.run_config's output), naming the first
    missing or bad key, before train() creates the run folder."""
    from gpicl.config import StrictValidator  # integers are ints, numbers are finite

    if not isinstance(cfg, dict):
        raise ValueError(f"--run-config: expected a JSON object, got {type(cfg).__name__}")
    validator = StrictValidator(_run_config_schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {key}: {err.message}")
        raise ValueError("--run-config is not a run config:\n" + "\n".join(lines))
    _check_model_config(cfg["model"])
    return cfg


# --------------------------------------------------------------------------- commands
def _cmd_validate(args) -> None:
    import yaml

    from gpicl.config import ParamsError, load_params

    _require_file(args.params, "--params")
    try:
        load_params(args.params)
    except yaml.YAMLError as err:
        raise ParamsError(f"{args.params}: not valid YAML ({err})") from None
    print(f"{args.params}: valid")


def _cmd_data(args) -> None:
    from gpicl import data
    from gpicl.io import write_json

    data.source_plan(args.source)  # a missing source folder is refused before any work
    if args.list:
        _check_folder(args.datasets_dir, "--datasets-dir")
        rows = data.list_datasets(args.datasets_dir, args.source)
        print(data.format_dataset_list(rows, args.source))
        return
    if args.name is None or args.out is None:
        raise ValueError("give a dataset NAME and --out PATH, or --list")
    _check_output(args.out, "--out")
    _check_folder(args.download_dir, "--download-dir")
    if args.status_json:
        _check_output(args.status_json, "--status-json", args.out)
    options = dict(source=args.source, download_dir=args.download_dir, timeout=args.timeout)
    if args.status_json:
        # "Data not available" is an outcome here, recorded for Table 1, not a failure.
        write_json(args.status_json, data.dataset_availability(args.name, args.out, **options))
    else:
        data.prepare_dataset(args.name, args.out, **options)


def _cmd_cache(args) -> None:
    from gpicl.augment import PreprocessSpec
    from gpicl.cache import build_data_cache

    _require_file(args.npz, "--npz")
    _check_output(args.out, "--out", args.npz)
    spec = PreprocessSpec(args.resize, args.channels, antialias=not args.no_antialias)
    build_data_cache(args.dataset, args.npz, spec, args.out)


def _cmd_evalset(args) -> None:
    from gpicl.augment import PreprocessSpec
    from gpicl.cache import RANDOM_DATASET, build_eval_set, parse_evalset_name
    from gpicl.config import MAX_TENSOR_BYTES
    from gpicl.data.status import load_prepared

    dataset, split = parse_evalset_name(args.dataset)  # "<dataset>_val": the training split

    spec = PreprocessSpec(args.resize, args.channels, antialias=not args.no_antialias)
    # Each option is bounded, but their product is what gets allocated: int64 indices, and
    # float32 images for the random set. Same bound as params validation.
    indices = args.tasks * args.seqs_per_task * args.seq_len * 8
    images = args.tasks * 10 * spec.input_size * 4 if args.dataset == RANDOM_DATASET else 0
    if max(indices, images) > MAX_TENSOR_BYTES:
        if indices >= images:
            given = f"--tasks {args.tasks} --seqs-per-task {args.seqs_per_task} --seq-len "
            given += str(args.seq_len)
        else:
            given = f"--tasks {args.tasks} --resize {args.resize} --channels {args.channels}"
        raise ValueError(
            f"{given}: the evaluation set would take {max(indices, images) / 2**30:,.4g} GiB, "
            f"over the {MAX_TENSOR_BYTES // 2**30} GiB bound (gpicl.config.MAX_TENSOR_BYTES)"
        )
    if args.dataset != RANDOM_DATASET:
        if args.npz is None:
            raise ValueError(f"--npz is needed for {args.dataset}")
        _require_file(args.npz, "--npz")
    _check_output(args.out, "--out", args.npz)
    num_test = None
    if args.dataset != RANDOM_DATASET:
        num_test = int(load_prepared(dataset, args.npz)[f"y_{split}"].shape[0])
    build_eval_set(
        dataset,
        spec,
        args.tasks,
        args.seqs_per_task,
        args.seq_len,
        args.seed,
        args.out,
        num_test=num_test,
        split=split,
    )


def _cmd_train(args) -> None:
    run_cfg = check_run_config(_json_object(args.run_config, "--run-config"))
    _require_file(args.cache, "--cache")
    _check_folder(args.run_dir, "--run-dir")
    _check_device(args.device)

    from gpicl.train import train

    train(
        run_cfg,
        args.cache,
        args.run_dir,
        device=args.device,
        threads=args.threads,
        stop_after=args.stop_after,
        progress=not args.no_progress,
    )


def _cmd_evaluate(args) -> None:
    _require_file(args.model, "--model")
    _require_file(args.evalset, "--evalset")
    if args.cache is not None:
        _require_file(args.cache, "--cache")
    _check_output(args.out, "--out", args.model, args.evalset, args.cache)
    _check_device(args.device)

    from gpicl.evaluate import evaluate_run

    evaluate_run(
        args.model,
        args.evalset,
        args.cache,
        args.out,
        {"tier": args.tier},
        device=args.device,
        threads=args.threads,
    )


def _cmd_baselines(args) -> None:
    _require_file(args.evalset, "--evalset")
    if args.cache is not None:
        _require_file(args.cache, "--cache")
    _check_output(args.out, "--out", args.evalset, args.cache)

    from gpicl.baselines import run_baselines

    run_baselines(
        args.evalset, args.cache, args.out, args.task_seed, args.tier, threads=args.threads
    )


def _cmd_figure(args) -> None:
    from gpicl.figures.registry import INPUT_KINDS

    files = {
        kind: sorted(_require_file(p, f"--{kind}") for p in getattr(args, kind) or [])
        for kind in INPUT_KINDS
    }
    files = {kind: paths for kind, paths in files.items() if paths}
    out = Path(args.out)
    _check_parents(out, "--out")
    options = _json_object(args.options, "--options")

    from gpicl.figures.registry import REGISTRY, draw

    figure = REGISTRY[args.name]
    reads = {figure.positional, *figure.keyword_inputs}
    for kind in sorted(set(files) - reads):
        raise ValueError(f"--{kind}: figure {args.name} reads only --{' --'.join(sorted(reads))}")
    keywords = {kw: [] for kw in figure.keyword_inputs.values()}
    try:
        inspect.signature(figure.make()).bind([], out, **keywords, **options)
    except TypeError as err:
        raise ValueError(f"--options for {args.name}: {err}") from None
    draw(args.name, files, out, options)


def _cmd_bench(args) -> None:
    if args.out is not None:
        _check_output(args.out, "--out")
    _check_device(args.device)
    names = [n for n in args.shapes.split(",") if n]
    params = None
    if any(n != "tiny" for n in names):  # tiny needs no params file
        from gpicl.config import load_params

        params = load_params(_require_file(args.params, "--params"))

    from gpicl.bench import format_table, run_benchmark, shapes_from_params

    rows = run_benchmark(
        shapes_from_params(params, names),
        implementations=[i for i in args.impl.split(",") if i],
        device=args.device,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        matmul_size=args.matmul_size,
        out_csv=args.out,
        compile=args.compile,
        amp=not args.no_amp,
        num_examples=args.num_examples,
        seed=args.seed,
        deterministic=not args.no_deterministic,
    )
    print(format_table(rows))
    if args.out:
        print(f"wrote {args.out}")


def _cmd_predict(args) -> None:
    _require_file(args.context, "--context")
    _require_file(args.query, "--query")
    if args.model is not None:
        _require_file(args.model, "--model")
    _check_output(args.out, "--out", args.context, args.query, args.model)
    from gpicl.classifier import default_checkpoint, predict_csv
    from gpicl.repro import pick_device

    model = default_checkpoint() if args.model is None else args.model  # refused when absent
    dev = pick_device(args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    done = predict_csv(
        args.context,
        args.query,
        args.out,
        label_column=args.label_column,
        model=model,
        n_estimators=args.n_estimators,
        random_state=args.seed,
        device=str(dev),
        batch_size=args.batch_size,
    )
    logging.getLogger("gpicl.predict").info(
        "%d queries in the context of %d examples (%d classes) -> %s",
        done["queries"],
        done["context"],
        len(done["classes"]),
        args.out,
    )


def _cmd_export(args) -> None:
    if (args.model is None) == (not args.runs):
        raise ValueError("give either --model or --runs (the export is chosen among them)")
    for path in [args.model] if args.model else args.runs:
        _require_file(path, "--model" if args.model else "--runs")
    for path in args.evals:
        _require_file(path, "--evals")
    if args.card and not args.runs:
        raise ValueError("--card needs --runs (the card reads the run's done.json)")
    _check_output(args.out, "--out", *(args.runs or [args.model]))
    if args.card:
        _check_output(args.card, "--card", args.out)

    from gpicl.classifier import export_model
    from gpicl.model_card import choose_run, model_card

    done = choose_run(args.runs) if args.runs else None
    model = str(done.with_name("model.pt")) if done else args.model
    info = export_model(model, args.out, dtype=args.dtype)
    if args.card:
        from gpicl.io import write_text

        write_text(args.card, model_card(info, done, args.evals, args.shipped_as or args.out))
    print(
        f"wrote {args.out} from {model}: {info['model_type']}, {info['num_params']:,} "
        f"parameters in {info['dtype']}, {info['bytes']:,} bytes, sha256 {info['sha256']}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpicl", description=__doc__, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gpicl {_version()}")
    # Every subcommand's parser gets the same formatter (defaults and choices in --help).
    subparser = functools.partial(argparse.ArgumentParser, formatter_class=_HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=subparser)
    count = _int_in(1, MAX_COUNT)
    threads = dict(type=_int_in(1, MAX_THREADS), default=None, help="torch threads")
    device = dict(default="auto", help="auto (CUDA when present, else CPU), cpu, cuda[:<index>]")

    p = sub.add_parser("validate", help="check params.yaml against the schema")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("data", help="download/verify one dataset into an .npz, or --list")
    p.add_argument("name", nargs="?", choices=_LazyChoices(_dataset_names), metavar="NAME")
    p.add_argument("--out")
    p.add_argument(
        "--source",
        default="auto",
        help="auto (canonical hosts, then offline), download, offline, or a folder of files",
    )
    p.add_argument("--download-dir", default="resources/downloads")
    p.add_argument("--timeout", type=_seconds, default=10.0, help="seconds per download try")
    p.add_argument(
        "--status-json",
        help="record availability here instead of failing when no source has the dataset",
    )
    p.add_argument("--list", action="store_true", help="each dataset, its sources, its state")
    p.add_argument("--datasets-dir", default="resources/datasets")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("cache", help="preprocess one dataset for one preprocessing spec")
    p.add_argument("dataset", choices=_LazyChoices(_dataset_names), metavar="DATASET")
    p.add_argument("--npz", required=True)
    p.add_argument("--resize", type=_int_in(1, MAX_RESIZE), required=True)
    p.add_argument("--channels", type=int, choices=(1, 3), required=True)
    p.add_argument("--no-antialias", action="store_true", help=NO_ANTIALIAS_HELP)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser(
        "evalset",
        help="fixed evaluation sequences of one meta-test dataset (<dataset>_val: a validation "
        "set from its training split, under other unseen task ids)",
    )
    p.add_argument("dataset", choices=_LazyChoices(_evalset_names), metavar="DATASET")
    p.add_argument("--npz", help="prepared dataset (not needed for the synthetic random set)")
    p.add_argument("--resize", type=_int_in(1, MAX_RESIZE), required=True)
    p.add_argument("--channels", type=int, choices=(1, 3), required=True)
    p.add_argument("--no-antialias", action="store_true", help=NO_ANTIALIAS_HELP)
    p.add_argument("--tasks", type=count, required=True)
    p.add_argument("--seqs-per-task", type=count, required=True)
    p.add_argument("--seq-len", type=_int_in(2, MAX_SEQ_LEN), required=True)
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_evalset)

    p = sub.add_parser("train", help="meta-train one run (resumes from its checkpoint)")
    p.add_argument("--run-config", required=True, help="the run's resolved config as JSON")
    p.add_argument("--cache", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--device", **device)
    p.add_argument("--threads", **threads)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--stop-after",
        type=_int_in(1, MAX_STEPS),
        help="end this call after that many total steps (resumable; no done marker)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score one run on one meta-test dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--evalset", required=True)
    p.add_argument("--cache", help="data cache (not needed for the random set)")
    p.add_argument("--out", required=True)
    p.add_argument("--tier", required=True, choices=_LazyChoices(_tier_names), metavar="TIER")
    p.add_argument("--device", **device)
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "baselines",
        help="reference learners (1-NN, class means, ridge) on the context of each sequence",
    )
    p.add_argument("--evalset", required=True)
    p.add_argument("--cache", help="data cache (not needed for the random set)")
    p.add_argument("--task-seed", type=_int_in(0, MAX_SEED), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tier", required=True, choices=_LazyChoices(_tier_names), metavar="TIER")
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_cmd_baselines)

    p = sub.add_parser("figure", help="draw one figure or table from result files")
    p.add_argument("name", choices=_LazyChoices(_figure_names), metavar="NAME")
    p.add_argument("--out", required=True, help="output prefix (suffixes are added)")
    p.add_argument("--evals", nargs="+", help="evaluation result JSON files")
    p.add_argument("--runs", nargs="+", help="training runs' done.json files")
    p.add_argument("--status", nargs="+", help="dataset availability records (table1)")
    p.add_argument("--baselines", nargs="+", help="reference learners' results (gpicl baselines)")
    p.add_argument("--model", nargs="+", help="the exported learner (external)")
    p.add_argument("--caches", nargs="+", help="data caches (external)")
    p.add_argument(
        "--options",
        default="{}",
        help="keyword arguments of the figure, as JSON (the workflow passes params.yaml's)",
    )
    p.set_defaults(func=_cmd_figure)

    from gpicl.bench import IMPLEMENTATIONS, NUM_EXAMPLES

    p = sub.add_parser(
        "bench", help="time the full training step (ours vs a plain-PyTorch reference)"
    )
    p.add_argument("--shapes", default="tiny", help="comma list: tiny and/or tiers (cpu, paper)")
    p.add_argument(
        "--impl",
        default=",".join(IMPLEMENTATIONS),
        help="comma list of " + "/".join(IMPLEMENTATIONS),
    )
    p.add_argument("--repeats", type=count, default=5, help="timed steps (median reported)")
    p.add_argument("--warmup", type=_int_in(0, MAX_COUNT), default=2, help="untimed steps first")
    p.add_argument(
        "--threads", type=_int_in(1, MAX_THREADS), default=None, help="torch.set_num_threads"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="CSV path, e.g. results/bench/bench.csv")
    p.add_argument("--params", default="params.yaml", help="where the tier shapes come from")
    p.add_argument(
        "--matmul-size",
        type=_int_in(1, MAX_MATMUL),
        default=None,
        help="n of the n^3 peak matmul (1024 CPU, 8192 CUDA)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile our model")
    p.add_argument("--no-amp", action="store_true", help="ours in fp32 on CUDA too")
    p.add_argument(
        "--no-deterministic",
        action="store_true",
        help="ours without torch.use_deterministic_algorithms (train.py turns it on)",
    )
    p.add_argument("--num-examples", type=count, default=NUM_EXAMPLES)
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "predict",
        help="classify the rows of a CSV in the context of another CSV's labelled rows "
        "(gpicl.InContextClassifier)",
    )
    p.add_argument("--context", required=True, help="CSV: numeric feature columns and a label")
    p.add_argument("--query", required=True, help="CSV: the same feature columns")
    p.add_argument("--model", help="a run's model.pt or an export (default: the shipped one)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--out", required=True, help="CSV: predicted label, proba_<class> columns")
    p.add_argument("--n-estimators", type=_int_in(1, 1024), default=8, help="ensemble members")
    p.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0)
    p.add_argument("--batch-size", type=count, default=256, help="queries per forward pass")
    p.add_argument("--device", **device)
    p.add_argument("--threads", **threads)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="a trained model as a small self-describing checkpoint")
    p.add_argument("--model", help="a run's model.pt")
    p.add_argument(
        "--runs",
        nargs="+",
        default=[],
        help="done.json of candidate runs: the one with the lowest final training loss is "
        "exported (instead of --model)",
    )
    p.add_argument("--evals", nargs="*", default=[], help="evaluation JSONs for the card")
    p.add_argument("--card", help="write a model card (markdown) here; needs --runs")
    p.add_argument("--shipped-as", help="the path the card names (default: --out)")
    p.add_argument("--out", required=True, help="e.g. gpicl/checkpoints/default.pt")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16"),
        default="auto",
        help="weights' precision; auto: float32 up to 1 MB, float16 above",
    )
    p.set_defaults(func=_cmd_export)
    return parser


def _exit_code(err: BaseException) -> int | None:
    """The exit code of an exception that is the user's or the data's doing; None for a bug.
    Order matters: IntegrityError and ChecksumError are ValueErrors too."""
    from gpicl.config import ParamsError
    from gpicl.data import (
        ChecksumError,
        DatasetFormatError,
        DatasetUnavailableError,
        IdxFormatError,
    )
    from gpicl.io import IntegrityError

    if isinstance(err, IntegrityError):
        return EXIT_DAMAGED
    failed = (
        ChecksumError,
        DatasetFormatError,
        IdxFormatError,
        DatasetUnavailableError,
        FloatingPointError,
    )
    if isinstance(err, failed):
        return EXIT_FAILED
    usage = (
        ParamsError,
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    )
    if isinstance(err, usage):
        return EXIT_USAGE
    return None


def main(argv: list[str] | None = None) -> None:
    # Progress and warnings of the library (gpicl.train, gpicl.data, ...) go to stderr.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"gpicl {args.command}: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as err:
        code = _exit_code(err)
        if code is None or os.environ.get("GPICL_TRACEBACK") == "1":
            raise
        print(f"gpicl {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(code) from None


if __name__ == "__main__":
    main()
