"""What the pipeline builds, for every tier: run names parse back, nothing is listed twice,
every file a figure reads is produced by some rule, and the registry drives the rules."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpicl import targets
from gpicl.cache import parse_evalset_name
from gpicl.config import load_params, parse_run_name, run_config
from gpicl.figures.registry import REGISTRY, figure_options

REPO = Path(__file__).resolve().parents[1]
TIERS = ("ci", "cpu", "paper")
PARAMS = load_params(REPO / "params.yaml")
# A machine without internet: only the offline datasets have data.
OFFLINE = ("mnist", "fashion_mnist")


@pytest.mark.parametrize("tier", TIERS)
def test_every_run_name_parses_back_and_resolves_to_a_config(tier):
    for experiment, runs in targets.experiment_runs(PARAMS, tier).items():
        assert runs, f"{tier}: experiment {experiment} has no runs"
        assert len(runs) == len(set(runs)), f"{tier}/{experiment}: duplicate runs"
        for run in runs:
            parse_run_name(run)
            cfg = run_config(PARAMS, tier, experiment, run)
            assert cfg["name"] == f"{experiment}/{run}"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("available", [OFFLINE, ("mnist", "fashion_mnist", "kmnist", "svhn")])
def test_every_file_a_figure_reads_is_produced_by_some_rule(tier, available):
    produced = set(targets.train_targets(PARAMS, tier))
    produced |= set(targets.evaluate_targets(PARAMS, tier, available))
    produced |= set(targets.baseline_targets(PARAMS, tier, available))
    produced |= {f"resources/datasets/{d}.status.json" for d in targets.datasets_needed(PARAMS)}
    evalsets = set(targets.cache_targets(PARAMS, tier, available))
    produced |= set(targets.export_files(tier)) | evalsets
    spec = targets.spec_tag(PARAMS, tier)
    for figure in REGISTRY.values():
        files = targets.figure_inputs(PARAMS, tier, available, figure.reads)
        assert files.get(figure.positional), f"{tier}: {figure.name} reads nothing"
        for kind, paths in files.items():
            assert len(paths) == len(set(paths)), f"{figure.name}: {kind} listed twice"
            missing = sorted(set(paths) - produced)
            assert not missing, f"{tier}: {figure.name} reads unproduced {missing[:3]}"
    for path in targets.evaluate_targets(PARAMS, tier, available):
        experiment, run, test = re.fullmatch(
            rf"results/{tier}/eval/(\w+)/([\w-]+)/(\w+)\.json", path
        ).groups()
        assert run in targets.experiment_runs(PARAMS, tier)[experiment], path
        assert f"results/{tier}/evalsets/{test}.pt" in evalsets, path
        dataset, _ = parse_evalset_name(test)  # mnist_val: MNIST's validation set
        if dataset != "random":
            assert f"results/cache/{dataset}-{spec}.pt" in evalsets, path


def test_the_external_table_reads_the_export_and_the_available_caches():
    spec = targets.spec_tag(PARAMS, "ci")
    files = targets.figure_inputs(PARAMS, "ci", ("mnist",), "external")
    assert files == {
        "model": ["results/ci/export/default.pt"],
        "caches": [f"results/cache/mnist-{spec}.pt"],
    }
    options = figure_options(REGISTRY["external"], PARAMS, "ci")
    assert options["resamples"] <= 5 and len(options["context_sizes"]) == 1  # CI: 2 cores
    assert options["seed"] == PARAMS["eval_seed"] and "digits" not in options["datasets"]


def test_unavailable_datasets_are_left_out_but_random_never_is():
    tests = targets.test_datasets(PARAMS, available=())
    assert tests == ["random"]
    assert "kmnist" in targets.test_datasets(PARAMS, available=("kmnist",))
    files = targets.figure_inputs(PARAMS, "ci", (), "table1")["evals"]
    assert all(f.endswith("/random.json") for f in files)


def test_figure_outputs_are_distinct_and_options_bind_to_each_make():
    outputs = [f for fig in REGISTRY.values() for f in fig.output_files("ci")]
    assert len(outputs) == len(set(outputs))
    for tier in TIERS:
        for figure in REGISTRY.values():
            options = figure_options(figure, PARAMS, tier)
            keywords = {kw: [] for kw in figure.keyword_inputs.values()}
            inspect.signature(figure.make()).bind([], Path("out"), **keywords, **options)
            assert figure.caption and figure.report in figure.outputs
    assert figure_options(REGISTRY["table1"], PARAMS, "paper")["expected_datasets"]
    assert "expected_datasets" not in figure_options(REGISTRY["table1"], PARAMS, "cpu")


def test_the_workflow_has_one_rule_per_registered_figure(tmp_path):
    """The rules come from the registry: `snakemake --list-rules` names each of them."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "--list-rules", "--config", "tier=ci"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    rules = set(listed.stdout.split())
    assert {f"figure_{name}" for name in REGISTRY} <= rules


def test_dvc_tracks_the_registry_metrics_and_plots():
    """dvc.yaml's metrics file and plots are the registry's (same paths, same columns)."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["reproduce"]
    metrics = [next(iter(m)) for m in stage["metrics"]]
    assert metrics == [
        p.replace("TIER", "${tier}") for p in REGISTRY["metrics"].output_files("TIER")
    ]
    plots = {next(iter(p)): next(iter(p.values())) for p in dvc["plots"]}
    for figure in REGISTRY.values():
        if figure.plot is None:
            continue
        suffix, x, y = figure.plot
        path = figure.prefix("${tier}") + suffix
        assert plots.get(path) == {"x": x, "y": y}, f"dvc.yaml plots lack {figure.name}'s {path}"
    outs = [next(iter(o)) for o in stage["outs"]]
    for figure in REGISTRY.values():
        folder = f"results/${{tier}}/{figure.folder}"
        assert folder in outs or folder == "results/${tier}/metrics", folder
