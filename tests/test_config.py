"""gpicl.config: params.yaml validated against the shared schema (bad keys named before any
compute), the paper tier carrying the authors' defaults, and run configs resolved from it."""

from __future__ import annotations

import copy

import pytest
import yaml

from gpicl.augment import UNLIMITED_TASKS
from gpicl.config import (
    REPO_ROOT,
    ParamsError,
    load_params,
    parse_run_name,
    preprocess_spec,
    run_config,
    run_name,
    validate_params,
)

PARAMS_PATH = REPO_ROOT / "params.yaml"


@pytest.fixture(scope="module")
def repo_params() -> dict:
    return yaml.safe_load(PARAMS_PATH.read_text())


@pytest.fixture
def params(repo_params) -> dict:
    return copy.deepcopy(repo_params)


def test_repo_params_yaml_is_valid():
    params = load_params(PARAMS_PATH)
    assert params["tier"] in params["tiers"]


def rejection(params: dict) -> str:
    with pytest.raises(ParamsError) as info:
        validate_params(params)
    return str(info.value)


def test_wrong_type_is_rejected_naming_the_key(params):
    params["tiers"]["cpu"]["train"]["lr"] = "x"
    assert "tiers.cpu.train.lr" in rejection(params)


def test_unknown_key_is_rejected_naming_it(params):
    params["tiers"]["cpu"]["model"]["widht"] = 64
    message = rejection(params)
    assert "widht" in message and "tiers.cpu.model" in message


def test_unknown_tier_is_rejected(params):
    params["tier"] = "gpu"
    message = rejection(params)
    assert "tier:" in message and "gpu" in message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("tiers", "paper", "train", "num_tasks"), 0),
        (("tiers", "paper", "train", "num_tasks"), "infinite"),
        (("tiers", "ci", "train", "bias_fraction"), 1.5),
        (("tiers", "ci", "preprocess", "channels"), 2),
        (("tiers", "ci", "train", "seq_len"), 1),
        (("tiers", "cpu", "train", "eps_root"), -1e-8),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_key(params, path, value):
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert ".".join(path) in rejection(params)


def test_missing_required_key_is_rejected(params):
    del params["tiers"]["cpu"]["train"]["eps_root"]
    message = rejection(params)
    assert "tiers.cpu.train" in message and "eps_root" in message


def test_paper_tier_carries_the_authors_defaults(repo_params):
    paper = repo_params["tiers"]["paper"]
    model, train = paper["model"], paper["train"]
    assert (model["width"], model["layers"], model["heads"], model["key_size"]) == (512, 4, 8, 32)
    assert model["mlp_ratio"] == 4
    assert train["seq_len"] == 100
    assert (train["tasks_per_step"], train["seqs_per_task"]) == (16, 32)  # 512 sequences a step
    assert train["lr"] == 1e-3 and train["steps"] == 50_000
    assert train["eps"] == 1e-8 and train["eps_root"] == 1e-8
    assert train["bias_fraction"] == 0.0 and train["curriculum"] is None
    assert paper["preprocess"] == {"resize": 14, "channels": 1}
    assert (paper["eval"]["tasks"], paper["eval"]["seqs_per_task"]) == (32, 128)


def test_run_config_maps_unlimited_tasks_and_keeps_integers(params):
    params["tiers"]["ci"]["train"]["num_tasks"] = "unlimited"
    validate_params(params)
    cfg = run_config(params, "ci", "fig3", "mnist-s1")
    assert cfg["train"]["num_tasks"] == UNLIMITED_TASKS
    assert params["tiers"]["ci"]["train"]["num_tasks"] == "unlimited"  # params left untouched
    assert cfg["name"] == "fig3/mnist-s1" and cfg["seed"] == 1
    assert cfg["task_seed"] == params["task_seed"]
    assert cfg["model"] == params["tiers"]["ci"]["model"]

    params["tiers"]["ci"]["train"]["num_tasks"] = 8
    assert run_config(params, "ci", "fig3", "mnist-s1")["train"]["num_tasks"] == 8


def test_run_name_overrides_model_and_task_count(params):
    cfg = run_config(params, "ci", "transitions", "fashion_mnist-transformer8-t5-s2")
    assert cfg["train_dataset"] == "fashion_mnist" and cfg["seed"] == 2
    assert cfg["train"]["num_tasks"] == 32
    assert cfg["model"]["width"] == 8
    assert cfg["model"]["layers"] == params["tiers"]["ci"]["model"]["layers"]
    mlp = run_config(params, "ci", "transitions", "mnist-mlp64-t0-s0")
    assert mlp["model"] == {"type": "mlp", "hidden_size": 64}
    assert mlp["train"]["num_tasks"] == 1
    assert parse_run_name("mnist-s0")["model"] is None
    assert run_name("mnist", 3, "transformer", 16, 7) == "mnist-transformer16-t7-s3"
    with pytest.raises(ParamsError, match="does not read"):
        parse_run_name("mnist-transformer-s0")


