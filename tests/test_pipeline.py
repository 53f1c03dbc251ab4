"""The ci tier end to end, in temporary copies of the repository: twice, byte-identical, and a
second invocation does nothing. Also: bad params fail before any compute, naming the key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpicl.figures.registry import REGISTRY
from gpicl.io import load_torch, read_json, save_torch

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".snakemake",
    "results",
    "resources",
    "logs",
    "benchmarks",
    ".dvc",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
)
# Machine-dependent by design (measured timings, and the figure that plots them; the external
# table's predictions per second), kept out of the comparison. checkpoint.pt carries the compute
# spent so far (so timing.json survives a resume); its weights end in model.pt, compared here.
NOT_COMPARED = {
    "timing.json",
    "checkpoint.pt",
    "compute_study.png",
    "compute_study.svg",
    "compute_study.csv",
    "external_speed.csv",
    "lr_sweep_time.csv",
}


def _copy_repo(dest: Path, downloads: Path) -> Path:
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE)
    (dest / "resources").mkdir()
    (dest / "resources" / "downloads").symlink_to(downloads)  # offline sources fetched once
    return dest


def _path_without_venv() -> str:
    """PATH as a user has it who did not activate the virtual environment."""
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`.venv/bin/snakemake` without an activated venv: rules must find the CLI themselves.
    Targets go before --config, which takes every following word as a key=value pair."""
    # The copy's own gpicl package, not the one installed in the venv (it may be edited).
    env = dict(os.environ, CI="1", PATH=_path_without_venv(), PYTHONPATH=str(workdir))
    return subprocess.run(
        [str(BIN / "snakemake"), *args, "--cores", "2", "--config", "tier=ci"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )


def _artifacts(root: Path) -> dict[str, bytes]:
    files = {}
    for base in ("results", "resources/datasets"):
        for path in sorted((root / base).rglob("*")):
            if path.is_file() and path.name not in NOT_COMPARED:
                files[str(path.relative_to(root))] = path.read_bytes()
    return files


@pytest.fixture(scope="session")
def downloads_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.mark.slow
def test_ci_pipeline_twice_is_byte_identical_and_idempotent(tmp_path, downloads_dir):
    outputs = []
    for name in ("first", "second"):
        work = _copy_repo(tmp_path / name, downloads_dir)
        if name == "first":  # a newcomer's first command: a dry run of a fresh checkout
            dry = _snakemake(work, "--dry-run")
            assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
            assert not (work / "results").exists()
        run = _snakemake(work)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        outputs.append(_artifacts(work))

    first, second = outputs
    for expected in (
        "results/ci/figures/fig3_learning_curves.png",
        "results/ci/figures/fig3_learning_curves.svg",
        "results/ci/figures/fig3_learning_curves.csv",
        "results/ci/tables/table1.md",
        "results/ci/tables/table1.csv",
        "results/ci/eval/fig3/mnist-s0/random.json",
        "results/ci/runs/fig3/fashion_mnist-s1/model.pt",
        "resources/datasets/fashion_mnist.npz",
    ):
        assert expected in first, f"pipeline did not produce {expected}"
    assert sorted(first) == sorted(second)
    differing = [path for path in first if first[path] != second[path]]
    assert not differing, f"not byte-identical across runs: {differing}"

    # A second invocation in the same tree has nothing to do.
    again = _snakemake(tmp_path / "second", "--dry-run")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr

    _report_has_every_figure(tmp_path / "second")
    _dvc_experiment_reruns_what_reads_the_changed_param(tmp_path / "second")
    _deleted_model_and_evaluation_are_rebuilt(tmp_path / "second", first)
    _changed_cache_retrains(tmp_path / "second")
    _damaged_dataset_is_prepared_again(tmp_path / "second", first)


def _report_has_every_figure(work: Path) -> None:
    """`snakemake --report` holds every registered figure and table with its caption."""
    run = _snakemake(work, "--report", "report.html")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    html = (work / "report.html").read_text(encoding="utf-8")
    for figure in REGISTRY.values():
        assert figure.stem + figure.report in html, f"report lacks {figure.name}"
        assert figure.caption.split("`")[0].split(":")[0] in html, f"{figure.name} caption"


def _dvc_experiment_reruns_what_reads_the_changed_param(work: Path) -> None:
    """`dvc exp run -S` of a figure-only param redraws that figure (and retrains nothing);
    `dvc metrics show` reads the metrics file."""
    env = dict(
        os.environ,
        CI="1",
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(work),
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )

    def run(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    params = work / "params.yaml"
    params.write_text(re.sub(r"(?m)^tier: \w+", "tier: ci", params.read_text()))
    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    run("git", "add", "-A")  # results, resources and logs are git-ignored
    run("git", "commit", "-q", "-m", "ci tier")
    # Outputs made by a direct Snakemake run are recorded first (as the README says): an
    # experiment started without a dvc.lock entry for them removes them.
    run(str(BIN / "dvc"), "commit", "-f", "-q")
    run("git", "add", "dvc.lock")
    run("git", "commit", "-q", "-m", "lock")
    figure = work / "results/ci/figures/fig4_transitions.csv"
    before = figure.read_bytes()
    model = (work / "results/ci/runs/fig3/mnist-s0/model.pt").stat().st_mtime_ns
    key = "experiments.transitions.regimes.gain_threshold"
    run(str(BIN / "dvc"), "exp", "run", "-S", f"{key}=0.0")
    assert figure.read_bytes() != before, "the figure reading the changed param was not redrawn"
    assert (work / "results/ci/runs/fig3/mnist-s0/model.pt").stat().st_mtime_ns == model
    assert "table1_last_accuracy_unseen" in run(str(BIN / "dvc"), "metrics", "show", "--json")


def _changed_cache_retrains(work: Path) -> None:
    """A changed input cache reruns training from step 0, not the finished checkpoint."""
    run_dir = work / "results/ci/runs/fig3/mnist-s0"
    model = (run_dir / "model.pt").read_bytes()
    cache_path = work / "results/cache/mnist-r7c1.pt"
    cache = load_torch(cache_path)
    cache["x_train"] = cache["x_train"] * 0.5
    save_torch(cache, cache_path)
    run = _snakemake(work, "results/ci/runs/fig3/mnist-s0/done.json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert read_json(run_dir / "timing.json")["steps_this_call"] == 120
    assert (run_dir / "model.pt").read_bytes() != model
    log = (work / "logs/ci/train/fig3/mnist-s0.log").read_text()
    assert "not resumed, training starts over from step 0: the input data cache changed" in log


def _deleted_model_and_evaluation_are_rebuilt(work: Path, reference: dict) -> None:
    """Deleting an intermediate (a model, an evaluation) makes the default target rebuild it;
    an unchanged run resumes its finished checkpoint and trains no step. Byte comparisons are
    wrapped in `(...) is True` so that a failure prints no diff of megabytes."""
    model = work / "results/ci/runs/fig3/fashion_mnist-s1/model.pt"
    evaluation = work / "results/ci/eval/fig3/fashion_mnist-s1/mnist.json"
    model.unlink()
    evaluation.unlink()
    run = _snakemake(work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert read_json(model.with_name("timing.json"))["steps_this_call"] == 0
    assert (model.read_bytes() == reference[str(model.relative_to(work))]) is True
    assert (evaluation.read_bytes() == reference[str(evaluation.relative_to(work))]) is True


def _damaged_dataset_is_prepared_again(work: Path, reference: dict) -> None:
    """A truncated dataset is found before planning, removed and prepared again."""
    npz = work / "resources/datasets/mnist.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    dry = _snakemake(work, "--dry-run")
    assert "resources/datasets/mnist.npz" in dry.stderr and "would be prepared again" in dry.stderr
    assert npz.exists()  # a dry run changes nothing
    # The default target lists every dataset record; here only the damaged one. (Caches made
    # from it do not rerun: Snakemake sees the rebuilt record's content unchanged.)
    record = "resources/datasets/mnist.status.json"
    run = _snakemake(work, record)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (npz.read_bytes() == reference["resources/datasets/mnist.npz"]) is True
    assert (work / record).read_bytes() == reference[record]


def test_invalid_params_fail_before_any_compute_naming_the_key(tmp_path, downloads_dir):
    work = _copy_repo(tmp_path / "bad", downloads_dir)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["tiers"]["ci"]["train"]["lr"] = "fast"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run = _snakemake(work)
    assert run.returncode != 0
    assert "lr" in run.stdout + run.stderr
    assert "fast" in run.stdout + run.stderr
    assert not (work / "results").exists(), "compute started despite invalid params"
    assert not (work / "resources" / "datasets").exists()

    cli = subprocess.run(
        [str(BIN / "gpicl"), "validate", "--params", str(work / "params.yaml")],
        capture_output=True,
        text=True,
    )
    assert cli.returncode != 0
    assert "tiers.ci.train.lr" in cli.stderr


def test_slurm_profile_sends_paper_training_to_a_gpu_node(tmp_path, downloads_dir):
    """Dry run through the SLURM executor plugin: a paper-tier training job asks for a GPU."""
    work = _copy_repo(tmp_path / "slurm", downloads_dir)
    datasets = work / "resources" / "datasets"
    datasets.mkdir()
    (datasets / "mnist.npz").write_bytes(b"placeholder: a dry run reads no data")
    (datasets / "mnist.status.json").write_text(
        '{"available": true, "dataset": "mnist", "path": "resources/datasets/mnist.npz", '
        '"reason": null}\n'
    )
    env = dict(
        os.environ, CI="1", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(work)
    )
    run = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--workflow-profile",
            "workflow/profiles/slurm",
            "--config",
            "tier=paper",
            "--dry-run",
            "results/paper/runs/fig3/mnist-s0/done.json",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    train_job = out[out.index("rule train:") :]
    assert "gpu=1" in train_job
    assert "slurm_partition=" in train_job
    assert not (work / "results" / "paper" / "runs").exists()
