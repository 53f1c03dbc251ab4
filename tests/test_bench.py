"""gpicl.bench: rows carry every field, the FLOPs count matches a hand computation, both
implementations produce the same shapes, and `gpicl bench` writes its CSV. Nothing about
speed."""

from __future__ import annotations

import csv

import pytest
import torch

from gpicl.augment import NUM_CLASSES
from gpicl.bench import (
    BENCH_COLUMNS,
    SHAPE_KEYS,
    TINY_SHAPE,
    BenchOptions,
    build_ours,
    build_ours_bf16,
    build_reference,
    format_table,
    run_benchmark,
    shape_flops,
    shapes_from_params,
)
from gpicl.cli import main
from gpicl.config import REPO_ROOT, load_params
from gpicl.models import build_model
from gpicl.models.transformer import (
    transformer_forward_flops_per_token,
    transformer_train_flops,
)

CPU = torch.device("cpu")
SMALL_MODEL = dict(width=8, layers=1, heads=2, key_size=4, mlp_ratio=2)
SMALL_NX, SMALL_L = 4, 5


@pytest.fixture(scope="module")
def tiny_rows():
    return run_benchmark(
        [dict(TINY_SHAPE)],
        device="cpu",
        threads=1,
        warmup=1,
        repeats=1,
        matmul_size=128,
        num_examples=500,
        progress=False,
    )


def test_rows_have_every_column_and_sane_values(tiny_rows):
    assert [r["implementation"] for r in tiny_rows] == ["ours", "ours_bf16", "reference"]
    for r in tiny_rows:
        assert set(BENCH_COLUMNS) <= set(r)
        assert r["shape"] == "tiny" and r["device"] == "cpu" and r["threads"] == 1
        assert r["tokens_per_step"] == 2 * 4 * 20
        for key in ("step_ms_median", "tokens_per_s", "flops_per_step", "mfu", "peak_mem_mb"):
            assert r[key] > 0, key
        assert r["step_ms_min"] <= r["step_ms_median"] <= r["step_ms_max"]
        assert r["flops_per_step"] == 3 * r["fwd_flops_per_token"] * r["tokens_per_step"]
    ours, ours_bf16, ref = tiny_rows
    assert ref["speedup_vs_reference"] == 1.0
    for r in (ours, ours_bf16):
        assert r["speedup_vs_reference"] == pytest.approx(
            ref["step_ms_median"] / r["step_ms_median"]
        )
    # tiny has width == heads x key_size, so all count the same FLOPs and parameters
    assert ours["fwd_flops_per_token"] == ours_bf16["fwd_flops_per_token"]
    assert ours["fwd_flops_per_token"] == ref["fwd_flops_per_token"]
    assert ours["num_params"] == ours_bf16["num_params"] == ref["num_params"]
    assert "tiny" in format_table(tiny_rows) and "speed-up" in format_table(tiny_rows)


def test_each_row_is_measured_against_the_peak_of_its_own_dtype(tiny_rows):
    ours, ours_bf16, ref = tiny_rows
    assert (ours["precision"], ref["precision"]) == ("fp32", "fp32")  # CPU: ours runs fp32
    assert ours_bf16["precision"] == "bf16-autocast"
    assert ours["matmul_peak_dtype"] == ref["matmul_peak_dtype"] == "float32"
    assert ours_bf16["matmul_peak_dtype"] == "bfloat16"
    # one measurement per dtype, shared by the rows that use it
    assert ours["matmul_peak_tflops"] == ref["matmul_peak_tflops"]
    for r in tiny_rows:
        assert r["mfu"] == pytest.approx(r["achieved_tflops"] / r["matmul_peak_tflops"])
    assert "float32" in format_table(tiny_rows) and "bfloat16" in format_table(tiny_rows)


def test_step_flops_equal_a_hand_count():
    # Multiply-adds per token: embed (4+10)*8 = 112; one layer: qkv 8*3*8 = 192, out 8*8 = 64,
    # MLP 2*8*16 = 256, causal attention 8*5 = 40 -> 552; head 8*10 = 80. Total 744 MACs.
    fwd = transformer_forward_flops_per_token(SMALL_MODEL, SMALL_NX, SMALL_L)
    assert fwd == 2 * (112 + 552 + 80) == 1488
    # 6 sequences x 5 positions = 30 tokens; forward + backward = 3 x forward.
    assert transformer_train_flops(SMALL_MODEL, SMALL_NX, SMALL_L, 6) == 3 * 1488 * 30 == 133_920