def test_preprocess_spec_from_tier(repo_params):
    spec = preprocess_spec(repo_params["tiers"]["paper"])
    assert spec.input_size == 196 and spec.tag == "r14c1"


def test_run_name_of_other_methods_takes_the_tier_method_block(params):
    ci = params["tiers"]["ci"]
    lstm = run_config(params, "ci", "table1", "mnist-lstm48-s1")
    assert lstm["model"] == {"type": "lstm", "hidden_size": 48}
    assert lstm["train"] == ci["train"]  # no training overrides for the LSTM
    maml = run_config(params, "ci", "table1", "mnist-maml32-s0")
    assert maml["model"] == {"type": "maml", **ci["methods"]["maml"]["model"]}
    assert maml["train"] == {**ci["train"], **ci["methods"]["maml"]["train"]}
    assert maml["train"]["steps"] != ci["train"]["steps"]
    sgd = run_config(params, "ci", "table1", "mnist-sgd128-s3")
    assert sgd["train"]["steps"] == 0 and sgd["model"]["init_seed"] == 3
    del params["tiers"]["ci"]["methods"]["vsml"]
    with pytest.raises(ParamsError, match="no entry 'vsml'"):
        run_config(params, "ci", "table1", "mnist-vsml8-s0")


def test_transformer_spec_sets_key_size_and_layers_and_only_for_transformers(params):
    cfg = run_config(params, "ci", "state_size", "mnist-transformer64-k4-l1-s0")
    assert (cfg["model"]["width"], cfg["model"]["key_size"], cfg["model"]["layers"]) == (64, 4, 1)
    assert cfg["model"]["heads"] == params["tiers"]["ci"]["model"]["heads"]
    assert run_name("mnist", 2, spec="transformer64-k4") == "mnist-transformer64-k4-s2"
    assert parse_run_name("mnist-outer_lstm16-s0")["model"] == "outer_lstm"
    with pytest.raises(ParamsError, match="Transformers only"):
        parse_run_name("mnist-lstm16-k4-s0")
    with pytest.raises(ParamsError, match="does not read"):
        run_name("mnist", 0, spec="gru16")


def test_state_size_grid_specs_are_validated(params):
    params["experiments"]["state_size"]["grids"]["ci"]["models"] = ["transformer16-x3"]
    with pytest.raises(ParamsError, match="experiments.state_size.grids.ci.models.0"):
        validate_params(params)


def test_sgd_must_train_zero_steps(params):
    params["tiers"]["cpu"]["methods"]["sgd"]["train"]["steps"] = 10
    with pytest.raises(ParamsError, match="tiers.cpu.methods.sgd.train.steps"):
        validate_params(params)


def test_variant_runs_take_base_then_variant_settings_of_the_tier_grid(params):
    grid = params["experiments"]["metaopt"]["grids"]["ci"]
    cfg = run_config(params, "ci", "metaopt", "mnist-vb16-t4-s0")
    assert cfg["variant"] == "b16" and cfg["train"]["num_tasks"] == 16
    expected = {**params["tiers"]["ci"]["train"], **grid["base"], **grid["variants"]["b16"]}
    assert cfg["train"] == {**expected, "num_tasks": 16}
    assert cfg["train"]["curriculum"] is None  # base: i.i.d. sequences
    cur = run_config(params, "ci", "metaopt", "mnist-vcurriculum-t25-s0")
    assert cur["train"]["curriculum"] == grid["variants"]["curriculum"]["curriculum"]
    assert "variant" not in run_config(params, "ci", "fig3", "mnist-s0")  # others unchanged
    assert run_name("mnist", 1, variant="eps_root_0", log2_tasks=25) == "mnist-veps_root_0-t25-s1"
    with pytest.raises(ParamsError, match="has no 'nope'"):
        run_config(params, "ci", "metaopt", "mnist-vnope-t25-s0")
    with pytest.raises(ParamsError, match="has no 'ref'"):
        run_config(params, "ci", "fig3", "mnist-vref-s0")  # fig3 has no variants


def test_metaopt_grid_needs_a_ref_variant_and_valid_settings(params):
    grid = params["experiments"]["metaopt"]["grids"]["cpu"]
    grid["variants"]["b32"]["tasks_per_step"] = 0
    with pytest.raises(ParamsError, match="experiments.metaopt.grids.cpu.variants.b32"):
        validate_params(params)
    grid["variants"]["b32"]["tasks_per_step"] = 4
    del grid["variants"]["ref"]
    with pytest.raises(ParamsError, match="'ref' is a required property"):
        validate_params(params)
