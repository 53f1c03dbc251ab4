"""The CLI refuses misuse before writing anything: one line naming the option, key or file on
stderr, no traceback, and an exit code that says whose fault it was (gpicl/cli.py docstring)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml

from gpicl import cli
from gpicl.config import REPO_ROOT, load_params, run_config
from gpicl.data import get_spec
from gpicl.io import save_torch
from tests.test_train import N_TRAIN, NX, write_cache
from tests.test_train import run_config as tiny_run_config

pytestmark = pytest.mark.reliability

USAGE, DAMAGED, FAILED = cli.EXIT_USAGE, cli.EXIT_DAMAGED, cli.EXIT_FAILED


def cfg_json(*, drop=(), model=None, **train) -> str:
    """The tiny run config of tests/test_train.py as --run-config JSON, with changes."""
    cfg = tiny_run_config(**train)
    for key in drop:
        *parents, last = key.split(".")
        block = cfg
        for part in parents:
            block = block[part]
        del block[last]
    cfg["model"].update(model or {})
    return json.dumps(cfg)


# Tokens replaced by paths under tmp_path: CACHE (a valid cache), FILE (a plain file), DIR (an
# existing folder), OUT (the output each command must not create), MODEL (a model file of tier
# cpu), EMPTY (an empty folder), BAD (a file of garbage).
TRAIN = ["train", "--cache", "CACHE", "--run-dir", "OUT", "--no-progress"]
EVALSET = ["evalset", "--resize", "4", "--channels", "1", "--seed", "0", "--out", "OUT"]
EVALSET_SIZES = ["--tasks", "2", "--seqs-per-task", "2", "--seq-len", "5"]
CACHE = ["cache", "mnist", "--npz", "FILE", "--resize", "4", "--channels", "1", "--out", "OUT"]
EVALUATE = ["evaluate", "--model", "MODEL", "--evalset", "FILE", "--out", "OUT"]
FIG3 = ["figure", "fig3", "--out", "OUT", "--evals", "FILE"]

# (id, argv, exit code, text stderr must hold)
CASES = [
    # train: run config
    ("train-empty-config", [*TRAIN, "--run-config", "{}"], USAGE, "'train' is a required"),
    ("train-not-json", [*TRAIN, "--run-config", "not json"], USAGE, "--run-config: not valid"),
    ("train-config-list", [*TRAIN, "--run-config", "[1]"], USAGE, "JSON object"),
    ("train-no-lr", [*TRAIN, "--run-config", cfg_json(drop=["train.lr"])], USAGE, "'lr'"),
    ("train-no-seed", [*TRAIN, "--run-config", cfg_json(drop=["seed"])], USAGE, "'seed'"),
    ("train-lr-text", [*TRAIN, "--run-config", cfg_json(lr="fast")], USAGE, "train.lr"),
    ("train-lr-nan", [*TRAIN, "--run-config", cfg_json(lr=float("nan"))], USAGE, "NaN"),
    ("train-steps-neg", [*TRAIN, "--run-config", cfg_json(steps=-1)], USAGE, "train.steps"),
    ("train-seq-len-0", [*TRAIN, "--run-config", cfg_json(seq_len=0)], USAGE, "train.seq_len"),
    ("train-steps-float", [*TRAIN, "--run-config", cfg_json(steps=6.0)], USAGE, "train.steps"),
    ("train-typo-key", [*TRAIN, "--run-config", cfg_json(lr_typo=1)], USAGE, "lr_typo"),
    (
        "train-model-type",
        [*TRAIN, "--run-config", cfg_json(model={"type": "nosuch"})],
        USAGE,
        "model.type",
    ),
    (
        "train-model-field",
        [*TRAIN, "--run-config", cfg_json(model={"widht": 8})],
        USAGE,
        "model.widht",
    ),
    (
        "train-model-value",
        [*TRAIN, "--run-config", cfg_json(model={"width": "big"})],
        USAGE,
        "model.width",
    ),
    # train: other arguments
    (
        "train-threads-neg",
        [*TRAIN, "--run-config", cfg_json(), "--threads", "-2"],
        USAGE,
        "--threads",
    ),
    (
        "train-stop-0",
        [*TRAIN, "--run-config", cfg_json(), "--stop-after", "0"],
        USAGE,
        "--stop-after",
    ),
    (
        "train-stop-neg",
        [*TRAIN, "--run-config", cfg_json(), "--stop-after", "-4"],
        USAGE,
        "--stop-after",
    ),
    (
        "train-device-foo",
        [*TRAIN, "--run-config", cfg_json(), "--device", "foo"],
        USAGE,
        "--device foo",
    ),
    ("train-device-cuda", [*TRAIN, "--run-config", cfg_json(), "--device", "cuda"], USAGE, "CUDA"),
    (
        "train-run-dir-file",
        ["train", "--run-config", cfg_json(), "--cache", "CACHE", "--run-dir", "FILE"],
        USAGE,
        "--run-dir",
    ),
    (
        "train-no-cache",
        ["train", "--run-config", cfg_json(), "--cache", "DIR/none.pt", "--run-dir", "OUT"],
        USAGE,
        "DIR/none.pt",
    ),
    (
        "train-cache-disagrees",
        [*TRAIN, "--run-config", cfg_json().replace('"resize": 4', '"resize": 7')],
        USAGE,
        "r7c1",
    ),
    (
        "train-cache-is-model",
        ["train", "--run-config", cfg_json(), "--cache", "MODEL", "--run-dir", "OUT"],
        USAGE,
        "not a data cache",
    ),
    (
        "train-damaged-cache",
        ["train", "--run-config", cfg_json(), "--cache", "BAD", "--run-dir", "OUT"],
        DAMAGED,
        "BAD",
    ),
    # evalset
    ("evalset-unknown", [*EVALSET, *EVALSET_SIZES, "foo"], USAGE, "foo"),
    ("evalset-tasks-neg", [*EVALSET, "random", *EVALSET_SIZES, "--tasks", "-3"], USAGE, "--tasks"),
    ("evalset-tasks-0", [*EVALSET, "random", *EVALSET_SIZES, "--tasks", "0"], USAGE, "--tasks"),
    (
        "evalset-seqs-0",
        [*EVALSET, "random", *EVALSET_SIZES, "--seqs-per-task", "0"],
        USAGE,
        "--seqs-per-task",
    ),
    ("evalset-len-0", [*EVALSET, "random", *EVALSET_SIZES, "--seq-len", "0"], USAGE, "--seq-len"),
    (
        "evalset-tasks-huge",
        [*EVALSET, "random", *EVALSET_SIZES, "--tasks", str(2**40)],
        USAGE,
        "--tasks",
    ),
    (
        "evalset-product-huge",
        [*EVALSET, "random", *EVALSET_SIZES, "--tasks", str(2**20), "--seq-len", "65536"],
        USAGE,
        "GiB bound",
    ),
    (
        "evalset-random-images-huge",
        [*EVALSET, "random", *EVALSET_SIZES, "--tasks", str(2**20), "--resize", "1024"],
        USAGE,
        "--resize 1024",
    ),
    (
        "evalset-resize-neg",
        [*EVALSET, "random", *EVALSET_SIZES, "--resize", "-1"],
        USAGE,
        "--resize",
    ),
    (
        "evalset-channels-2",
        [*EVALSET, "random", *EVALSET_SIZES, "--channels", "2"],
        USAGE,
        "--channels",
    ),
    ("evalset-seed-neg", [*EVALSET, "random", *EVALSET_SIZES, "--seed", "-1"], USAGE, "--seed"),
    ("evalset-no-npz", [*EVALSET, "mnist", *EVALSET_SIZES], USAGE, "--npz"),
    (
        "evalset-npz-missing",
        [*EVALSET, "mnist", *EVALSET_SIZES, "--npz", "DIR/none.npz"],
        USAGE,
        "DIR/none.npz",
    ),
    (
        "evalset-out-under-file",
        [*EVALSET[:-1], "FILE/e.pt", "random", *EVALSET_SIZES],
        USAGE,
        "--out",
    ),
    # cache
    ("cache-unknown", ["cache", "foo", *CACHE[2:]], USAGE, "foo"),
    ("cache-channels-2", [*CACHE, "--channels", "2"], USAGE, "--channels"),
    ("cache-resize-neg", [*CACHE, "--resize", "-1"], USAGE, "--resize"),
    ("cache-resize-huge", [*CACHE, "--resize", "5000"], USAGE, "--resize"),
    ("cache-npz-missing", [*CACHE, "--npz", "DIR/none.npz"], USAGE, "DIR/none.npz"),
    ("cache-out-is-input", [*CACHE[:-1], "FILE"], USAGE, "--out"),
    ("cache-out-is-dir", [*CACHE[:-1], "DIR"], USAGE, "--out"),
    ("cache-npz-not-a-dataset", [*CACHE, "--npz", "BAD"], USAGE, "BAD"),
    # evaluate
    ("evaluate-no-model", [*EVALUATE, "--tier", "cpu", "--model", "DIR/m.pt"], USAGE, "DIR/m.pt"),
    ("evaluate-no-evalset", [*EVALUATE, "--tier", "cpu", "--evalset", "DIR/e"], USAGE, "DIR/e"),
    ("evaluate-no-cache", [*EVALUATE, "--tier", "cpu", "--cache", "DIR/c"], USAGE, "DIR/c"),
    ("evaluate-bad-tier", [*EVALUATE, "--tier", "nosuch"], USAGE, "--tier"),
    ("evaluate-other-tier", [*EVALUATE, "--tier", "ci"], USAGE, "tier cpu"),
    ("evaluate-threads-0", [*EVALUATE, "--tier", "cpu", "--threads", "0"], USAGE, "--threads"),
    ("evaluate-out-is-model", [*EVALUATE[:-1], "MODEL", "--tier", "cpu"], USAGE, "--out"),
    ("evaluate-device-cuda", [*EVALUATE, "--tier", "cpu", "--device", "cuda"], USAGE, "CUDA"),
    (
        "evaluate-model-is-cache",
        [*EVALUATE, "--tier", "cpu", "--model", "CACHE"],
        USAGE,
        "not a trained model",
    ),
    (
        "evaluate-evalset-is-cache",
        [*EVALUATE, "--tier", "cpu", "--evalset", "CACHE"],
        USAGE,
        "not an evaluation set",
    ),
    ("evaluate-damaged-model", [*EVALUATE, "--tier", "cpu", "--model", "BAD"], DAMAGED, "BAD"),
    # figure
    ("figure-unknown", ["figure", "nosuch", *FIG3[2:]], USAGE, "nosuch"),
    ("figure-options-nojson", [*FIG3, "--options", "nojson"], USAGE, "--options"),
    ("figure-options-list", [*FIG3, "--options", "[1]"], USAGE, "--options"),
    ("figure-options-unknown", [*FIG3, "--options", '{"bogus": 1}'], USAGE, "bogus"),
    ("figure-missing-eval", [*FIG3[:-1], "DIR/none.json"], USAGE, "DIR/none.json"),
    ("figure-status-not-table1", [*FIG3, "--status", "FILE"], USAGE, "--status"),
    (
        "figure-table1-options",
        ["figure", "table1", *FIG3[2:], "--options", '{"a": 1}'],
        USAGE,
        "--options",
    ),
    ("figure-table1-expect", ["figure", "table1", *FIG3[2:], "--expect", "foo"], USAGE, "foo"),
    (
        "figure-table1-status-missing",
        ["figure", "table1", *FIG3[2:], "--status", "DIR/s.json"],
        USAGE,
        "DIR/s.json",
    ),
    ("figure-out-under-file", [*FIG3[:2], "--out", "FILE/fig", *FIG3[4:]], USAGE, "--out"),
    # data
    ("data-no-name", ["data", "--out", "OUT"], USAGE, "NAME"),
    ("data-unknown", ["data", "foo", "--out", "OUT"], USAGE, "foo"),
    ("data-timeout-neg", ["data", "mnist", "--out", "OUT", "--timeout", "-1"], USAGE, "--timeout"),
    ("data-timeout-nan", ["data", "mnist", "--out", "OUT", "--timeout", "nan"], USAGE, "--timeout"),
    (
        "data-no-source",
        ["data", "mnist", "--out", "OUT", "--source", "DIR/none"],
        USAGE,
        "DIR/none",
    ),
    ("data-out-is-dir", ["data", "mnist", "--out", "DIR", "--source", "EMPTY"], USAGE, "--out"),
    (
        "data-download-dir-file",
        ["data", "mnist", "--out", "OUT", "--source", "EMPTY", "--download-dir", "FILE"],
        USAGE,
        "--download-dir",
    ),
    ("data-unavailable", ["data", "mnist", "--out", "OUT", "--source", "EMPTY"], FAILED, "MNIST"),
    ("data-wrong-bytes", ["data", "mnist", "--out", "OUT", "--source", "WRONG"], FAILED, "md5"),
    # validate
    ("validate-missing", ["validate", "--params", "DIR/none.yaml"], USAGE, "DIR/none.yaml"),
    ("validate-not-yaml", ["validate", "--params", "BAD"], USAGE, "BAD"),
    ("validate-bad-value", ["validate", "--params", "PARAMS"], USAGE, "tiers.ci.train.lr"),
    # bench
    ("bench-threads-neg", ["bench", "--threads", "-2", "--out", "OUT"], USAGE, "--threads"),
    ("bench-repeats-0", ["bench", "--repeats", "0", "--out", "OUT"], USAGE, "--repeats"),
    ("bench-device-cuda", ["bench", "--device", "cuda", "--out", "OUT"], USAGE, "CUDA"),
]


@pytest.fixture
def paths(tmp_path) -> dict[str, str]:
    """The files the misuse cases point at; nothing under OUT exists."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("a plain file\n")
    (tmp_path / "bad").write_bytes(b"\x00garbage: [not: yaml\n")
    save_torch({"model": {}, "config": {"tier": "cpu"}}, tmp_path / "model.pt")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for file in get_spec("mnist").files.values():
        (wrong / file.name).write_bytes(b"not the official bytes")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["tiers"]["ci"]["train"]["lr"] = "fast"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return {
        "CACHE": str(write_cache(tmp_path / "cache.pt")),
        "FILE": str(tmp_path / "file"),
        "DIR": str(tmp_path / "dir"),
        "EMPTY": str(tmp_path / "empty"),
        "BAD": str(tmp_path / "bad"),
        "MODEL": str(tmp_path / "model.pt"),
        "WRONG": str(wrong),
        "PARAMS": str(tmp_path / "params.yaml"),
        "OUT": str(tmp_path / "out"),
    }


