"""The meta-trained Table 1 rows' learning-rate sweep: shortened budgets that keep the run's
shape, run names and configs, and the table that names each row's best learning rate."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest

from gpicl.config import (
    LR_SWEEP,
    ParamsError,
    curriculum_end,
    load_params,
    parse_params_file,
    run_config,
    scaled_budget,
    validate_params,
)
from gpicl.figures import lr_sweep
from gpicl.figures.registry import REGISTRY, figure_options
from gpicl.io import write_json
from gpicl.targets import (
    SGD_VALIDATION,
    experiment_runs,
    figure_inputs,
    lr_sweep_runs,
    table1_runs,
)

TRAIN = {
    "steps": 12000,
    "checkpoint_every": 250,
    "lr": 3e-3,
    "curriculum": {"start_examples": 10, "hold_steps": 300, "anneal_steps": 4500},
    "lr_schedule": {"warmup_steps": 200, "decay": "cosine", "final_fraction": 0.0},
}


def test_a_scaled_budget_compresses_steps_warmup_curriculum_and_checkpoints_alike():
    short = scaled_budget(TRAIN, 0.25)
    assert short["steps"] == 3000
    assert short["checkpoint_every"] == 62
    assert short["lr_schedule"]["warmup_steps"] == 50
    assert short["curriculum"] == {"start_examples": 10, "hold_steps": 75, "anneal_steps": 1125}
    # i.i.d. from the same share of the run: the short run ends where the long one does
    assert curriculum_end(short) / short["steps"] == curriculum_end(TRAIN) / TRAIN["steps"]
    assert short["lr"] == TRAIN["lr"] and TRAIN["steps"] == 12000  # the input is not changed


def test_a_full_fraction_is_the_run_itself_and_tiny_runs_keep_one_step():
    assert scaled_budget(TRAIN, 1.0) == TRAIN
    tiny = scaled_budget({**TRAIN, "steps": 3, "checkpoint_every": 2}, 0.1)
    assert tiny["steps"] == 1 and tiny["checkpoint_every"] == 1
    assert tiny["curriculum"] is None  # too short to hold a curriculum and end it: i.i.d.


@pytest.mark.parametrize("tier", ["ci", "cpu"])
def test_every_fraction_gives_runs_that_end_on_iid_sequences(tier):
    """The curriculum's end is scaled once and kept before the last step, so no fraction makes
    validation refuse the sweep (rounding hold and anneal apart did, for some)."""
    params = load_params("params.yaml")
    for percent in range(1, 101):
        params["experiments"]["table1"]["lr_sweep"][tier]["fraction"] = percent / 100
        for run in lr_sweep_runs(params, tier):
            train = run_config(params, tier, LR_SWEEP, run)["train"]
            if train["curriculum"] is not None:
                assert 0 < train["curriculum"]["hold_steps"] + 1 <= curriculum_end(train)
                assert curriculum_end(train) < train["steps"], (percent, run)


def test_each_meta_trained_row_is_swept_at_each_lr_but_sgd_is_not():
    params = load_params("params.yaml")
    assert lr_sweep_runs(params, "ci") == [  # ci: one lr, one seed; MAML/VSML/LSTM of size 32/8/32
        "mnist-vlr0p01-s0",
        "mnist-maml32-vlr0p01-s0",
        "mnist-vsml8-vlr0p01-s0",
        "mnist-lstm32-vlr0p01-s0",
    ]
    for tier in ("ci", "cpu", "paper"):
        grid = params["experiments"]["table1"]["lr_sweep"][tier]
        runs = lr_sweep_runs(params, tier)
        trained = table1_runs(params, tier, trained_only=True)
        rows = 1 + len(trained) // len(params["tiers"][tier]["seeds"])  # + the Transformer
        assert len(runs) == rows * len(grid["lrs"]) * len(grid["seeds"]) == len(set(runs))
        assert not [r for r in runs if "-sgd" in r]
        assert experiment_runs(params, tier)[LR_SWEEP] == runs


def test_a_sweep_run_is_its_table1_row_at_another_lr_on_a_fraction_of_the_steps():
    params = load_params("params.yaml")
    fraction = params["experiments"]["table1"]["lr_sweep"]["cpu"]["fraction"]
    for row_experiment, row, swept, lr in (
        ("fig3", "mnist-s0", "mnist-vlr0p01-s0", 1e-2),
        ("table1", "mnist-lstm128-s0", "mnist-lstm128-vlr0p01-s0", 1e-2),
        ("table1", "mnist-vsml16-s0", "mnist-vsml16-vlr0p001-s0", 1e-3),
    ):
        full = run_config(params, "cpu", row_experiment, row)
        cfg = run_config(params, "cpu", LR_SWEEP, swept)
        assert cfg["model"] == full["model"]
        assert cfg["train"] == {**scaled_budget(full["train"], fraction), "lr": lr}
        assert cfg["variant"] == f"lr{lr:g}".replace(".", "p")


def test_a_sweep_run_outside_the_sweep_is_refused():
    params = load_params("params.yaml")
    for run in (
        "mnist-vlr0p5-s0",  # not a swept lr
        "mnist-lstm128-s0",  # no lr
        "mnist-sgd128-vlr0p003-s0",  # nothing to meta-train
        "mnist-outer_lstm16-vlr0p01-s0",  # not a Table 1 row
        "mnist-lstm64-vlr0p01-s0",  # not the row's size
        "mnist-transformer128-k32-vlr0p01-s0",  # GPICL's row is the tier's model, unnamed
        "fashion_mnist-vlr0p01-s0",  # Table 1 meta-trains on MNIST
        "mnist-vlr0p01-t4-s0",  # nor on a finite task pool
    ):
        with pytest.raises(ParamsError, match="lr_sweep"):
            run_config(params, "cpu", LR_SWEEP, run)


def test_a_sweep_of_no_steps_is_refused_naming_the_key():
    params = copy.deepcopy(parse_params_file("params.yaml"))
    params["experiments"]["table1"]["lr_sweep"]["cpu"]["fraction"] = 0
    with pytest.raises(ParamsError, match=r"experiments\.table1\.lr_sweep\.cpu\.fraction"):
        validate_params(params)


def test_two_lrs_of_one_run_name_are_refused_before_any_compute():
    params = copy.deepcopy(parse_params_file("params.yaml"))
    params["experiments"]["table1"]["lr_sweep"]["ci"]["lrs"] = [1e-3, 1.0000001e-3]
    with pytest.raises(ParamsError, match=r"lr_sweep\.ci\.lrs: .* not distinct"):
        validate_params(params)


def test_the_table_reads_the_sweeps_validation_evaluations_and_runs():
    params = load_params("params.yaml")
    inputs = figure_inputs(params, "ci", {"mnist"}, LR_SWEEP)
    runs = lr_sweep_runs(params, "ci")
    assert inputs["evals"] == [
        f"results/ci/eval/{LR_SWEEP}/{r}/{SGD_VALIDATION}.json" for r in runs
    ]
    assert inputs["runs"] == [f"results/ci/runs/{LR_SWEEP}/{r}/done.json" for r in runs]
    assert figure_inputs(params, "ci", set(), LR_SWEEP) == {"evals": [], "runs": []}
    options = figure_options(REGISTRY[LR_SWEEP], params, "cpu")
    assert options["row_lrs"]["transformer"] == params["tiers"]["cpu"]["train"]["lr"]
    assert set(options["row_lrs"]) == {"transformer", "maml", "vsml", "lstm"}
    assert options["fraction"] == params["experiments"]["table1"]["lr_sweep"]["cpu"]["fraction"]


def _fake(root, method, lr, seed, correct, split="train", loss=2.0, cpu_s=60.0):
    name = f"mnist-{method}-vlr{lr:g}-s{seed}".replace(".", "p")
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True)
    train = {"steps": 10, "tasks_per_step": 2, "seqs_per_task": 2, "lr": lr}
    (run_dir / "log.csv").write_text(
        "step,loss,accuracy,grad_norm,distinct_examples\n" + f"10,{loss},0.5,1.0,0\n"
    )
    write_json(
        run_dir / "done.json",
        {
            "finished": True,
            "steps_done": 10,
            "name": f"{LR_SWEEP}/{name}",
            "seed": seed,
            "variant": f"lr{lr:g}",
            "train": train,
            "final_loss": loss,
        },
    )
    write_json(run_dir / "timing.json", {"cpu_seconds_total": cpu_s, "wall_seconds_total": cpu_s})
    n = 100
    record = {
        "tier": "ci",
        "run": f"{LR_SWEEP}/{name}",
        "experiment": LR_SWEEP,
        "dataset": "mnist",
        "split": split,
        "train_dataset": "mnist",
        "seed": seed,
        "method": method,
        "sequence_length": 2,
        "curriculum": True,
        "task_sets": {
            "unseen": {
                "num_tasks": 4,
                "num_sequences": n,
                "accuracy": [0.1, correct / n],
                "loss": [2.3, 2.0],
                "correct_last": correct,
            }
        },
    }
    path = root / "eval" / name / "mnist_val.json"
    write_json(path, record)
    return path, run_dir / "done.json"


def _table(tmp_path, fakes, row_lrs):
    evals, runs = zip(*fakes, strict=True)
    out = tmp_path / "out" / "lr_sweep"
    lr_sweep.make(evals, out, run_files=runs, row_lrs=row_lrs, fraction=0.25)
    with open(f"{out}_time.csv", newline="") as f:
        times = list(csv.DictReader(f))
    assert sorted(t["run"] for t in times) == sorted(f"{LR_SWEEP}/{r.parent.name}" for r in runs)
    assert {float(t["cpu_minutes"]) for t in times} == {1.0}  # 60 s each
    with open(f"{out}.csv", newline="") as f:
        return list(csv.DictReader(f)), Path(f"{out}.md").read_text()


def test_the_best_lr_per_row_is_pooled_over_seeds_and_set_beside_table1s(tmp_path):
    fakes = [
        _fake(tmp_path, "lstm", 1e-3, 0, 30),
        _fake(tmp_path, "lstm", 1e-3, 1, 50),  # pooled: 80 / 200
        _fake(tmp_path, "lstm", 1e-2, 0, 45),
        _fake(tmp_path, "lstm", 1e-2, 1, 30),  # pooled: 75 / 200
        _fake(tmp_path, "maml", 3e-3, 0, 20),
        _fake(tmp_path, "maml", 1e-2, 0, 20),  # a tie: the smaller lr wins
    ]
    rows, text = _table(tmp_path, fakes, {"lstm": 1e-2, "maml": 3e-3})
    by = {(r["method"], float(r["lr"])): r for r in rows}
    assert by[("lstm", 1e-3)]["best"] == "True" and by[("lstm", 1e-2)]["best"] == "False"
    assert float(by[("lstm", 1e-3)]["validation_accuracy"]) == pytest.approx(0.4)
    assert by[("lstm", 1e-3)]["seeds"] == "0;1" and by[("lstm", 1e-3)]["count"] == "200"
    assert by[("lstm", 1e-3)]["agrees"] == "False"
    assert by[("maml", 3e-3)]["best"] == "True" and by[("maml", 3e-3)]["agrees"] == "True"
    assert "LSTM: lr 0.01, **not the sweep's best (0.001)**" in text
    assert "MAML: lr 0.003, the sweep's best" in text
    assert text.index("MAML") < text.index("LSTM")  # the paper's row order
    rows, text = _table(tmp_path / "again", fakes[:2], {"lstm": 3e-3})
    assert "LSTM: lr 0.003, not among the swept learning rates (the sweep's best: 0.001)" in text


def test_a_test_split_record_or_an_unevaluated_run_is_an_error(tmp_path):
    path, done = _fake(tmp_path / "a", "lstm", 1e-3, 0, 30, split="test")
    with pytest.raises(ValueError, match="validation set"):
        lr_sweep.make([path], tmp_path / "a" / "out", run_files=[done])
    path, done = _fake(tmp_path / "b", "lstm", 1e-3, 0, 30)
    _, other = _fake(tmp_path / "b", "lstm", 1e-2, 0, 30)
    with pytest.raises(ValueError, match="without a validation evaluation"):
        lr_sweep.make([path], tmp_path / "b" / "out", run_files=[done, other])


def test_runs_on_the_loss_plateau_are_never_the_best_and_a_row_of_them_names_none(tmp_path):
    fakes = [
        _fake(tmp_path, "vsml", 1e-3, 0, 14, loss=2.3026),  # chance-level noise above the rest
        _fake(tmp_path, "vsml", 1e-2, 0, 9, loss=2.3030),
        _fake(tmp_path, "lstm", 1e-3, 0, 15, loss=2.3020),
        _fake(tmp_path, "lstm", 1e-2, 0, 12, loss=2.2),  # left the plateau: the best
    ]
    rows, text = _table(tmp_path, fakes, {"vsml": 3e-3, "lstm": 1e-2})
    by = {(r["method"], float(r["lr"])): r for r in rows}
    assert [by[("vsml", lr)]["on_plateau"] for lr in (1e-3, 1e-2)] == ["True", "True"]
    assert not [r for r in rows if r["method"] == "vsml" and r["best"] == "True"]
    assert by[("vsml", 1e-3)]["agrees"] == "NA"
    assert by[("lstm", 1e-2)]["best"] == "True" and by[("lstm", 1e-2)]["agrees"] == "True"
    assert (
        "VSML: every learning rate ended on the loss plateau, so the sweep cannot choose at this "
        "budget; Table 1 trains it with lr 0.003" in text
    )
    assert "LSTM: lr 0.01, the sweep's best" in text


def test_without_sweep_files_the_table_says_so(tmp_path):
    lr_sweep.make([], tmp_path / "lr_sweep", run_files=[], row_lrs={"lstm": 3e-3})
    assert "No learning-rate sweep in this tier" in Path(f"{tmp_path / 'lr_sweep'}.md").read_text()
    assert (tmp_path / "lr_sweep.csv").read_text().startswith("method,lr,")
