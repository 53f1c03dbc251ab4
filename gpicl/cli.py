"""`gpicl data|cache|evalset|train|evaluate|figure|validate|bench`: what the Snakemake rules call.

Each command does one phase for one artifact; the workflow decides which and when.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_validate(args) -> None:
    from gpicl.config import load_params

    load_params(args.params)
    print(f"{args.params}: valid")


def _cmd_data(args) -> None:
    from gpicl import data
    from gpicl.io import write_json

    if args.list:
        rows = data.list_datasets(args.datasets_dir, args.source)
        print(data.format_dataset_list(rows, args.source))
        return
    if args.name is None or args.out is None:
        raise SystemExit("gpicl data: give a dataset NAME and --out PATH, or --list")
    options = dict(source=args.source, download_dir=args.download_dir, timeout=args.timeout)
    if args.status_json:
        # "Data not available" is an outcome here, recorded for Table 1, not a failure.
        write_json(args.status_json, data.dataset_availability(args.name, args.out, **options))
    else:
        data.prepare_dataset(args.name, args.out, **options)


def _cmd_cache(args) -> None:
    from gpicl.augment import PreprocessSpec
    from gpicl.cache import build_data_cache

    build_data_cache(args.npz, PreprocessSpec(args.resize, args.channels), args.out)


def _cmd_evalset(args) -> None:
    import numpy as np

    from gpicl.augment import PreprocessSpec
    from gpicl.cache import RANDOM_DATASET, build_eval_set

    num_test = None
    if args.dataset != RANDOM_DATASET:
        if args.npz is None:
            raise SystemExit(f"gpicl evalset: --npz is needed for {args.dataset}")
        with np.load(args.npz) as raw:
            num_test = int(raw["y_test"].shape[0])
    build_eval_set(
        args.dataset,
        PreprocessSpec(args.resize, args.channels),
        args.tasks,
        args.seqs_per_task,
        args.seq_len,
        args.seed,
        args.out,
        num_test=num_test,
    )


def _cmd_train(args) -> None:
    from gpicl.train import train

    run_cfg = json.loads(args.run_config)
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


def _cmd_figure(args) -> None:
    from gpicl.figures import FIGURES, table1

    inputs = sorted(Path(p) for p in args.evals)
    if args.name == "table1":
        table1.make(
            inputs,
            Path(args.out),
            expected_datasets=args.expect,
            unavailable=table1.load_unavailable(args.status or []),
        )
    else:
        FIGURES[args.name](inputs, Path(args.out), **json.loads(args.options))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpicl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check params.yaml against the schema")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("data", help="download/verify one dataset into an .npz, or --list")
    p.add_argument("name", nargs="?")
    p.add_argument("--out")
    p.add_argument(
        "--source",
        default="auto",
        help="auto (canonical hosts, then offline), download, offline, or a folder of files",
    )
    p.add_argument("--download-dir", default="resources/downloads")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument(
        "--status-json",
        help="record availability here instead of failing when no source has the dataset",
    )
    p.add_argument("--list", action="store_true", help="each dataset, its sources, its state")
    p.add_argument("--datasets-dir", default="resources/datasets")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("cache", help="preprocess one dataset for one preprocessing spec")
    p.add_argument("--npz", required=True)
    p.add_argument("--resize", type=int, required=True)
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("evalset", help="fixed evaluation sequences of one meta-test dataset")
    p.add_argument("dataset")
    p.add_argument("--npz", help="prepared dataset (not needed for the synthetic random set)")
    p.add_argument("--resize", type=int, required=True)
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--seqs-per-task", type=int, required=True)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_evalset)

    p = sub.add_parser("train", help="meta-train one run (resumes from its checkpoint)")
    p.add_argument("--run-config", required=True, help="the run's resolved config as JSON")
    p.add_argument("--cache", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--stop-after",
        type=int,
        help="end this call after that many total steps (resumable; no done marker)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score one run on one meta-test dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--evalset", required=True)
    p.add_argument("--cache", help="data cache (not needed for the random set)")
    p.add_argument("--out", required=True)
    p.add_argument("--tier", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("figure", help="draw one figure or table from result files")
    p.add_argument("name")
    p.add_argument("--out", required=True, help="output prefix (suffixes are added)")
    p.add_argument("--status", nargs="*", help="table1: dataset status JSON files")
    p.add_argument("--expect", nargs="*", help="table1: datasets that must have a column")
    p.add_argument("--evals", nargs="+", required=True, help="evaluation result JSON files")
    p.add_argument("--options", default="{}", help="keyword arguments of the figure, as JSON")
    p.set_defaults(func=_cmd_figure)
    from gpicl.bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    from gpicl.data import DatasetUnavailableError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError, DatasetUnavailableError) as err:
        print(f"gpicl {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from err


if __name__ == "__main__":
    main()
