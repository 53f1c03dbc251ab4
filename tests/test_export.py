"""The shipped default learner: which run is exported, its model card, and that the shipped
file matches what the pipeline exports from the current params."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpicl.config import load_params, run_config
from gpicl.io import load_artifact, write_json
from gpicl.model_card import choose_run

SHIPPED = Path("gpicl/checkpoints/default.pt")


def _done(path: Path, loss, seed):
    path.parent.mkdir(parents=True)
    write_json(path, {"finished": True, "final_loss": loss, "seed": seed, "name": path.parent.name})
    return path


def test_the_export_is_the_run_with_the_lowest_final_training_loss(tmp_path):
    runs = [
        _done(tmp_path / "a" / "done.json", 1.70, 0),
        _done(tmp_path / "b" / "done.json", 1.65, 1),
        _done(tmp_path / "c" / "done.json", 1.65, 2),  # tie: the lower seed wins
    ]
    assert choose_run(runs) == runs[1]


def test_an_unfinished_run_is_never_exported(tmp_path):
    path = tmp_path / "a" / "done.json"
    path.parent.mkdir()
    write_json(path, {"finished": False, "final_loss": None, "seed": 0})
    with pytest.raises(ValueError, match="not a finished training run"):
        choose_run([path])


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped checkpoint in this checkout")
def test_shipped_checkpoint_was_exported_under_the_current_params():
    """A change to the default tier's Figure 3 configuration must come with a new export
    (`make ship-model`): the shipped file's run config must be the one params.yaml gives."""
    shipped = load_artifact(SHIPPED, "model")
    config = shipped["config"]
    params = load_params("params.yaml")
    run = config["name"].split("/", 1)[1]
    assert config == run_config(params, config["tier"], "fig3", run)
    assert SHIPPED.stat().st_size < 1_000_000


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped checkpoint in this checkout")
def test_shipped_checkpoint_equals_the_pipelines_export_on_this_machine():
    shipped_config = load_artifact(SHIPPED, "model")["config"]
    exported = Path(f"results/{shipped_config['tier']}/export/default.pt")
    if not exported.exists():
        pytest.skip(f"{exported} not built here (snakemake --cores all export_all)")
    assert exported.read_bytes() == SHIPPED.read_bytes()
