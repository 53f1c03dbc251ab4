"""Meta-optimisation figures from hand-built run folders: plateau ends recomputed from log.csv,
censored runs, the power-law fit, intervention labels, the bias figure, determinism, errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from gpicl import results
from gpicl.figures import (
    metaopt_batch,
    metaopt_bias,
    metaopt_interventions,
    metaopt_plateau,
)
from gpicl.io import write_json, write_text
from gpicl.metrics import CHANCE_LOSS, fit_power_law
from gpicl.plotting import settings_difference

BASE_TRAIN = {
    "steps": 300,
    "tasks_per_step": 64,
    "seqs_per_task": 2,
    "seq_len": 20,
    "num_tasks": 2**25,
    "lr": 1e-3,
    "eps": 1e-8,
    "eps_root": 1e-8,
    "checkpoint_every": 100,
    "curriculum": None,
    "bias_fraction": 0.0,
    "amp": False,
    "amp_cpu": False,
}
LOW_LOSS = 0.5  # after the drop: 1.8 nats below ln 10, so one step moves a 25-step mean by 0.072


def losses_with_drop(steps: int, drop_at: int | None) -> list[float]:
    """ln 10 (with +-0.01 wiggle) until `drop_at`, LOW_LOSS from it on; no drop when None."""
    out = []
    for step in range(1, steps + 1):
        wiggle = 0.01 * math.sin(step)
        level = LOW_LOSS if drop_at is not None and step >= drop_at else CHANCE_LOSS
        out.append(level + wiggle)
    return out


def write_run(
    root: Path,
    run: str,
    seed: int,
    drop_at: int | None,
    variant: str | None = "base",
    probe_every: int = 0,
    finished: bool = True,
    log: bool = True,
    **train_overrides,
) -> Path:
    """A run folder in train.py's layout; returns its done.json."""
    train = {**BASE_TRAIN, **train_overrides}
    if probe_every:
        train["probe_every"] = probe_every
    steps = train["steps"]
    folder = root / "metaopt" / f"{run}-s{seed}"
    losses = losses_with_drop(steps, drop_at)
    grads = [1e-4 if drop_at is None or s < drop_at else 1e-1 for s in range(1, steps + 1)]
    if log:
        lines = ["step,loss,accuracy,grad_norm,distinct_examples"]
        for step, (loss, grad) in enumerate(zip(losses, grads, strict=True), start=1):
            lines.append(f"{step},{loss:.6f},0.100000,{grad:.6e},0")
        write_text(folder / "log.csv", "\n".join(lines) + "\n")
    probe = ["step,unseen_accuracy,task0_accuracy"]
    for step in range(probe_every, steps + 1, probe_every) if probe_every else []:
        task0 = 0.9 if step >= 100 else 0.1
        unseen = 0.6 if drop_at is not None and step >= drop_at else 0.1
        probe.append(f"{step},{unseen:.6f},{task0:.6f}")
    write_text(folder / "probe.csv", "\n".join(probe) + "\n")
    done = {
        "name": f"metaopt/{run}-s{seed}",
        "steps_done": steps if finished else steps // 2,
        "finished": finished,
        "final_loss": round(losses[-1], 6),
        "final_accuracy": 0.1,
        "num_params": 1000,
        "state_size": 100,
        "plateau_step": 999,  # stale on purpose: figures recompute it
        "seed": seed,
        "variant": variant,
        "num_tasks": train["num_tasks"],
        "train": train,
    }
    write_json(folder / "done.json", done)
    return folder / "done.json"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def outputs(prefix: Path, suffixes=(".png", ".svg", ".csv")) -> dict[str, bytes]:
    return {s: prefix.with_name(prefix.name + s).read_bytes() for s in suffixes}


