"""What a result depends on, in one place: the source files of each phase, and the fingerprint
a training run must match to resume from its checkpoint.

A run's fingerprint covers its resolved configuration, the content hash of its input cache,
the code that defines the computation (the `train` sources plus the run's model file) and the
torch version. Source files count by their syntax tree without docstrings: an edit to code
(even one operator) counts, an edit to a comment, docstring or layout does not (the workflow
still reruns the job, which then resumes the finished checkpoint and trains no step).
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import torch

from gpicl.io import torch_digest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Source files each workflow phase runs (relative to the repository root); a rule that
# depends on them reruns when they change. The run's own model file is added per run
# (gpicl.models.MODEL_SOURCES), so a new model type does not rerun the runs of the others.
PHASE_SOURCES = {
    "data": [
        "gpicl/io.py",
        *sorted(f"gpicl/data/{p.name}" for p in (REPO_ROOT / "gpicl/data").glob("*.py")),
    ],
    "cache": ["gpicl/cache.py", "gpicl/augment.py", "gpicl/io.py"],
    "train": [
        "gpicl/train.py",
        "gpicl/augment.py",
        "gpicl/optim.py",
        "gpicl/repro.py",
        "gpicl/models/__init__.py",
    ],
    "evaluate": [
        "gpicl/evaluate.py",
        "gpicl/augment.py",
        "gpicl/cache.py",
        "gpicl/models/__init__.py",
    ],
    "figures": [
        "gpicl/metrics.py",
        "gpicl/results.py",
        "gpicl/plotting.py",
        "gpicl/matplotlibrc",
        *sorted(f"gpicl/figures/{p.name}" for p in (REPO_ROOT / "gpicl/figures").glob("*.py")),
    ],
}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(files: list[str]) -> str:
    """SHA-256 over the files' syntax trees (docstrings and comments left out)."""
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        tree = _without_docstrings(ast.parse((REPO_ROOT / name).read_text(encoding="utf-8")))
        digest.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()


def run_fingerprint(run_cfg: dict, cache_path: str | Path) -> dict:
    """Everything that determines a training run's result (see the module docstring)."""
    from gpicl.models import MODEL_SOURCES

    kind = run_cfg["model"].get("type", "transformer")
    return {
        "config": hashlib.sha256(json.dumps(run_cfg, sort_keys=True).encode()).hexdigest(),
        "cache": torch_digest(cache_path),
        "code": code_digest(PHASE_SOURCES["train"] + [MODEL_SOURCES[kind]]),
        "torch": str(torch.__version__),
    }


def fingerprint_difference(old: dict | None, new: dict) -> str | None:
    """Why a checkpoint made under `old` must not be resumed under `new` (None: it may)."""
    if old is None:
        return "the checkpoint has no fingerprint (made by an older version)"
    what = {
        "config": "the run's configuration",
        "cache": "the input data cache",
        "code": "the training or model code",
        "torch": "the torch version",
    }
    changed = [what[k] for k in new if old.get(k) != new[k]]
    return None if not changed else " and ".join(changed) + " changed"
