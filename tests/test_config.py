"""gpicl.config: params.yaml validated against the shared schema (bad keys named before any
compute), the paper tier carrying the authors' defaults, and run configs resolved from it."""

from __future__ import annotations

import copy
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpicl import cli
from gpicl.augment import UNLIMITED_TASKS
from gpicl.config import (
    MAX_TENSOR_BYTES,
    REPO_ROOT,
    SCHEMA_PATH,
    ParamsError,
    _tier_runs,
    deep_merge,
    load_params,
    parse_params_file,
    parse_run_name,
    preprocess_spec,
    resolve_tiers,
    run_config,
    run_name,
    tier_settings,
    validate_params,
)
from gpicl.models import SIZE_FIELD

PARAMS_PATH = REPO_ROOT / "params.yaml"


@pytest.fixture(scope="module")
def written_params() -> dict:
    """params.yaml as written: `defaults` and partial tier blocks."""
    return yaml.safe_load(PARAMS_PATH.read_text())


@pytest.fixture(scope="module")
def repo_params(written_params) -> dict:
    """params.yaml resolved (every tier complete), as load_params gives it."""
    return resolve_tiers(written_params)


@pytest.fixture
def raw(written_params) -> dict:
    return copy.deepcopy(written_params)


@pytest.fixture
def params(repo_params) -> dict:
    return copy.deepcopy(repo_params)


def test_repo_params_yaml_is_valid(repo_params):
    params = load_params(PARAMS_PATH)
    assert params["tier"] in params["tiers"]
    assert params == repo_params and "defaults" not in params  # resolved