def test_tiny_shape_flops_equal_a_hand_count(tiny_rows):
    # tiny: width 16, 2 heads x key 8, MLP 2x, Nx 16, L 20, 2 x 4 sequences. Multiply-adds per
    # token: embed 26*16 = 416; layer: qkv 16*48 = 768, out 16*16 = 256, MLP 2*16*32 = 1024,
    # attention 16*20 = 320 -> 2368; head 16*10 = 160. Total 2944 MACs.
    assert shape_flops(TINY_SHAPE) == (2 * 2944, 3 * 2 * 2944 * 8 * 20) == (5888, 2_826_240)
    for r in tiny_rows:
        assert (r["fwd_flops_per_token"], r["flops_per_step"]) == (5888, 2_826_240)


def test_flops_formula_is_the_models_own():
    model = build_model(SMALL_MODEL, SMALL_NX, SMALL_L)
    assert transformer_forward_flops_per_token(SMALL_MODEL, SMALL_NX, SMALL_L) == 1488
    assert model.flops_per_token() == 1488
    # A params.yaml model block (with its type, defaults left out) counts as build_model builds.
    block = {"type": "transformer", "width": 8, "layers": 1}
    assert transformer_forward_flops_per_token(block, SMALL_NX, SMALL_L) == (
        build_model(block, SMALL_NX, SMALL_L).flops_per_token()
    )


@pytest.fixture
def restore_determinism():
    """The builders switch torch's deterministic mode as train.py does; put it back after."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def test_reference_and_ours_produce_the_same_shapes(restore_determinism):
    shape = dict(TINY_SHAPE)
    opts = BenchOptions(num_examples=200)
    B, L = shape["tasks_per_step"] * shape["seqs_per_task"], shape["seq_len"]
    outputs = {}
    for build in (build_ours, build_ours_bf16, build_reference):
        impl = build(shape, CPU, opts)
        tokens, targets = impl.sample(0)
        assert tokens.shape == (B, L, shape["input_size"] + NUM_CLASSES)
        assert targets.shape == (B, L) and targets.dtype == torch.int64
        assert torch.all(tokens[:, 0, shape["input_size"] :] == 0)  # first label slot empty
        outputs[impl.name] = impl.model(tokens).shape
        stats = impl.step(1)
        assert torch.isfinite(stats).all()
    assert outputs["ours"] == outputs["ours_bf16"] == outputs["reference"] == (B, L, NUM_CLASSES)


def test_shapes_from_params_reads_the_tiers():
    params = load_params(REPO_ROOT / "params.yaml")
    tiny, cpu, paper = shapes_from_params(params, "tiny,cpu,paper")
    assert tiny == TINY_SHAPE
    assert set(cpu) == set(SHAPE_KEYS)
    t = params["tiers"]["paper"]
    assert paper["width"] == t["model"]["width"]
    assert paper["input_size"] == t["preprocess"]["resize"] ** 2 * t["preprocess"]["channels"]
    assert paper["tasks_per_step"] * paper["seqs_per_task"] == (
        t["train"]["tasks_per_step"] * t["train"]["seqs_per_task"]
    )
    with pytest.raises(ValueError, match="unknown bench shape"):
        shapes_from_params(params, ["nope"])


def test_cli_writes_the_csv(tmp_path, capsys):
    out = tmp_path / "bench" / "bench.csv"
    main(
        ["bench", "--shapes", "tiny", "--impl", "ours", "--repeats", "1", "--warmup", "0"]
        + ["--threads", "1", "--matmul-size", "64", "--num-examples", "100", "--out", str(out)]
    )
    assert "ours" in capsys.readouterr().out
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and tuple(rows[0]) == BENCH_COLUMNS
    assert rows[0]["speedup_vs_reference"] == "NA"  # no reference run, no ratio
