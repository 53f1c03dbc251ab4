"""Table 1's meta-training curves: slice means over seeds, one line per method, and which runs
the pipeline gives the figure."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from gpicl.config import load_params
from gpicl.figures import table1_training
from gpicl.io import write_json, write_text
from gpicl.targets import figure_inputs

TRAIN = {
    "steps": 100,
    "tasks_per_step": 2,
    "seqs_per_task": 4,
    "seq_len": 20,
    "num_tasks": 2**25,
    "lr": 1e-3,
    "eps": 1e-8,
    "eps_root": 1e-8,
    "checkpoint_every": 50,
    "curriculum": {"start_examples": 2, "hold_steps": 10, "anneal_steps": 30},
    "bias_fraction": 0.0,
    "amp": False,
    "amp_cpu": False,
}


def write_run(root: Path, method: str, seed: int, losses, steps: int = 100) -> Path:
    """A finished run folder in train.py's layout (log.csv, config.json, done.json)."""
    folder = root / f"mnist-{method}-s{seed}"
    train = {**TRAIN, "steps": steps}
    lines = ["step,loss,accuracy,grad_norm,distinct_examples"]
    for step, loss in enumerate(losses, start=1):
        lines.append(f"{step},{loss:.6f},{1 - loss / 10:.6f},1.0e-01,0")
    write_text(folder / "log.csv", "\n".join(lines) + "\n")
    write_json(folder / "config.json", {"model": {"type": method}, "train": train})
    done = {
        "name": f"table1/mnist-{method}-s{seed}",
        "steps_done": steps,
        "finished": True,
        "final_loss": float(losses[-1]),
        "final_accuracy": 0.1,
        "num_params": 10,
        "state_size": 10,
        "plateau_step": None,
        "seed": seed,
        "variant": None,
        "num_tasks": train["num_tasks"],
        "train": train,
    }
    write_json(folder / "done.json", done)
    return folder / "done.json"


def test_each_slice_is_the_mean_over_seeds_of_each_runs_slice_mean(tmp_path):
    ramp = np.linspace(2.3, 1.3, 100)
    runs = [
        write_run(tmp_path, "lstm", 0, ramp),
        write_run(tmp_path, "lstm", 1, ramp + 0.2),
        write_run(tmp_path, "maml", 0, np.full(100, 2.302585)),
    ]
    out = tmp_path / "out" / "table1_training"
    table1_training.make(runs, out, slices=4)
    with open(f"{out}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["maml"] * 4 + ["lstm"] * 4  # the paper's row order
    lstm = [r for r in rows if r["method"] == "lstm"]
    assert [(int(r["first_step"]), int(r["last_step"])) for r in lstm] == [
        (1, 25),
        (26, 50),
        (51, 75),
        (76, 100),
    ]
    expected = [ramp[i * 25 : (i + 1) * 25].mean() + 0.1 for i in range(4)]
    assert [float(r["loss"]) for r in lstm] == pytest.approx(expected, abs=1e-5)
    assert lstm[0]["seeds"] == "0;1" and lstm[0]["iid_from_step"] == "40"
    assert float(lstm[-1]["fraction_done"]) == 1.0
    assert {float(r["loss"]) for r in rows if r["method"] == "maml"} == {2.302585}
    assert (tmp_path / "out" / "table1_training.png").stat().st_size > 0


def test_seeds_with_different_budgets_are_refused(tmp_path):
    runs = [
        write_run(tmp_path, "lstm", 0, np.full(100, 2.0)),
        write_run(tmp_path, "lstm", 1, np.full(80, 2.0), steps=80),
    ]
    with pytest.raises(ValueError, match="differ in steps or batch"):
        table1_training.make(runs, tmp_path / "x", slices=4)


def test_the_figure_reads_every_meta_trained_table1_run_and_the_gpicl_rows():
    params = load_params("params.yaml")
    for tier in ("ci", "cpu", "paper"):
        runs = figure_inputs(params, tier, set(), "table1_training")["runs"]
        names = [p.split("/runs/")[1] for p in runs]
        seeds = params["tiers"][tier]["seeds"]
        assert not [n for n in names if "-sgd" in n]  # SGD meta-trains nothing
        for method in ("maml", "vsml", "lstm"):
            assert sum(n.startswith(f"table1/mnist-{method}") for n in names) == len(seeds)
        assert sorted(n for n in names if n.startswith("fig3/")) == [
            f"fig3/mnist-s{s}/done.json" for s in seeds
        ]


def test_runs_shorter_than_the_slices_get_one_slice_per_step(tmp_path):
    """The ci tier's runs log 20 steps: one point per step, not an error."""
    runs = [write_run(tmp_path, "vsml", 0, np.linspace(2.3, 2.0, 20), steps=20)]
    out = tmp_path / "out" / "table1_training"
    table1_training.make(runs, out, slices=50)
    with open(f"{out}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20
    assert [int(r["last_step"]) for r in rows] == list(range(1, 21))