# --------------------------------------------------------------------------- tier defaults
def test_deep_merge_merges_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": {"z": 1}, "c": 1}
    override = {"a": {"y": [3]}, "b": None, "d": {"w": 2}}
    merged = deep_merge(base, override)
    assert merged == {"a": {"x": 1, "y": [3]}, "b": None, "c": 1, "d": {"w": 2}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": {"z": 1}, "c": 1}  # inputs untouched
    merged["d"]["w"] = 3
    assert override["d"] == {"w": 2}  # no value shared with the inputs


def test_written_tiers_are_partial_and_resolve_to_complete_tiers(written_params, repo_params):
    required = yaml.safe_load(SCHEMA_PATH.read_text())["$defs"]["tier"]
    defaults = written_params["defaults"]
    assert "lr" not in defaults["train"]
    for name, block in written_params["tiers"].items():
        assert "seq_len" not in block["train"] and "sgd" not in block["methods"]
        tier = repo_params["tiers"][name]
        assert set(required["required"]) <= set(tier)
        assert set(required["properties"]["train"]["required"]) <= set(tier["train"])
        assert set(tier["methods"]) == {"lstm", "outer_lstm", "sgd", "maml", "vsml"}
        assert tier["methods"]["sgd"] == defaults["methods"]["sgd"]
        assert tier == tier_settings(written_params, name)  # as written or resolved, alike
    assert resolve_tiers(repo_params) == repo_params  # idempotent


def test_a_tier_overriding_one_nested_key_keeps_the_others_from_defaults(raw):
    raw["tiers"]["ci"]["train"]["eps"] = 1e-6
    raw["tiers"]["cpu"]["methods"]["maml"]["model"]["inner_lr"] = 0.5
    validate_params(raw)
    tiers = resolve_tiers(raw)["tiers"]
    defaults = raw["defaults"]
    assert tiers["ci"]["train"]["eps"] == 1e-6
    for key, value in defaults["train"].items():
        if key != "eps":
            assert tiers["ci"]["train"][key] == value
    assert tiers["ci"]["train"]["lr"] == raw["tiers"]["ci"]["train"]["lr"]  # the tier's own
    assert tiers["cpu"]["train"]["eps"] == defaults["train"]["eps"]  # other tiers: the default
    maml = tiers["cpu"]["methods"]["maml"]
    assert maml["model"] == {**raw["tiers"]["cpu"]["methods"]["maml"]["model"], "inner_lr": 0.5}
    assert maml["train"] == raw["tiers"]["cpu"]["methods"]["maml"]["train"]
    assert (
        tiers["ci"]["methods"]["maml"]["model"]["inner_lr"]
        == (defaults["methods"]["maml"]["model"]["inner_lr"])
    )


def test_null_in_a_tier_replaces_the_default_and_deletes_no_key(raw):
    raw["defaults"]["train"]["curriculum"] = {
        "start_examples": 10,
        "hold_steps": 5,
        "anneal_steps": 5,
    }
    validate_params(raw)
    tiers = resolve_tiers(raw)["tiers"]
    assert tiers["paper"]["train"]["curriculum"] is None  # paper writes curriculum: null
    assert tiers["ci"]["train"]["curriculum"] == raw["tiers"]["ci"]["train"]["curriculum"]


def test_unknown_key_in_defaults_is_refused_naming_it(raw):
    raw["defaults"]["train"]["xyz"] = 1
    message = rejection(raw)
    assert "defaults.train.xyz: unknown key" in message
    del raw["defaults"]["train"]["xyz"]
    raw["tiers"]["ci"]["methods"]["lstm"]["model"]["hiden_size"] = 3
    assert "tiers.ci.methods.lstm.model.hiden_size: unknown key" in rejection(raw)


def test_bad_value_in_defaults_is_refused_naming_the_default(raw):
    raw["defaults"]["train"]["eps"] = -1.0
    message = rejection(raw)
    assert "defaults.train.eps: -1.0 is less than the minimum of 0" in message
    assert "tiers." not in message  # checked as written, before the merge


def test_tier_missing_a_required_key_after_the_merge_is_refused_naming_it(raw):
    del raw["tiers"]["ci"]["train"]["lr"]  # in no block of defaults either
    message = rejection(raw)
    assert "tiers.ci.train.lr: 'lr' is a required property" in message
    assert "defaults.train" in message  # where else it could be set
    assert "tiers.cpu" not in message
    del raw["defaults"]["methods"]["sgd"]
    assert "tiers.paper.methods.sgd: 'sgd' is a required property" in rejection(raw)


def old_style(written: dict) -> dict:
    """params.yaml as it was before `defaults`: each tier spelled out in full, merged by hand
    section by section (not by deep_merge)."""
    params = copy.deepcopy(written)
    d = params.pop("defaults")
    for name, t in params["tiers"].items():
        full = {**d, **t}
        for section in ("preprocess", "model", "train", "eval"):
            full[section] = {**d.get(section, {}), **t.get(section, {})}
        full["methods"] = {}
        for method in {*d["methods"], *t["methods"]}:
            dm, tm = d["methods"].get(method, {}), t["methods"].get(method, {})
            full["methods"][method] = {
                part: {**dm.get(part, {}), **tm.get(part, {})}
                for part in ("model", "train")
                if part in dm or part in tm
            }
        params["tiers"][name] = full
    return params


@pytest.mark.parametrize("tier", ["ci", "cpu", "paper"])
def test_resolved_run_configs_equal_those_of_fully_written_tiers(written_params, tier):
    old = old_style(written_params)
    validate_params(old)  # tiers written out in full (no defaults) are valid too
    resolved = load_params(PARAMS_PATH)
    t = resolved["tiers"][tier]
    runs = [("fig3", run_name(d, s)) for d in ("mnist", "fashion_mnist") for s in t["seeds"]]
    for method, block in t["methods"].items():
        size = block["model"][SIZE_FIELD[method]]
        runs += [("table1", run_name("mnist", s, method, size)) for s in t["seeds"]]
    assert len(runs) == 7 * len(t["seeds"])
    for experiment, run in runs:
        assert run_config(resolved, tier, experiment, run) == run_config(old, tier, experiment, run)
        assert run_config(written_params, tier, experiment, run) == run_config(
            old, tier, experiment, run
        )
    assert list(_tier_runs(resolved, tier)) != []
    assert sorted(map(str, _tier_runs(resolved, tier))) == sorted(map(str, _tier_runs(old, tier)))


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
    # data.py: 14x14, channel_expand (grayscale -> 3 channels), tf.image.resize (no antialias).
    assert paper["preprocess"] == {"resize": 14, "channels": 3, "antialias": False}
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
    assert spec.input_size == 14 * 14 * 3 and spec.channels == 3 and not spec.antialias
    assert spec.tag == "r14c3aa0"
    for tier in ("cpu", "ci"):  # disclosed: 1 channel (luminance), antialiased, as before
        spec = preprocess_spec(repo_params["tiers"][tier])
        assert spec.channels == 1 and spec.antialias and spec.tag == f"r{spec.resize}c1"


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


# --------------------------------------------------------------------------- strict types, bounds
def set_key(params: dict, path: tuple, value) -> dict:
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return params


def test_float_where_an_integer_is_meant_is_refused_naming_the_key(params):
    params["tiers"]["cpu"]["train"]["steps"] = 120.0  # JSON-schema's "integer" accepts 120.0
    assert "tiers.cpu.train.steps: 120.0 is not of type 'integer'" in rejection(params)


def test_bool_is_neither_integer_nor_number(params):
    params["tiers"]["ci"]["threads"] = True
    params["tiers"]["ci"]["train"]["lr"] = True
    message = rejection(params)
    assert "tiers.ci.threads: True is not of type 'integer'" in message
    assert "tiers.ci.train.lr: True is not of type 'number'" in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("key", ["lr", "eps"])
def test_non_finite_numbers_are_refused(params, key, value):
    params["tiers"]["ci"]["train"][key] = value  # NaN passes every minimum/maximum check
    assert f"tiers.ci.train.{key}: {value!r} is not a finite number" in rejection(params)


def test_huge_task_pool_is_refused_naming_the_bound(params):
    params["tiers"]["ci"]["train"]["num_tasks"] = 2**70
    message = rejection(params)
    assert "tiers.ci.train.num_tasks" in message
    assert f"greater than the maximum of {UNLIMITED_TASKS}" in message
    params["tiers"]["ci"]["train"]["num_tasks"] = UNLIMITED_TASKS  # what "unlimited" means
    validate_params(params)


def test_schema_task_bounds_are_the_unlimited_pool():
    defs = yaml.safe_load(SCHEMA_PATH.read_text())["$defs"]
    assert defs["num_tasks"]["maximum"] == UNLIMITED_TASKS
    assert 2 ** defs["log2_tasks"]["maximum"] == UNLIMITED_TASKS


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("tiers", "ci", "model", "width"), 1e9, "1000000000.0 is not of type 'integer'"),
        (("tiers", "ci", "model", "width"), 10**9, "greater than the maximum of 65536"),
        (("tiers", "ci", "model", "layers"), 2000, "greater than the maximum of 1024"),
        (("tiers", "ci", "eval", "tasks"), 10**12, "greater than the maximum of 1048576"),
        (("tiers", "ci", "train", "seq_len"), 10**6, "greater than the maximum of 65536"),
        (("tiers", "ci", "train", "steps"), 10**10, "greater than the maximum of 1000000000"),
        (("tiers", "ci", "preprocess", "resize"), 4096, "greater than the maximum of 1024"),
        (("tiers", "ci", "preprocess", "channels"), 1.0, "1.0 is not of type 'integer'"),
        (("task_seed",), 2**64, "greater than the maximum of 9223372036854775807"),
        (("data", "timeout_s"), 1e300, "greater than the maximum of 86400"),
    ],
)
def test_sizes_out_of_bounds_are_refused_naming_the_key(params, path, value, expected):
    message = rejection(set_key(params, path, value))
    assert f"{'.'.join(path)}: " in message and expected in message


