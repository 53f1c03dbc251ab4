"""State-size figure from hand-built evaluation files: CSV numbers, pairs, empty cases, bytes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gpicl.cli import main
from gpicl.config import load_params, run_config
from gpicl.figures import FIGURES, state_size
from gpicl.io import read_json, write_json

LENGTH = 5
NUM_SEQUENCES = 64


def model_cfg(method: str, size: int, **extra) -> dict:
    if method == "transformer":
        return {"type": "transformer", "width": size, "layers": 2, "heads": 4, "key_size": 8,
                "mlp_ratio": 4, **extra}  # fmt: skip
    if method == "outer_lstm":
        return {"type": "outer_lstm", "hidden_size": size, "heads": 2, **extra}
    return {"type": method, "hidden_size": size, **extra}


def eval_file(
    root: Path,
    method: str,
    model: dict,
    seed: int,
    correct: int,
    num_params: int,
    state: int,
    dataset: str = "mnist",
    train: str = "mnist",
    tier: str = "cpu",
    num_tasks: int = 2**25,
    curriculum: bool = False,
) -> Path:
    """One evaluation file; the last accuracy is correct / NUM_SEQUENCES on every task set."""
    last = correct / NUM_SEQUENCES
    stats = {
        "num_tasks": 4,
        "num_sequences": NUM_SEQUENCES,
        "accuracy": [0.1] * (LENGTH - 1) + [last],
        "loss": [2.3] * LENGTH,
        "correct_last": correct,
    }
    name = f"{method}-{config_name(model)}-t{num_tasks}-s{seed}"
    record = {
        "tier": tier,
        "experiment": "state_size",
        "run": f"state_size/{name}",
        "method": method,
        "model_size": model.get("width", model.get("hidden_size")),
        "model": model,
        "num_params": num_params,
        "state_size": state,
        "num_tasks": num_tasks,
        "dataset": dataset,
        "train_dataset": train,
        "seed": seed,
        "curriculum": curriculum,
        "sequence_length": LENGTH,
        "task_sets": {"seen": stats, "unseen": stats, "identity": stats},
    }
    path = root / "eval" / train / name / f"{dataset}.json"
    write_json(path, record)
    return path


def config_name(model: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in sorted(model.items()) if k != "type")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


T64 = model_cfg("transformer", 64)
T16 = model_cfg("transformer", 16)
LSTM = model_cfg("lstm", 128)
OUTER = model_cfg("outer_lstm", 16)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """Transformer w64 (2 seeds) and an outer LSTM with nearly its parameter count but 1/8 of its
    state: one pair; an LSTM far off in parameters; a Transformer w16."""
    root = tmp_path / "inputs"
    return [
        eval_file(root, "transformer", T64, 0, 48, num_params=100_000, state=16_000),
        eval_file(root, "transformer", T64, 1, 40, num_params=100_000, state=16_000),
        eval_file(root, "outer_lstm", OUTER, 0, 16, num_params=110_000, state=2_000),
        eval_file(root, "lstm", LSTM, 0, 8, num_params=200_000, state=256),
        eval_file(root, "lstm", LSTM, 1, 12, num_params=200_000, state=256),
        eval_file(root, "transformer", T16, 0, 20, num_params=12_000, state=16_000),
    ]


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_registered_for_the_cli():
    assert FIGURES["state_size"] is state_size.make


def test_config_label_names_every_field():
    assert state_size.config_label(T64) == "w64 L2 H4 k8 mlp4"
    assert state_size.config_label(OUTER) == "h16 H2"
    assert state_size.config_label({"type": "lstm", "hidden_size": 8, "dropout": 0.1}) == (
        "h8 dropout=0.1"
    )


def test_csv_holds_the_means_of_the_inputs(tmp_path, files):
    out = tmp_path / "fig" / "state_size"
    state_size.make(files, out)
    assert {p.name for p in out.parent.iterdir()} == {
        "state_size.png",
        "state_size.svg",
        "state_size.csv",
        "state_size_pairs.csv",
    }
    rows = read_rows(out.with_suffix(".csv"))
    assert list(rows[0]) == list(state_size.CSV_COLUMNS)
    # architecture order, then state size, then parameters
    assert [(r["method"], r["config"]) for r in rows] == [
        ("transformer", "w16 L2 H4 k8 mlp4"),
        ("transformer", "w64 L2 H4 k8 mlp4"),
        ("lstm", "h128"),
        ("outer_lstm", "h16 H2"),
    ]
    t64 = rows[1]
    assert (t64["num_params"], t64["state_size"], t64["n_seeds"]) == ("100000", "16000", "2")
    assert float(t64["accuracy_mean"]) == pytest.approx((48 + 40) / 2 / 64, abs=1e-6)
    assert (t64["accuracy_min"], t64["accuracy_max"]) == ("0.625000", "0.750000")
    assert t64["seeds"] == "0;1"
    assert t64["accuracies"] == "0.750000;0.625000"
    assert t64["runs"].split(";") == [
        f"state_size/transformer-{config_name(T64)}-t{2**25}-s{s}" for s in (0, 1)
    ]
    assert t64["num_tasks"] == str(2**25)
    lstm = rows[2]
    assert float(lstm["accuracy_mean"]) == pytest.approx(10 / 64, abs=1e-6)
    assert rows[3]["n_seeds"] == "1"
    assert rows[3]["accuracy_mean"] == "0.250000"


def test_pairs_found_when_params_close_and_states_far_apart(tmp_path, files):
    out = tmp_path / "state_size"
    state_size.make(files, out)
    pairs = read_rows(out.with_name("state_size_pairs.csv"))
    assert list(pairs[0]) == list(state_size.PAIR_COLUMNS)
    assert len(pairs) == 1
    (pair,) = pairs
    assert (pair["method_small"], pair["config_small"]) == ("outer_lstm", "h16 H2")
    assert (pair["method_large"], pair["config_large"]) == ("transformer", "w64 L2 H4 k8 mlp4")
    assert (pair["num_params_small"], pair["num_params_large"]) == ("110000", "100000")
    assert (pair["state_size_small"], pair["state_size_large"]) == ("2000", "16000")
    assert float(pair["param_rel_diff"]) == pytest.approx(0.1, abs=1e-6)
    assert float(pair["state_ratio"]) == pytest.approx(8.0)
    assert float(pair["accuracy_diff"]) == pytest.approx(44 / 64 - 16 / 64, abs=1e-6)
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert state_size.NO_PAIR not in svg
    assert "equal-parameter pair" in svg and "(1 pair)" in svg


@pytest.mark.parametrize(
    ("tolerance", "ratio", "expected"),
    [
        (0.10, 8.0, 1),  # exactly at both limits: a pair
        (0.09, 4.0, 0),  # parameters 10% apart: too far
        (0.15, 8.5, 0),  # states only 8x apart
        (100.0, 1.0, 6),  # every pair of the four configurations
    ],
)
def test_pair_limits(tmp_path, files, tolerance, ratio, expected):
    out = tmp_path / "state_size"
    state_size.make(files, out, pair_param_tolerance=tolerance, pair_min_state_ratio=ratio)
    assert len(read_rows(out.with_name("state_size_pairs.csv"))) == expected


def test_no_pair_leaves_a_header_and_says_so(tmp_path, files):
    out = tmp_path / "state_size"
    state_size.make(files[:2] + files[3:], out)  # without the outer LSTM
    assert out.with_name("state_size_pairs.csv").read_text(encoding="utf-8") == (
        ",".join(state_size.PAIR_COLUMNS) + "\n"
    )
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert state_size.NO_PAIR in svg
    assert "chance" in svg and "tier: cpu" in svg


def test_without_files_draws_empty_panels(tmp_path):
    out = tmp_path / "state_size"
    state_size.make([], out)
    assert out.with_suffix(".csv").read_text(encoding="utf-8") == (
        ",".join(state_size.CSV_COLUMNS) + "\n"
    )
    svg = out.with_suffix(".svg").read_text(encoding="utf-8")
    assert "no evaluation files" in svg and state_size.NO_PAIR in svg


def test_other_methods_and_datasets_are_ignored(tmp_path, files):
    root = tmp_path / "others"
    extra = [
        eval_file(root, "mlp", model_cfg("mlp", 64), 0, 6, num_params=100_000, state=1),
        eval_file(root, "vsml", model_cfg("vsml", 16), 0, 6, num_params=105_000, state=500),
        eval_file(root, "sgd", model_cfg("sgd", 128), 0, 6, num_params=101_000, state=100),
        eval_file(root, "lstm", LSTM, 0, 60, num_params=200_000, state=256, dataset="kmnist"),
    ]
    state_size.make(files, tmp_path / "a" / "state_size")
    state_size.make(files + extra, tmp_path / "b" / "state_size")
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_outputs_are_byte_identical(tmp_path, files):
    state_size.make(files, tmp_path / "a" / "state_size")
    state_size.make(files[::-1], tmp_path / "b" / "state_size")
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_task_set_and_dataset_options(tmp_path, files):
    root = tmp_path / "fashion"
    fashion = [
        eval_file(root, "transformer", T64, 0, 32, 100_000, 16_000, dataset="fashion_mnist"),
        eval_file(root, "lstm", LSTM, 0, 8, 200_000, 256, dataset="fashion_mnist"),
    ]
    out = tmp_path / "state_size"
    state_size.make(files + fashion, out, dataset="fashion_mnist", task_set="seen")
    rows = read_rows(out.with_suffix(".csv"))
    assert [(r["config"], r["accuracy_mean"]) for r in rows] == [
        ("w64 L2 H4 k8 mlp4", "0.500000"),
        ("h128", "0.125000"),
    ]
    assert "Fashion MNIST, seen tasks" in out.with_suffix(".svg").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no evaluation file for dataset 'svhn'"):
        state_size.make(files, out, dataset="svhn")
    path = files[0]
    record = read_json(path)
    del record["task_sets"]["identity"]
    write_json(path, record)
    with pytest.raises(ValueError, match="no task set 'identity'"):
        state_size.make(files, out, task_set="identity")


def test_mixed_meta_training_datasets_are_an_error_unless_one_is_chosen(tmp_path, files):
    other = eval_file(tmp_path / "x", "lstm", LSTM, 0, 30, 200_000, 256, train="fashion_mnist")
    out = tmp_path / "state_size"
    with pytest.raises(ValueError, match="train_dataset"):
        state_size.make(files + [other], out)
    state_size.make(files + [other], out, train_dataset="mnist")
    assert len(read_rows(out.with_suffix(".csv"))) == 4
    state_size.make(files + [other], out, train_dataset="fashion_mnist")
    assert [r["accuracy_mean"] for r in read_rows(out.with_suffix(".csv"))] == ["0.468750"]


def test_mixed_tiers_duplicates_and_inconsistent_sizes_are_errors(tmp_path, files):
    out = tmp_path / "state_size"
    root = tmp_path / "bad"
    ci = eval_file(root / "ci", "lstm", LSTM, 5, 8, 200_000, 256, tier="ci")
    with pytest.raises(ValueError, match="tier"):
        state_size.make(files + [ci], out)
    dup = eval_file(root / "dup", "transformer", T64, 0, 8, 100_000, 16_000)
    with pytest.raises(ValueError, match="both give"):
        state_size.make(files + [dup], out)
    odd = eval_file(root / "odd", "transformer", T64, 2, 8, 100_001, 16_000)
    with pytest.raises(ValueError, match="num_params differs by seed"):
        state_size.make(files + [odd], out)


def test_files_without_model_or_state_size_are_rejected(tmp_path, files):
    record = read_json(files[0])
    del record["state_size"]
    write_json(files[0], record)
    with pytest.raises(ValueError, match=r"lacks keys \['state_size'\]"):
        state_size.make(files, tmp_path / "state_size")


def test_bad_pair_options_are_errors(tmp_path, files):
    with pytest.raises(ValueError, match="pair_param_tolerance"):
        state_size.make(files, tmp_path / "s", pair_param_tolerance=-0.1)
    with pytest.raises(ValueError, match="pair_min_state_ratio"):
        state_size.make(files, tmp_path / "s", pair_min_state_ratio=0.5)


def test_cli_passes_options(tmp_path, files):
    out = tmp_path / "cli" / "state_size"
    options = json.dumps({"pair_param_tolerance": 0.09, "pair_min_state_ratio": 4.0})
    main(
        ["figure", "state_size", "--out", str(out), "--evals", *map(str, files)]
        + ["--options", options]
    )
    assert len(read_rows(out.with_name("state_size_pairs.csv"))) == 0
    assert len(read_rows(out.with_suffix(".csv"))) == 4


def test_a_methods_recipe_wins_over_the_grid_budget():
    """The state-size LSTMs train with the LSTM's own recipe (Table 1's steps and curriculum:
    at the grid's 2,000 steps they stay on the plateau), the grid's Transformers and
    outer-product LSTMs (no recipe of their own) with the grid's budget."""
    params = load_params("params.yaml")
    grid_train = params["experiments"]["state_size"]["grids"]["cpu"]["train"]
    recipe = params["tiers"]["cpu"]["methods"]["lstm"]["train"]
    lstm = run_config(params, "cpu", "state_size", "mnist-lstm32-s0")["train"]
    assert lstm["steps"] == recipe["steps"] != grid_train["steps"]
    assert lstm["curriculum"] == recipe["curriculum"]
    for run in ("mnist-outer_lstm8-s0", "mnist-transformer32-s0"):
        train = run_config(params, "cpu", "state_size", run)["train"]
        assert train["steps"] == grid_train["steps"]
        assert train["curriculum"] == grid_train["curriculum"]