def test_training_writes_the_formats_and_constants_figures_read():
    from gpicl import augment, metrics, train

    assert train.LOG_COLUMNS is results.LOG_COLUMNS
    assert train.PROBE_COLUMNS is results.PROBE_COLUMNS
    assert augment.NUM_CLASSES == metrics.NUM_CLASSES  # metrics' copy keeps torch out of figures
    assert metrics.CHANCE == 0.1 and metrics.CHANCE_LOSS == math.log(10)


def test_plateau_step_is_recomputed_from_log_and_censored_runs_are_none(tmp_path):
    left = write_run(tmp_path, "a", 0, drop_at=120)
    stuck = write_run(tmp_path, "a", 1, drop_at=None)
    runs = results.read_runs([stuck, left])
    assert [r.seed for r in runs] == [0, 1]
    assert runs[0].plateau_step == 120  # a drop of 1.8 nats shows in the 25-step mean at once
    assert not runs[0].censored
    assert runs[1].plateau_step is None and runs[1].censored
    assert runs[0].batch_size == 128 and runs[0].steps == 300
    assert runs[0].probe.empty and list(runs[0].probe.columns) == list(results.PROBE_COLUMNS)
    # window and margin come from the caller: a margin larger than the drop never triggers
    assert results.read_runs([left], window=25, margin=2.0)[0].censored
    assert results.read_runs([left], window=1, margin=0.05)[0].plateau_step == 120


def test_plateau_figure_csv_marks_censored_runs_and_grad_norms(tmp_path):
    files = [write_run(tmp_path, "a", 0, drop_at=120), write_run(tmp_path, "a", 1, None)]
    prefix = tmp_path / "fig" / "metaopt_plateau"
    metaopt_plateau.make(files, prefix)
    rows = read_rows(prefix.with_name("metaopt_plateau.csv"))
    assert list(rows[0]) == list(metaopt_plateau.CSV_COLUMNS)
    assert [(r["seed"], r["plateau_step"], r["censored"]) for r in rows] == [
        ("0", "120", "False"),
        ("1", "NA", "True"),
    ]
    assert float(rows[0]["grad_norm_plateau"]) == pytest.approx(1e-4)
    assert float(rows[0]["grad_norm_after"]) == pytest.approx(1e-1)
    assert float(rows[1]["grad_norm_plateau"]) == pytest.approx(1e-4)
    assert rows[1]["grad_norm_after"] == "NA"
    assert rows[0]["budget"] == "300"
    svg = prefix.with_name("metaopt_plateau.svg").read_text(encoding="utf-8")
    assert "still on the plateau at step 300" in svg
    assert "plateau ends at step 120" in svg


def test_power_law_fit_recovers_exponent():
    batch = [16, 32, 64, 128, 256, 16, 64]
    fit = fit_power_law(batch, [4000 * b**-0.7 for b in batch])
    assert fit["exponent"] == pytest.approx(-0.7, abs=1e-9)
    assert fit["prefactor"] == pytest.approx(4000, rel=1e-9)
    assert fit["stderr"] == pytest.approx(0.0, abs=1e-9)
    assert (fit["n_runs"], fit["n_batch_sizes"]) == (7, 5)
    two = fit_power_law([16, 16, 64], [10.0, 12.0, 5.0])
    assert math.isnan(two["stderr"]) and two["n_batch_sizes"] == 2
    assert fit_power_law([16, 16], [10.0, 12.0]) is None


def batch_sweep(root: Path) -> list[Path]:
    """plateau = 1024 B^-0.5 exactly (512, 256, 128, 64 steps), two seeds at B = 16, plus censored
    runs at B = 16 and B = 1024 that the fit must ignore; budget 600 steps."""
    files = []
    for tasks in (2, 8, 32, 128):
        batch = tasks * 2
        drop = int(1024 * batch**-0.5)
        files.append(write_run(root, f"b{batch}", 0, drop, None, steps=600, tasks_per_step=tasks))
    files.append(write_run(root, "b16", 1, 256, None, steps=600, tasks_per_step=8))
    files.append(write_run(root, "b16", 2, None, None, steps=600, tasks_per_step=8))
    files.append(write_run(root, "b1024", 0, None, None, steps=600, tasks_per_step=512))
    return files