def test_model_spec_numbers_are_bounded(params):
    grid = params["experiments"]["state_size"]["grids"]["ci"]
    grid["models"] = ["transformer0"]
    assert "experiments.state_size.grids.ci.models.0" in rejection(params)
    grid["models"] = ["transformer99999"]
    message = rejection(params)
    assert "experiments.state_size.grids.ci.models.0: transformer width 99999" in message
    assert "65536" in message


# --------------------------------------------------------------------------- derived sizes
@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # Each value within its own bound; together more than any tensor may take.
        (("tiers", "ci", "eval", "tasks"), 2**20, "tiers.ci: evaluation inputs"),
        (("tiers", "ci", "train", "tasks_per_step"), 2**20, "tiers.ci: training batch"),
        (("tiers", "ci", "preprocess", "resize"), 1024, "tiers.ci: task projections"),
        (("tiers", "ci", "model", "width"), 65536, "tiers.ci: training state"),
        (
            ("experiments", "transitions", "grids", "ci", "mlp_hidden_sizes"),
            [65536],
            "experiments.transitions.grids.ci.mlp_hidden_sizes.0: training state",
        ),
        (
            ("experiments", "metaopt", "grids", "ci", "variants", "b16", "seqs_per_task"),
            2**20,
            "experiments.metaopt.grids.ci.variants.b16: training batch",
        ),
    ],
)
def test_absurd_combined_sizes_are_refused_naming_keys_and_bound(params, path, value, expected):
    message = rejection(set_key(params, path, value))
    assert expected in message
    assert f"over the {MAX_TENSOR_BYTES // 2**30} GiB bound" in message