def _resolve(arg: str, paths: dict[str, str]) -> str:
    head, sep, tail = arg.partition("/")
    return paths[head] + sep + tail if head in paths else arg


@pytest.mark.parametrize(
    ("argv", "code", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_misuse_is_refused_with_a_message_and_exit_code(
    argv, code, needle, paths, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GPICL_TRACEBACK", raising=False)
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "bad")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([_resolve(a, paths) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err
    assert _resolve(needle, paths) in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    # Nothing else was written either (a damaged input may be removed, never replaced).
    after = sorted(p for p in tmp_path.rglob("*") if p.name != "bad")
    assert after == before


def test_one_line_per_error_names_the_command(paths, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            ["cache", "mnist", "--npz", paths["DIR"] + "/x.npz", "--resize", "4"]
            + ["--channels", "1", "--out", paths["OUT"]]
        )
    err = capsys.readouterr().err
    assert err.startswith("gpicl cache: error: --npz ") and err.count("\n") == 1


def test_keyboard_interrupt_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_validate", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate"])
    assert exit_info.value.code == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "gpicl validate: interrupted\n"


def test_non_finite_loss_exits_1(tmp_path, capsys):
    cache = write_cache(tmp_path / "c.pt", x_train=torch.full((N_TRAIN, NX), float("inf")))
    argv = ["train", "--run-config", cfg_json(steps=2, checkpoint_every=1), "--cache", str(cache)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == cli.EXIT_FAILED
    assert "non-finite loss" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "done.json").exists()


def test_a_bug_keeps_its_traceback(monkeypatch):
    def buggy(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "_cmd_validate", buggy)
    with pytest.raises(KeyError):
        cli.main(["validate"])


@pytest.mark.parametrize(
    ("tier", "experiment", "run"),
    [
        ("ci", "fig3", "mnist-s0"),
        ("cpu", "fig3", "fashion_mnist-s1"),
        ("paper", "transitions", "mnist-transformer64-t16-s1"),
        ("ci", "transitions", "mnist-mlp64-t4-s0"),
        ("ci", "table1", "mnist-sgd128-s0"),
        ("ci", "table1", "mnist-maml32-s0"),
        ("ci", "table1", "mnist-vsml8-s0"),
        ("ci", "state_size", "mnist-lstm32-s0"),
        ("ci", "state_size", "mnist-outer_lstm8-s0"),
        ("ci", "state_size", "mnist-transformer32-k4-l1-s0"),
        ("ci", "metaopt", "mnist-vbias_0_3-t10-s0"),
    ],
)
def test_run_configs_of_the_workflow_pass_the_check(tier, experiment, run):
    cfg = run_config(load_params(REPO_ROOT / "params.yaml"), tier, experiment, run)
    assert cli.check_run_config(json.loads(json.dumps(cfg))) == cfg


def test_a_valid_train_call_still_trains(tmp_path):
    cache = write_cache(tmp_path / "c.pt")
    cli.main(
        ["train", "--run-config", cfg_json(steps=2, checkpoint_every=1), "--cache", str(cache)]
        + ["--run-dir", str(tmp_path / "run"), "--device", "cpu", "--threads", "1"]
        + ["--no-progress", "--stop-after", "1"]
    )
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_version_names_the_package(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"gpicl {version('gpicl')}\n"


def test_every_subcommand_help_shows_defaults_and_choices(capsys):
    commands = ["validate", "data", "cache", "evalset", "train", "evaluate", "figure", "bench"]
    commands += ["predict", "export", "baselines"]
    helps = {}
    for command in commands:
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        helps[command] = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "--params PARAMS (default: params.yaml)" in helps["validate"]
    assert "--timeout TIMEOUT seconds per download try (default: 10.0)" in helps["data"]
    assert "--tier TIER (one of: ci, cpu, paper) (required)" in helps["evaluate"]
    assert "--channels {1,3} (one of: 1, 3) (required)" in helps["cache"]
    assert "(one of: mnist, fashion_mnist" in helps["data"]
    assert "--no-progress (default: False)" in helps["train"]
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(commands)
    for command, subparser in sub.choices.items():
        formatter = subparser._get_formatter()
        for action in subparser._actions:
            if action.option_strings and action.default is not argparse.SUPPRESS:
                shown = formatter._get_help_string(action)
                assert "(default: " in shown or "(required)" in shown, (command, action.dest)


# --------------------------------------------------------------------------- predict, export
def _write_csv(path, rows, header="f1,f2,label"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def predict_files(tmp_path) -> dict[str, str]:
    """A tiny model, a context CSV (two features, string labels), a query CSV and faulty ones."""
    from tests.test_classifier import write_model

    context = [(0.1 * i, (-1) ** i, "ab"[i % 2]) for i in range(10)]
    save_torch({"model": {}, "config": {}}, tmp_path / "x.pt")
    return {
        "MODEL": write_model(tmp_path / "model.pt"),
        "NOTMODEL": str(tmp_path / "x.pt"),
        "CTX": _write_csv(tmp_path / "ctx.csv", context),
        "QUERY": _write_csv(tmp_path / "q.csv", [(0.5, 1), (0.2, -1), (3, 0)], "f1,f2"),
        "QLABEL": _write_csv(tmp_path / "ql.csv", [(0.5, 1, "a")]),
        "TEXT": _write_csv(tmp_path / "text.csv", [("x", 1, "a"), ("y", 2, "b")]),
        "HOLE": _write_csv(tmp_path / "hole.csv", [(1, "", "a"), (2, 3, "b")]),
        "NOLABEL": _write_csv(tmp_path / "nolabel.csv", [(1, 2, "a"), (2, 3, "b")], "f1,f2,y"),
        "ONECLASS": _write_csv(tmp_path / "one.csv", [(1, 2, "a"), (2, 3, "a")]),
        "EMPTYCSV": _write_csv(tmp_path / "empty.csv", []),
        "QOTHER": _write_csv(tmp_path / "qo.csv", [(1, 2)], "f1,f3"),
        "DIR": str(tmp_path),
        "OUT": str(tmp_path / "out" / "pred.csv"),
    }


PREDICT = ["predict", "--model", "MODEL", "--context", "CTX", "--query", "QUERY", "--out", "OUT"]
PREDICT_CASES = [
    ("no-context", ["--context", "DIR/nosuch.csv"], USAGE, "nosuch.csv: no such file"),
    ("query-is-dir", ["--query", "DIR"], USAGE, "is a folder, not a file"),
    ("out-is-input", ["--out", "CTX"], USAGE, "ctx.csv: is also an input"),
    ("not-a-model", ["--model", "NOTMODEL"], USAGE, "not a trained model"),
    ("text-feature", ["--context", "TEXT"], USAGE, "must be numeric; not: f1"),
    ("missing-value", ["--context", "HOLE"], USAGE, "column 'f2' has a missing"),
    ("no-label-column", ["--context", "NOLABEL"], USAGE, "no label column 'label'"),
    ("one-class", ["--context", "ONECLASS"], USAGE, "1 class"),
    ("empty-csv", ["--context", "EMPTYCSV"], USAGE, "no rows"),
    ("query-columns", ["--query", "QOTHER"], USAGE, "lacks f2; has columns not in the context"),
    ("zero-members", ["--n-estimators", "0"], USAGE, "--n-estimators"),
    ("device", ["--device", "cuda"], USAGE, "CUDA"),
]


@pytest.mark.parametrize(
    ("change", "code", "needle"), [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_misuse_is_refused_before_writing(
    change, code, needle, predict_files, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GPICL_TRACEBACK", raising=False)
    argv = list(PREDICT)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([_resolve(a, predict_files) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err
    assert needle in err and "Traceback" not in err
    assert not (Path(predict_files["DIR"]) / "out").exists()


def test_predict_writes_labels_and_class_probabilities(predict_files):
    import pandas as pd

    for query in ("QUERY", "QLABEL"):  # a label column in the query is ignored
        argv = [_resolve(a, predict_files) for a in PREDICT]
        argv[argv.index("--query") + 1] = predict_files[query]
        cli.main([*argv, "--device", "cpu", "--threads", "1"])
        out = pd.read_csv(predict_files["OUT"])
        assert list(out.columns) == ["label", "proba_a", "proba_b"]
        assert set(out["label"]) <= {"a", "b"}
        assert ((out["proba_a"] + out["proba_b"] - 1).abs() < 1e-5).all()
    assert len(out) == 1


def test_missing_default_model_names_the_command_that_makes_it(predict_files, capsys, monkeypatch):
    from gpicl import classifier

    def absent():
        raise FileNotFoundError("no default checkpoint; gpicl export")

    monkeypatch.setattr(classifier, "default_checkpoint", absent)
    argv = [_resolve(a, predict_files) for a in PREDICT[3:]]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", *argv])
    assert exit_info.value.code == USAGE
    assert "gpicl export" in capsys.readouterr().err


def test_export_twice_gives_the_same_bytes(predict_files, tmp_path, capsys):
    for name in ("a.pt", "b.pt"):
        cli.main(["export", "--model", predict_files["MODEL"], "--out", str(tmp_path / name)])
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert "float32" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "NOTMODEL", "--out", "OUT"], "not a trained model"),
        (["--model", "MODEL", "--out", "MODEL"], "is also an input"),
        (["--model", "DIR/nosuch.pt", "--out", "OUT"], "no such file"),
        (["--model", "MODEL", "--out", "OUT", "--dtype", "int8"], "--dtype"),
    ],
    ids=["not-a-model", "out-is-model", "no-model", "dtype"],
)
def test_export_misuse_is_refused_before_writing(argv, needle, predict_files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", *[_resolve(a, predict_files) for a in argv]])
    assert exit_info.value.code == USAGE
    assert _resolve(needle, predict_files) in capsys.readouterr().err
    assert not (Path(predict_files["DIR"]) / "out").exists()