def test_batch_figure_fits_known_exponent_and_excludes_censored(tmp_path):
    files = batch_sweep(tmp_path)
    prefix = tmp_path / "fig" / "metaopt_batch"
    metaopt_batch.make(files, prefix)
    fit = {r["panel"]: r for r in read_rows(prefix.with_name("metaopt_batch_fit.csv"))}
    assert float(fit["steps"]["exponent"]) == pytest.approx(-0.5, abs=1e-6)
    assert float(fit["steps"]["prefactor"]) == pytest.approx(1024, rel=1e-5)
    assert float(fit["sequences"]["exponent"]) == pytest.approx(0.5, abs=1e-6)
    assert fit["steps"]["n_runs"] == "5" and fit["steps"]["n_batch_sizes"] == "4"
    assert float(fit["steps"]["stderr"]) == pytest.approx(0.0, abs=1e-6)
    rows = read_rows(prefix.with_name("metaopt_batch.csv"))
    assert list(rows[0]) == list(metaopt_batch.CSV_COLUMNS)
    b16 = [r for r in rows if r["batch_size"] == "16"]
    assert [(r["seed"], r["plateau_step"], r["censored"]) for r in b16] == [
        ("0", "256", "False"),
        ("1", "256", "False"),
        ("2", "NA", "True"),
    ]
    # mean with the censored run counted at its budget: a lower bound
    assert float(b16[0]["mean_plateau_step"]) == pytest.approx((256 + 256 + 600) / 3)
    assert b16[0]["mean_is_lower_bound"] == "True"
    assert [r["plateau_sequences"] for r in rows if r["batch_size"] == "256"] == ["16384"]


def test_batch_figure_without_two_batch_sizes_has_no_fit(tmp_path):
    files = [
        write_run(tmp_path, "b128", 0, 100),
        write_run(tmp_path, "b128", 1, 150),
        write_run(tmp_path, "b256", 0, None, tasks_per_step=128),
    ]
    prefix = tmp_path / "fig" / "metaopt_batch"
    metaopt_batch.make(files, prefix)
    fit_csv = prefix.with_name("metaopt_batch_fit.csv")
    assert fit_csv.read_text() == ",".join(metaopt_batch.FIT_COLUMNS) + "\n"
    assert "no fit" in prefix.with_name("metaopt_batch.svg").read_text(encoding="utf-8")


def test_batch_figure_rejects_runs_that_differ_in_more_than_batch(tmp_path):
    files = [write_run(tmp_path, "b128", 0, 100), write_run(tmp_path, "e", 0, 50, eps_root=0.0)]
    with pytest.raises(ValueError, match="more than the batch size: eps_root=0"):
        metaopt_batch.make(files, tmp_path / "fig" / "metaopt_batch")


