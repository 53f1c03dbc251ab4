"""Reruns you can trust: each test reproduces a failure a user met and pins its fix.

A changed input or code retrains instead of resuming a finished checkpoint; a damaged file is
refused naming itself (and a damaged dataset is prepared again); a killed writer's temporary
file does not stay; CI never contacts a dataset host.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gpicl import fingerprint
from gpicl.cli import main
from gpicl.data import DatasetUnavailableError, get_spec
from gpicl.data import prepare as data_prepare
from gpicl.data import sources as data_sources
from gpicl.data.status import (
    dataset_availability,
    discard_damaged,
    load_prepared,
)
from gpicl.io import (
    IntegrityError,
    load_torch,
    read_json,
    save_torch,
    sha256_file,
    write_json,
    write_text,
)
from gpicl.results import read_run
from tests.test_train import run, run_config, write_cache

pytestmark = pytest.mark.reliability


def _flip_bit(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime kept: nothing else notices


# ----------------------------------------------------------------- 1. a changed input retrains
def test_changed_cache_retrains_from_step_0_instead_of_resuming(tmp_path, caplog):
    cache = write_cache(tmp_path / "cache.pt")
    cfg = run_config()
    run(copy.deepcopy(cfg), cache, tmp_path / "r")
    first = load_torch(tmp_path / "r" / "model.pt")["model"]

    data = load_torch(cache)
    data["x_train"] = data["x_train"] * 0.5
    save_torch(data, cache)
    caplog.clear()
    run(copy.deepcopy(cfg), cache, tmp_path / "r")

    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == cfg["train"]["steps"]
    assert "not resumed, training starts over from step 0: the input data cache changed" in (
        caplog.text
    )
    second = load_torch(tmp_path / "r" / "model.pt")["model"]
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_unchanged_inputs_resume_the_finished_checkpoint_and_train_no_step(tmp_path):
    cache = write_cache(tmp_path / "cache.pt")
    run(run_config(), cache, tmp_path / "r")
    model = (tmp_path / "r" / "model.pt").read_bytes()
    run(run_config(), cache, tmp_path / "r")
    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == 0
    assert (tmp_path / "r" / "model.pt").read_bytes() == model


def test_changed_code_fingerprint_retrains(tmp_path, monkeypatch, caplog):
    cache = write_cache(tmp_path / "cache.pt")
    run(run_config(), cache, tmp_path / "r")
    real = fingerprint.code_digest
    monkeypatch.setattr(fingerprint, "code_digest", lambda files: "edited-" + real(files))
    caplog.clear()
    run(run_config(), cache, tmp_path / "r")
    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == 6
    assert "training or model code changed" in caplog.text  # logged by gpicl.train


def test_code_digest_counts_code_edits_not_comments_or_docstrings(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "REPO_ROOT", tmp_path)
    source = tmp_path / "m.py"
    source.write_text('"""Doc."""\n\ndef f(x):\n    return x + 1\n')
    base = fingerprint.code_digest(["m.py"])
    source.write_text('"""Other doc."""\n# a comment\n\n\ndef f(x):  # why\n    return x + 1\n')
    assert fingerprint.code_digest(["m.py"]) == base
    source.write_text('"""Doc."""\n\ndef f(x):\n    return x - 1\n')
    assert fingerprint.code_digest(["m.py"]) != base


def test_damaged_checkpoint_is_discarded_and_training_starts_over(tmp_path, caplog):
    cache = write_cache(tmp_path / "cache.pt")
    cfg = run_config()
    run(copy.deepcopy(cfg), cache, tmp_path / "r", stop_after=3)
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"")
    caplog.clear()
    assert run(copy.deepcopy(cfg), cache, tmp_path / "r")["finished"]
    assert read_json(tmp_path / "r" / "timing.json")["steps_this_call"] == 6
    assert "unreadable" in caplog.text


# ---------------------------------------------------------- 2. silent corruption is refused
def test_bit_flip_in_a_cache_is_refused_by_training_and_evaluation(tmp_path, capsys):
    cache = write_cache(tmp_path / "cache.pt")
    run(run_config(), cache, tmp_path / "r")
    _flip_bit(cache)
    with pytest.raises(IntegrityError, match=str(cache)):
        load_torch(cache)
    with pytest.raises(IntegrityError, match="does not match the SHA-256"):
        run(run_config(steps=9), cache, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "model.pt").exists()


def test_damaged_files_are_named_with_the_command_that_rebuilds_them(tmp_path):
    model = tmp_path / "model.pt"
    save_torch({"w": torch.ones(100)}, model)
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # truncated
    with pytest.raises(IntegrityError, match=rf"{model}.*--forcerun {model}"):
        load_torch(model)

    record = tmp_path / "mnist.json"
    write_json(record, {"accuracy": [0.1, 0.2]})
    record.write_text(record.read_text()[:20])  # half a file
    with pytest.raises(IntegrityError, match=rf"{record}: not valid JSON"):
        read_json(record)

    write_json(record, {"accuracy": [0.1, 0.2]})
    record.write_text(record.read_text().replace("0.2", "0.9"))  # an edited number
    with pytest.raises(IntegrityError, match="does not match its content_sha256"):
        read_json(record)

    torch.save({"w": torch.ones(3)}, tmp_path / "plain.pt")  # not written by gpicl
    with pytest.raises(IntegrityError, match="no gpicl integrity header"):
        load_torch(tmp_path / "plain.pt")


def test_edited_training_log_is_refused_by_the_figures(tmp_path):
    cache = write_cache(tmp_path / "cache.pt")
    run(run_config(), cache, tmp_path / "r")
    read_run(tmp_path / "r" / "done.json")  # intact: reads
    log = tmp_path / "r" / "log.csv"
    log.write_text(log.read_text().replace(",", ";", 1))
    with pytest.raises(IntegrityError, match="log.csv"):
        read_run(tmp_path / "r" / "done.json")


def test_cli_exits_3_naming_the_damaged_file(tmp_path, capsys):
    cache = write_cache(tmp_path / "cache.pt")
    _flip_bit(cache)
    cfg = run_config()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "--run-config",
                json.dumps(cfg),
                "--cache",
                str(cache),
                "--run-dir",
                str(tmp_path / "r"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert str(cache) in err and "Traceback" not in err


# ------------------------------------------------- 3. a damaged dataset is prepared again
def _prepared_dataset(folder: Path, name: str = "mnist") -> Path:
    """A tiny .npz and its availability record, as `gpicl data --status-json` writes them."""
    npz = folder / f"{name}.npz"
    rng = np.random.default_rng(0)
    with open(npz, "wb") as f:
        np.savez(
            f,
            x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
            y_train=rng.integers(0, 10, 20).astype(np.int64),
            x_test=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
            y_test=rng.integers(0, 10, 8).astype(np.int64),
        )
    record = {"dataset": name, "available": True, "path": str(npz), "reason": None}
    write_json(folder / f"{name}.status.json", {**record, "sha256": sha256_file(npz)})
    return npz


def test_truncated_dataset_is_named_removed_and_prepared_again(tmp_path):
    npz = _prepared_dataset(tmp_path)
    assert load_prepared("mnist", npz)["x_train"].shape == (20, 28, 28)
    npz.write_bytes(npz.read_bytes()[:1000])
    with pytest.raises(IntegrityError, match=rf"{npz}.*next `snakemake --cores all` prepares"):
        load_prepared("mnist", npz)
    assert not npz.exists() and not (tmp_path / "mnist.status.json").exists()


def test_workflow_start_removes_damaged_datasets_and_status_records(tmp_path):
    good = _prepared_dataset(tmp_path, "mnist")
    bad = _prepared_dataset(tmp_path, "fashion_mnist")
    _flip_bit(bad)
    broken_record = _prepared_dataset(tmp_path, "kmnist")
    (tmp_path / "kmnist.status.json").write_text("{not json")

    assert len(discard_damaged(tmp_path, dry_run=True)) == 2  # a dry run only reports
    assert bad.exists()
    messages = discard_damaged(tmp_path)
    assert [m.split(":")[0] for m in messages] == [str(bad), str(broken_record)]
    assert good.exists() and not bad.exists() and not broken_record.exists()
    assert not (tmp_path / "fashion_mnist.status.json").exists()
    assert discard_damaged(tmp_path) == []


def test_status_record_holds_the_hash_of_the_prepared_dataset(tmp_path, monkeypatch):
    def fake_prepare(name, out_path, **kwargs):
        return _prepared_dataset(Path(out_path).parent, name)

    monkeypatch.setattr("gpicl.data.status.prepare_dataset", fake_prepare)
    record = dataset_availability("mnist", tmp_path / "mnist.npz")
    assert record["sha256"] == sha256_file(tmp_path / "mnist.npz")


# ------------------------------------------------------- 6. a newcomer's first commands
def test_ci_never_contacts_a_dataset_host_even_with_source_download(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("a dataset host was contacted with CI set")

    monkeypatch.setattr(data_sources.pooch, "retrieve", no_network)
    with pytest.raises(DatasetUnavailableError, match="network is off"):
        data_prepare.prepare_dataset("kmnist", tmp_path / "k.npz", source="download")
    assert not (tmp_path / "k.npz").exists()
    assert get_spec("kmnist").base_urls  # the dataset does have canonical hosts


def test_killed_writer_temporaries_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.pt"
    dead = tmp_path / ".checkpoint.pt.999999999.abc.tmp"  # no such pid
    old_style = tmp_path / ".checkpoint.pt.k2j4.tmp"  # the former naming, no pid
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.xyz.tmp"  # a running writer's
    for path in (dead, old_style, live):
        path.write_bytes(b"")
    other = tmp_path / ".model.pt.999999999.abc.tmp"
    other.write_bytes(b"")
    save_torch({"step": 1}, target)
    assert not dead.exists() and not old_style.exists()
    assert live.exists() and other.exists()
    write_text(tmp_path / "model.pt", "x")
    assert not other.exists()