def test_evaluation_index_bound_names_its_keys(params):
    params["tiers"]["ci"]["preprocess"]["resize"] = 1  # inputs smaller than their int64 indices
    params["tiers"]["ci"]["eval"].update(tasks=2**20, seqs_per_task=2**20)
    message = rejection(params)
    assert "tiers.ci: evaluation indices (int64), eval.tasks x eval.seqs_per_task x" in message


def test_tasks_per_step_must_divide_among_processes(params):
    params["tiers"]["ci"]["processes"] = 3
    assert "tiers.ci: train.tasks_per_step 8 is not divisible by processes 3" in rejection(params)


# --------------------------------------------------------------------------- reading the file
def repo_text_with(old: str, new: str) -> tuple[str, int]:
    """params.yaml's text with the first line `old` replaced; the line's number (from 1)."""
    lines = PARAMS_PATH.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line == old) + 1
    lines[number - 1] = new
    return "".join(lines), number


def duplicated_steps(tmp_path: Path) -> tuple[Path, int]:
    text, line = repo_text_with("      steps: 120\n", "      steps: 120\n      steps: 7\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path, line


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    path, line = duplicated_steps(tmp_path)
    assert yaml.safe_load(path.read_text())["tiers"]["ci"]["train"]["steps"] == 7  # last wins
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(info.value) == f"{path}:{line + 1}:7: duplicate key 'steps' (first at line {line})"


def test_merge_keys_may_override_merged_values(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("a: &base {p: 1, q: 2}\nb:\n  <<: *base\n  p: 3\n")
    assert parse_params_file(path) == {"a": {"p": 1, "q": 2}, "b": {"p": 3, "q": 2}}


def test_bad_yaml_is_one_line_with_file_and_line_through_the_cli(tmp_path, capsys):
    text, line = repo_text_with("      steps: 120\n", "      steps: [120\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as info:
        cli.main(["validate", "--params", str(path)])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert f"{path}:{line + 1}:" in err and "flow sequence" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_binary_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ParamsError, match="params.yaml: not a UTF-8 text file"):
        load_params(path)
    path.write_bytes(b"tier: ci\n\x00\n")  # UTF-8, but no YAML character
    with pytest.raises(ParamsError, match=r"params.yaml:2:1: unacceptable character #x0000"):
        load_params(path)


@pytest.mark.parametrize(("text", "found"), [("- a\n- b\n", "a list"), ("", "empty")])
def test_top_level_must_be_a_mapping(tmp_path, text, found):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=f"params.yaml: the top level is {found}"):
        load_params(path)


@pytest.mark.reliability
def test_snakemake_refuses_a_duplicated_key_naming_it_and_its_line(tmp_path):
    """Snakemake's own loader keeps the last of a duplicated key; the Snakefile must not."""
    for name in ("workflow", "gpicl"):
        shutil.copytree(
            REPO_ROOT / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", ".snakemake"),
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    _, line = duplicated_steps(tmp_path)
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "-n",
            "--cores",
            "1",
            "--config",
            "tier=ci",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0, run.stdout[-2000:]
    assert f"params.yaml:{line + 1}:7: duplicate key 'steps' (first at line {line})" in run.stderr
    assert "Traceback" not in run.stderr