def test_settings_difference_labels():
    diff = settings_difference
    assert diff(BASE_TRAIN, BASE_TRAIN) == ""
    assert diff({**BASE_TRAIN, "eps_root": 0.0}, BASE_TRAIN) == "eps_root=0"
    assert diff({**BASE_TRAIN, "eps": 1e-10}, BASE_TRAIN) == "eps=1e-10"
    assert diff({**BASE_TRAIN, "bias_fraction": 0.3}, BASE_TRAIN) == "bias_fraction=0.3"
    assert diff({**BASE_TRAIN, "tasks_per_step": 128}, BASE_TRAIN) == "batch 256"
    assert diff({**BASE_TRAIN, "seqs_per_task": 4}, BASE_TRAIN) == "batch 256 (64x4)"
    curriculum = {"start_examples": 10, "hold_steps": 100, "anneal_steps": 500}
    assert diff({**BASE_TRAIN, "curriculum": curriculum}, BASE_TRAIN) == "curriculum K=10.."
    assert diff(BASE_TRAIN, {**BASE_TRAIN, "curriculum": curriculum}) == "no curriculum"
    assert diff({**BASE_TRAIN, "num_tasks": 2**14}, BASE_TRAIN) == "tasks 2^14"
    # output-only settings and missing defaults are no difference; 0 == 0.0
    assert diff({**BASE_TRAIN, "probe_every": 50, "checkpoint_every": 7}, BASE_TRAIN) == ""
    without = {k: v for k, v in BASE_TRAIN.items() if k not in ("bias_fraction", "curriculum")}
    assert diff(without, BASE_TRAIN) == ""
    assert diff({**BASE_TRAIN, "eps_root": 0}, {**BASE_TRAIN, "eps_root": 0.0}) == ""
    both = {**BASE_TRAIN, "eps_root": 0.0, "tasks_per_step": 128}
    assert diff(both, BASE_TRAIN) == "batch 256, eps_root=0"


def test_interventions_figure_groups_labels_and_censoring(tmp_path):
    curriculum = {"start_examples": 10, "hold_steps": 100, "anneal_steps": 500}
    files = [
        write_run(tmp_path, "base", 0, 200),
        write_run(tmp_path, "base", 1, None),
        write_run(tmp_path, "bias", 0, 40, "bias30", bias_fraction=0.3),
        write_run(tmp_path, "eps", 0, 100, "eps_root0", eps_root=0.0),
        write_run(tmp_path, "eps", 1, 110, "eps_root0", eps_root=0.0),
        write_run(tmp_path, "cur", 0, 60, "curriculum", curriculum=curriculum),
        write_run(tmp_path, "b256", 0, 150, "b256", tasks_per_step=128),
    ]
    prefix = tmp_path / "fig" / "metaopt_interventions"
    metaopt_interventions.make(files, prefix, reference_variant="base")
    rows = read_rows(prefix.with_name("metaopt_interventions.csv"))
    assert list(rows[0]) == list(metaopt_interventions.CSV_COLUMNS)
    assert [r["group"] for r in rows] == [
        "reference",
        "reference",
        "batch 256",
        "eps_root=0",
        "eps_root=0",
        "bias_fraction=0.3",
        "curriculum K=10..",
    ]
    ref = rows[:2]
    assert [(r["plateau_step"], r["censored"]) for r in ref] == [("200", "False"), ("NA", "True")]
    assert float(ref[0]["group_mean_plateau_step"]) == pytest.approx(250.0)  # (200 + 300) / 2
    assert ref[0]["group_mean_is_lower_bound"] == "True"
    assert float(rows[3]["group_mean_plateau_step"]) == pytest.approx(105.0)
    assert [r["curve_drawn"] for r in rows[:2]] == ["True", "False"]
    with pytest.raises(ValueError, match="no run of reference variant 'nope'"):
        metaopt_interventions.make(files, tmp_path / "x", reference_variant="nope")


def test_bias_figure_with_probe_data(tmp_path):
    files = [
        write_run(tmp_path, "base", 0, 250, probe_every=50),
        write_run(tmp_path, "bias", 0, 120, "bias30", probe_every=50, bias_fraction=0.3),
        write_run(tmp_path, "eps", 0, 100, "eps_root0", probe_every=50, eps_root=0.0),  # ignored
    ]
    prefix = tmp_path / "fig" / "metaopt_bias"
    metaopt_bias.make(files, prefix, reference_variant="base")
    rows = read_rows(prefix.with_name("metaopt_bias.csv"))
    assert list(rows[0]) == list(metaopt_bias.CSV_COLUMNS)
    assert {r["run"] for r in rows} == {"metaopt/base-s0", "metaopt/bias-s0"}
    biased = [r for r in rows if r["bias_fraction"] == "0.300000"]
    assert [r["step"] for r in biased] == ["50", "100", "150", "200", "250", "300"]
    assert [r["task0_accuracy"] for r in biased][:2] == ["0.100000", "0.900000"]
    assert [r["unseen_accuracy"] for r in biased][1:3] == ["0.100000", "0.600000"]
    assert {r["plateau_step"] for r in biased} == {"120"}
    assert metaopt_bias.NO_PROBE_TEXT not in prefix.with_name("metaopt_bias.svg").read_text()


