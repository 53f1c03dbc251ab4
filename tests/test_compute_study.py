"""The compute study: learning-rate schedules, the rule that training ends on i.i.d. sequences
where evaluation is i.i.d., and the accuracy-against-CPU-minutes figure."""

from __future__ import annotations

import copy
import csv
import math

import pytest

from gpicl.config import (
    ParamsError,
    check_sizes,
    load_params,
    parse_params_file,
    run_config,
    validate_params,
)
from gpicl.figures import compute_study
from gpicl.io import write_json
from gpicl.optim import lr_factor
from gpicl.targets import compute_eval_files, compute_runs, experiment_runs


def test_constant_schedule_is_the_papers_constant_lr():
    assert [lr_factor(s, 100, None) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_warmup_then_decay_to_the_final_fraction_at_the_last_step(decay):
    schedule = {"warmup_steps": 10, "decay": decay, "final_fraction": 0.1}
    factors = [lr_factor(s, 110, schedule) for s in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[:10] == sorted(factors[:10])  # warm-up rises
    assert factors[10] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1)
    assert factors[10:] == sorted(factors[10:], reverse=True)  # then decays
    middle = factors[10 + 50]  # half-way through the decay
    assert middle == pytest.approx(0.55, abs=0.01)  # both shapes pass through the mean there


def test_cosine_and_linear_differ_between_the_ends():
    cos = {"warmup_steps": 0, "decay": "cosine", "final_fraction": 0.0}
    lin = {**cos, "decay": "linear"}
    step, steps = 25, 101
    assert lr_factor(step, steps, cos) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(step, steps, lin) == pytest.approx(0.75)


def _params():
    return parse_params_file("params.yaml")


def test_a_curriculum_that_outlasts_the_run_is_refused_naming_where():
    params = copy.deepcopy(_params())
    params["tiers"]["cpu"]["methods"]["vsml"]["train"]["curriculum"] = {
        "start_examples": 10,
        "hold_steps": 300,
        "anneal_steps": 3000,
    }
    problems = check_sizes(params)
    assert any(p.startswith("tiers.cpu.methods.vsml: train.curriculum") for p in problems)
    with pytest.raises(ParamsError, match="would end on repeated exemplars"):
        validate_params(params)


def test_every_shipped_run_evaluated_on_iid_sequences_ends_on_them():
    """Table 1, Figure 3, the grids and the compute study: the curriculum ends before the last
    step (the meta-optimisation study may stop on it: it measures the plateau)."""
    params = load_params("params.yaml")
    assert not [p for p in check_sizes(params) if "curriculum" in p]


def test_compute_runs_are_named_from_points_and_resolve(tmp_path):
    params = load_params("params.yaml")
    for tier in ("ci", "cpu", "paper"):
        runs = compute_runs(params, tier)
        grid = params["experiments"]["compute"]["grids"][tier]
        assert len(runs) == len(grid["points"]) * len(grid["seeds"])
        assert experiment_runs(params, tier)["compute"] == runs
        evals = compute_eval_files(params, tier)
        # The study reads its own runs and Figure 3's MNIST runs on every test dataset.
        assert any("/fig3/mnist-s" in f for f in evals)
        assert len(evals) == len(set(evals))


def _fake_run(root, experiment, name, seed, steps, cpu_s, accs, amp_cpu=False, loss=1.5):
    run_dir = root / experiment / name
    run_dir.mkdir(parents=True)
    model = {"type": "transformer", "width": 64, "layers": 2, "key_size": 16}
    train = {
        "steps": steps,
        "tasks_per_step": 2,
        "seqs_per_task": 2,
        "seq_len": 3,
        "num_tasks": 4,
        "lr": 3e-3,
        "eps": 1e-8,
        "eps_root": 1e-8,
        "curriculum": {"start_examples": 2, "hold_steps": 1, "anneal_steps": 1},
        "lr_schedule": None,
        "amp_cpu": amp_cpu,
        "bias_fraction": 0.0,
    }
    write_json(run_dir / "config.json", {"model": model, "train": train})
    (run_dir / "log.csv").write_text(
        "step,loss,accuracy,grad_norm,distinct_examples\n" + f"{steps},{loss},0.5,1.0,0\n"
    )
    done = {
        "finished": True,
        "steps_done": steps,
        "name": f"{experiment}/{name}",
        "seed": seed,
        "variant": None,
        "train": train,
        "final_loss": loss,
        "num_params": 1000,
        "num_tasks": 4,
        "plateau_step": None,
    }
    write_json(run_dir / "done.json", done)
    write_json(run_dir / "timing.json", {"cpu_seconds_total": cpu_s, "wall_seconds_total": cpu_s})
    evals = []
    for dataset, acc in accs.items():
        path = root / "eval" / experiment / name / f"{dataset}.json"
        n = 100
        record = {
            "tier": "ci",
            "run": f"{experiment}/{name}",
            "experiment": experiment,
            "dataset": dataset,
            "train_dataset": "mnist",
            "seed": seed,
            "method": "transformer",
            "sequence_length": 3,
            "num_tasks": 4,
            "curriculum": True,
            "task_sets": {
                "unseen": {
                    "num_tasks": 2,
                    "num_sequences": n,
                    "accuracy": [0.1, 0.2, acc],
                    "loss": [2.3, 2.0, 1.0],
                    "correct_last": round(acc * n),
                }
            },
        }
        write_json(path, record)
        evals.append(path)
    return run_dir / "done.json", evals


def test_figure_names_the_best_configuration_within_the_budget(tmp_path):
    runs, evals = [], []
    cases = [  # (experiment, name, steps, cpu seconds, mnist, fashion)
        ("fig3", "mnist-s0", 2000, 600, 0.45, 0.40),
        ("compute", "mnist-transformer64-vs8k-s0", 8000, 1500, 0.60, 0.55),
        ("compute", "mnist-transformer64-vs16k-s0", 16000, 3000, 0.70, 0.60),  # over budget
    ]
    for experiment, name, steps, cpu_s, m, f in cases:
        done, files = _fake_run(
            tmp_path, experiment, name, 0, steps, cpu_s, {"mnist": m, "fashion_mnist": f}
        )
        runs.append(done)
        evals += files
    out = tmp_path / "out" / "compute_study"
    out.parent.mkdir()
    compute_study.make(evals, out, run_files=runs, budget_cpu_minutes=30)
    with open(out.parent / "compute_study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = [r for r in rows if r["best_within_budget"] == "True"]
    assert [r["steps"] for r in best] == ["8000"]  # 16k steps is more accurate but over budget
    over = next(r for r in rows if r["steps"] == "16000")
    assert over["within_budget"] == "False"
    assert float(next(r for r in rows if r["steps"] == "2000")["cpu_minutes"]) == 10.0
    assert (out.parent / "compute_study.png").stat().st_size > 0


def test_figure_refuses_a_run_without_timings(tmp_path):
    done, evals = _fake_run(tmp_path, "compute", "mnist-a-s0", 0, 10, 6, {"mnist": 0.5})
    (done.parent / "timing.json").unlink()
    with pytest.raises(FileNotFoundError, match="timing.json"):
        compute_study.make(evals, tmp_path / "x", run_files=[done], test_datasets=["mnist"])


def test_grids_with_their_own_budget_train_on_it_and_figure3_on_the_tiers():
    params = load_params("params.yaml")
    tier = params["tiers"]["cpu"]
    fig3 = run_config(params, "cpu", "fig3", "mnist-s0")
    assert fig3["train"]["steps"] == tier["train"]["steps"]
    assert fig3["model"]["width"] == tier["model"]["width"]
    grids = params["experiments"]
    sweep = run_config(params, "cpu", "transitions", "mnist-transformer16-t4-s0")
    assert sweep["train"]["steps"] == grids["transitions"]["grids"]["cpu"]["train"]["steps"]
    assert sweep["model"]["width"] == 16  # the run's name still decides the width
    assert sweep["model"]["key_size"] == grids["transitions"]["grids"]["cpu"]["model"]["key_size"]
    meta = run_config(params, "cpu", "metaopt", "mnist-vref-t10-s0")
    assert meta["model"]["width"] == grids["metaopt"]["grids"]["cpu"]["model"]["width"]
    assert meta["train"]["curriculum"] is None  # the plateau study trains i.i.d.
    # A method's model is its own: a grid's Transformer settings never reach an LSTM.
    lstm = run_config(params, "cpu", "state_size", "mnist-lstm32-s0")
    assert "key_size" not in lstm["model"]


def test_sweep_figures_say_when_their_budget_is_below_figure3s():
    from gpicl.figures.registry import REGISTRY, figure_options

    params = load_params("params.yaml")
    steps = params["experiments"]["transitions"]["grids"]["cpu"]["train"]["steps"]
    for name in ("fig2", "fig4", "state_size"):
        note = figure_options(REGISTRY[name], params, "cpu")["budget_note"]
        assert f"{steps:,} steps" in note
        assert "budget_note" not in figure_options(REGISTRY[name], params, "ci")  # no override
