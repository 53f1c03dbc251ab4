"""The external table (gpicl.external, gpicl/figures/external.py): byte-identical tables, timings
in their own file, digits refused, intervals around their means, stratified disjoint splits, and
reference learners that score ~1 where the task is trivial (so the harness can fail)."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from gpicl import cli, external
from gpicl.classifier import export_model
from gpicl.config import ParamsError, load_params, validate_params
from gpicl.external import CSV_COLUMNS, SPEED_COLUMNS, Dataset
from gpicl.figures import external as table
from gpicl.io import save_torch
from tests.test_classifier import write_model

torch.set_num_threads(1)

OPTIONS = dict(
    datasets=["wine", "iris", "mnist"],
    context_sizes=[10, 15],  # 15: longer than the tiny model's 11 context positions
    resamples=3,
    query_size=40,
    seed=7,
    n_estimators=2,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An exported tiny untrained model and a small MNIST-like data cache."""
    root = tmp_path_factory.mktemp("external")
    model = root / "default.pt"
    export_model(write_model(root / "model.pt"), model)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(np.arange(200) % 10)
    x = torch.from_numpy(rng.normal(size=(200, 16)).astype(np.float32)) + y[:, None] * 0.5
    cache = root / "mnist-r4c1.pt"
    save_torch(
        {"x_train": x, "y_train": y, "x_test": x, "y_test": y, "spec": "r4c1", "dataset": "mnist"},
        cache,
    )
    return str(model), str(cache)


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def drawn(files, tmp_path_factory):
    model, cache = files
    prefixes = []
    for run in ("a", "b"):
        prefix = tmp_path_factory.mktemp(run) / "external"
        table.make([model], prefix, [cache], **OPTIONS)
        prefixes.append(prefix)
    return prefixes


def test_the_table_is_byte_identical_on_two_runs(drawn):
    a, b = drawn
    for suffix in (".md", ".csv"):
        one = a.with_name(a.name + suffix).read_bytes()
        assert one == b.with_name(b.name + suffix).read_bytes(), suffix


def test_speed_is_written_separately(drawn):
    prefix = drawn[0]
    rows = read_rows(prefix.with_name(prefix.name + ".csv"))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert not any("second" in c for c in CSV_COLUMNS)
    speed = read_rows(prefix.with_name(prefix.name + "_speed.csv"))
    assert tuple(speed[0]) == SPEED_COLUMNS
    assert len(speed) == len(rows)
    assert all(float(r["predictions_per_second"]) > 0 for r in speed)


def test_every_interval_contains_its_mean(drawn):
    prefix = drawn[0]
    rows = read_rows(prefix.with_name(prefix.name + ".csv"))
    datasets = OPTIONS["datasets"]
    cells = len(datasets) * len(OPTIONS["context_sizes"]) * len(external.LEARNERS)
    assert len(rows) == cells
    assert [r["dataset"] for r in rows[:: len(external.LEARNERS) * 2]] == datasets
    for row in rows:
        assert float(row["low"]) <= float(row["accuracy"]) <= float(row["high"]), row
        assert int(row["resamples"]) == OPTIONS["resamples"]
        if row["learner"] == "in_context":
            assert row["vs_best"] in external.BASELINES
            assert float(row["diff_low"]) <= float(row["diff"]) <= float(row["diff_high"]), row
    md = prefix.with_name(prefix.name + ".md").read_text()
    assert "| Wine | 10 |" in md and "| MNIST | 15 |" in md and "digits" in md
    assert "subsampled" in md  # context 15 > the tiny model's 11 positions


def test_digits_are_kept_aside(files, tmp_path):
    model, cache = files
    with pytest.raises(ValueError, match="kept aside"):
        table.make([model], tmp_path / "t", [cache], **{**OPTIONS, "datasets": ["digits"]})
    with pytest.raises(ValueError, match="kept aside"):
        external.load_dataset("digits")
    assert not list(tmp_path.iterdir())
    params = load_params("params.yaml")
    assert "digits" not in params["experiments"]["external"]["datasets"]
    bad = copy.deepcopy(params)
    bad["experiments"]["external"]["datasets"].append("digits")
    with pytest.raises(ParamsError):
        validate_params(bad, "params.yaml")


def test_a_missing_cache_reads_data_not_available(files, tmp_path):
    model, _ = files
    table.make([model], tmp_path / "t", [], **{**OPTIONS, "datasets": ["iris", "fashion_mnist"]})
    rows = read_rows(tmp_path / "t.csv")
    assert {r["note"] for r in rows if r["dataset"] == "fashion_mnist"} == {"data not available"}
    assert (
        "Data not available (no data cache): fashion_mnist."
        in (tmp_path / "t").with_suffix(".md").read_text()
    )


def test_stratified_split_holds_every_class_and_is_disjoint():
    y = np.repeat(np.arange(3), [50, 30, 5])
    for seed in range(5):
        context, queries = external.stratified_split(y, 20, 100, np.random.default_rng(seed))
        assert len(context) == 20 and len(set(context)) == 20
        assert set(np.unique(y[context])) == {0, 1, 2}
        assert not set(context) & set(queries)
        assert len(queries) == len(y) - 20  # fewer left than query_size: all of them
    a = external.stratified_split(y, 20, 10, np.random.default_rng(1))
    b = external.stratified_split(y, 20, 10, np.random.default_rng(1))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="each of the 3 classes"):
        external.stratified_split(y, 2, 10, np.random.default_rng(0))


def test_reference_learners_solve_a_trivially_separable_task(files):
    model, _ = files
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = rng.normal(size=(300, 6)) + 20.0 * np.eye(6)[y]  # three far-apart clusters
    data = Dataset("synthetic", x, y)
    context, queries = external.stratified_split(y, 15, 100, rng)
    scores = external.score_resample(model, data, context, queries, n_estimators=2, seed=0)
    for learner in external.BASELINES:
        assert scores[learner][0] >= 0.99, learner
    assert 0.0 <= scores["in_context"][0] <= 1.0


def test_bootstrap_interval_is_degenerate_for_equal_values_and_widens_otherwise():
    assert external.bootstrap_mean(np.full(5, 0.7)) == pytest.approx((0.7, 0.7))
    low, high = external.bootstrap_mean(np.array([0.1, 0.9, 0.5, 0.3, 0.7]))
    assert low < 0.5 < high


def test_the_cli_draws_the_table(files, tmp_path):
    model, cache = files
    import json

    options = {**OPTIONS, "datasets": ["iris"], "context_sizes": [10]}
    cli.main(
        [
            "figure",
            "external",
            "--out",
            str(tmp_path / "external"),
            "--model",
            model,
            "--caches",
            cache,
            "--options",
            json.dumps(options),
        ]
    )
    outputs = [f"external{suffix}" for suffix in (".csv", ".md", "_speed.csv")]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == outputs