def test_bias_figure_without_probe_data(tmp_path):
    files = [
        write_run(tmp_path, "base", 0, None),
        write_run(tmp_path, "bias", 0, 120, "bias30", bias_fraction=0.3),
    ]
    prefix = tmp_path / "fig" / "metaopt_bias"
    metaopt_bias.make(files, prefix, reference_variant="base")
    rows = read_rows(prefix.with_name("metaopt_bias.csv"))
    assert [(r["bias_fraction"], r["plateau_step"], r["step"]) for r in rows] == [
        ("0.000000", "NA", "NA"),
        ("0.300000", "120", "NA"),
    ]
    assert metaopt_bias.NO_PROBE_TEXT in prefix.with_name("metaopt_bias.svg").read_text()


def test_outputs_are_byte_identical_across_calls(tmp_path):
    files = [
        write_run(tmp_path, "base", 0, 200, probe_every=100),
        write_run(tmp_path, "base", 1, None, probe_every=100),
        write_run(tmp_path, "bias", 0, 40, "bias30", probe_every=100, bias_fraction=0.3),
        write_run(tmp_path, "b256", 0, 150, "b256", probe_every=100, tasks_per_step=128),
    ]
    batch_files = [files[0], files[1], files[3]]
    for name, module, inputs, options, extra in (
        ("plateau", metaopt_plateau, files[:2], {}, ()),
        ("batch", metaopt_batch, batch_files, {}, ("_fit.csv",)),
        ("interventions", metaopt_interventions, files, {"reference_variant": "base"}, ()),
        ("bias", metaopt_bias, files, {"reference_variant": "base"}, ()),
    ):
        first, second = tmp_path / "one" / name, tmp_path / "two" / name
        module.make(inputs, first, **options)
        module.make(list(reversed(inputs)), second, **options)
        suffixes = (".png", ".svg", ".csv", *extra)
        assert outputs(first, suffixes) == outputs(second, suffixes), name


def test_clear_errors_for_unfinished_missing_log_and_duplicates(tmp_path):
    unfinished = write_run(tmp_path, "u", 0, 100, finished=False)
    with pytest.raises(ValueError, match="unfinished run metaopt/u-s0"):
        results.read_runs([unfinished])
    no_log = write_run(tmp_path, "n", 0, 100, log=False)
    with pytest.raises(FileNotFoundError, match="log.csv"):
        metaopt_plateau.make([no_log], tmp_path / "fig" / "p")
    ok = write_run(tmp_path, "a", 0, 100)
    with pytest.raises(ValueError, match="duplicate run metaopt/a-s0"):
        results.read_runs([ok, ok])
    copy = write_run(tmp_path, "a-copy", 0, 100)
    with pytest.raises(ValueError, match="identical training settings"):
        results.read_runs([ok, copy])
    probing = write_run(tmp_path, "p", 0, 100, probe_every=50)
    probing.with_name("probe.csv").unlink()
    with pytest.raises(FileNotFoundError, match="probes every 50 steps"):
        results.read_runs([probing])


def test_trailing_mean_matches_plateau_rule(tmp_path):
    run = results.read_run(write_run(tmp_path, "a", 0, 120))
    steps, smooth = run.trailing_loss(25)
    assert steps[0] == 25 and len(smooth) == 300 - 24
    first = int(steps[np.flatnonzero(smooth <= CHANCE_LOSS - 0.05)[0]])
    assert first == run.plateau_step == 120
