"""Use a meta-trained model as a classifier: `gpicl.InContextClassifier` (scikit-learn API),
`predict_csv` (behind `gpicl predict`) and `export_model` (behind `gpicl export`).

The model learns in context: `fit` only stores the labelled examples, and each prediction is
the model's output at a query token placed after the context sequence
[(x_1, -), (x_2, y_1), ..., (x_n, y_{n-1}), (x_query, y_n)] (gpicl.augment.make_tokens). No
gradient step is taken at any time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from gpicl.augment import NUM_CLASSES, PreprocessSpec, make_tokens
from gpicl.io import load_artifact, save_torch, torch_digest, write_text
from gpicl.models import build_model
from gpicl.models.transformer import Transformer

__all__ = ["InContextClassifier", "default_checkpoint", "export_model", "load_model", "predict_csv"]

EXPORT_FORMAT = "gpicl-export"
EXPORT_VERSION = 1
FP32_LIMIT_BYTES = 1 << 20  # exported weights stay fp32 up to 1 MB, fp16 above
EXPORT_DTYPES = ("auto", "float32", "float16")
_MAKE_DEFAULT = (
    "produce it with `snakemake --cores all export` (or `gpicl export --model "
    "results/<tier>/runs/fig3/<run>/model.pt --out gpicl/checkpoints/default.pt`), or give "
    "a run's model.pt as model= (gpicl predict --model)"
)


# --------------------------------------------------------------------------- model files
def default_checkpoint() -> Path:
    """The shipped checkpoint, gpicl/checkpoints/default.pt inside the installed package."""
    path = Path(str(resources.files("gpicl").joinpath("checkpoints", "default.pt")))
    if not path.is_file():
        raise FileNotFoundError(f"no default checkpoint at {path}; {_MAKE_DEFAULT}")
    return path


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about the model it holds."""

    kind: str  # model type (gpicl.models)
    input_size: int  # Nx: features per input token
    seq_len: int  # positions the model was meta-trained on (learned position embeddings)
    num_classes: int  # label slots of the output


def _model_info(saved: dict, path) -> ModelInfo:
    cfg = saved["config"]
    try:
        kind = cfg["model"].get("type", "transformer")
        input_size = saved.get("input_size") or PreprocessSpec(**cfg["preprocess"]).input_size
        seq_len = saved.get("seq_len") or cfg["train"]["seq_len"]
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{os.fspath(path)}: not a trained model (its config lacks {err}); give a run's "
            "model.pt or a file written by `gpicl export`"
        ) from None
    return ModelInfo(kind, int(input_size), int(seq_len), int(saved.get("num_classes", 10)))


def _build(saved: dict, path) -> tuple[torch.nn.Module, ModelInfo]:
    """The model a model file describes, with its weights in fp32 (exports may hold fp16)."""
    info = _model_info(saved, path)
    if info.num_classes != NUM_CLASSES:
        raise ValueError(f"{os.fspath(path)}: {info.num_classes} output classes, not {NUM_CLASSES}")
    model = build_model(saved["config"]["model"], info.input_size, info.seq_len)
    state = {
        k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in saved["model"].items()
    }
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{os.fspath(path)}: its weights do not fit the model its config describes ({err})"
        ) from None
    return model.eval(), info


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, stamp: tuple, device: str) -> tuple[torch.nn.Module, ModelInfo]:
    saved = load_artifact(path, "model", map_location="cpu")
    model, info = _build(saved, path)
    return model.to(device), info


def load_model(path=None, device: str = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """A model file (None: the shipped default), in eval mode on `device`. Loaded once per
    file version and device: estimators fitted on the same file share it (read only)."""
    path = default_checkpoint() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path}: no such file")
    stat = path.stat()
    return _load_cached(str(path.resolve()), (stat.st_mtime_ns, stat.st_size), str(device))


# --------------------------------------------------------------------------- forward passes
@torch.no_grad()
def full_sequence_logits(model, context: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Logits at the query position of the sequences [context..., query], one per query, in
    one batched forward. context (Lc, D) tokens, queries (B, D) tokens -> (B, 10). Any model."""
    seqs = torch.cat([context.expand(queries.shape[0], -1, -1), queries[:, None]], dim=1)
    return model(seqs)[:, -1]


@torch.no_grad()
def context_cache(model: Transformer, context: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Keys and values of the context tokens (Lc, D) in every layer: (H, Lc, K) each.

    Attention is causal, so the context positions never see a query: their keys and values
    are the same for every query, and are computed once."""
    h = model.embed(context[None]) + model.pos[: context.shape[0]]
    cache = []
    for block in model.blocks:
        attn = block.attn
        qkv = attn.qkv(block.ln_attn(h)).view(-1, 3, attn.heads, attn.key_size)
        cache.append((qkv[:, 1].transpose(0, 1), qkv[:, 2].transpose(0, 1)))
        h = block(h)
    return cache


@torch.no_grad()
def cached_query_logits(model: Transformer, cache, queries: torch.Tensor) -> torch.Tensor:
    """The Transformer's logits at position Lc for queries (B, D) that follow the cached
    context: only the query position is computed, attending to the cached keys and values and
    to itself. Equal to full_sequence_logits up to float rounding (tests/test_classifier.py),
    written here, with the model's own layers, because gpicl/models/transformer.py is part of
    every Transformer run's fingerprint: an edit there would retrain them all."""
    B, Lc = queries.shape[0], cache[0][0].shape[1]
    h = model.embed(queries) + model.pos[Lc]  # (B, C)
    for block, (k_ctx, v_ctx) in zip(model.blocks, cache, strict=True):
        attn = block.attn
        H, K = attn.heads, attn.key_size
        qkv = attn.qkv(block.ln_attn(h)).view(B, 3, H, K).transpose(0, 2)  # (H, 3, B, K)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # (H, B, K)
        scale = 1.0 / math.sqrt(K)
        scores = torch.cat(
            [torch.matmul(q, k_ctx.transpose(1, 2)), (q * k).sum(-1, keepdim=True)], dim=-1
        )  # (H, B, Lc + 1): the context's keys, then the query's own
        w = torch.softmax(scores * scale, dim=-1)
        y = torch.matmul(w[..., :Lc], v_ctx) + w[..., Lc:] * v  # (H, B, K)
        h = h + attn.out(y.transpose(0, 1).reshape(B, H * K))
        h = h + block.mlp(block.ln_mlp(h))
    return model.head(model.ln_final(h))


def masked_slot_proba(logits: torch.Tensor, used_slots: np.ndarray) -> torch.Tensor:
    """Softmax over the label slots in use; the others get exactly zero probability."""
    mask = torch.full((logits.shape[-1],), float("-inf"), device=logits.device)
    mask[torch.as_tensor(used_slots, device=logits.device)] = 0.0
    return torch.softmax(logits.float() + mask, dim=-1)


# --------------------------------------------------------------------------- the estimator
class InContextClassifier(ClassifierMixin, BaseEstimator):
    """A meta-trained sequence model used as a scikit-learn classifier, learning in context.

    `fit(X, y)` stores the labelled examples (the context) and checks them; no weight changes.
    `predict_proba(X)` shows the model each query after the context and reads its output.

    Inputs of any width are adapted the way the model was meta-trained to generalise: each
    feature is z-normalised with the context's mean and standard deviation (a constant feature
    becomes 0), then a fixed random projection (Gaussian, std 1/sqrt(n_features), drawn from
    `random_state`) maps the features to the model's input size. Meta-training showed the model
    inputs under ever new random projections (and label permutations), so it is indifferent to
    which one it sees: a random projection is the principled adapter, not an approximation.

    Ensemble: `n_estimators` members, each with its own projection, its own assignment of the
    classes to the model's label slots (a random permutation) and its own order of the context,
    like TabPFN's ensembling over feature and class permutations. A context longer than the
    model's sequence length minus one (the query's position) is subsampled per member (a random
    subset, one example of each class first). Probabilities are mapped back through each
    member's permutation and averaged. Everything random is drawn in `fit` from `random_state`,
    so predictions are deterministic given it.

    Limits: at most 10 classes (the model's label slots; unused slots are masked out before the
    softmax), labels any hashable values; contexts beyond seq_len - 1 examples are subsampled.

    Parameters
    ----------
    model : None or path, the shipped checkpoint (gpicl/checkpoints/default.pt) or any model.pt
        written by `gpicl train` or `gpicl export`.
    n_estimators : ensemble members.
    random_state : int, RandomState or None (numpy convention).
    device : torch device of the model ("cpu", "cuda", ...).
    batch_size : queries per forward pass.
    cache_context : compute the context once and then only the query positions (Transformer
        models); False runs every [context, query] sequence in full (any model type).
    """

    def __init__(
        self,
        model=None,
        n_estimators: int = 8,
        random_state=0,
        device: str = "cpu",
        batch_size: int = 256,
        cache_context: bool = True,
    ):
        self.model = model
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.device = device
        self.batch_size = batch_size
        self.cache_context = cache_context

    def _check_params(self) -> None:
        for name in ("n_estimators", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def fit(self, X, y):
        """Store (X, y) as the context. X (n, d) finite numbers, y (n,) labels of 2..10 classes."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"the context holds 1 class ({classes[0]!r}); in-context classification "
                "needs examples of at least 2 classes"
            )
        if len(classes) > NUM_CLASSES:
            raise ValueError(
                f"the context holds {len(classes)} classes; the model has {NUM_CLASSES} label "
                f"slots, so at most {NUM_CLASSES} classes"
            )
        model, info = load_model(self.model, self.device)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        # A constant feature (std 0, or rounding noise relative to its mean) carries nothing.
        constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        self.classes_ = classes
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, std)
        self.context_X_ = (X - self.mean_) / self.scale_
        self.context_y_ = y_index.astype(np.int64)
        self.model_ = model
        self.model_info_ = info
        rng = check_random_state(self.random_state)
        d, max_context = X.shape[1], info.seq_len - 1
        self.members_ = [
            (
                self._draw_context(rng, max_context),
                rng.standard_normal((d, info.input_size)) / math.sqrt(d),
                rng.permutation(NUM_CLASSES)[: len(classes)],  # class k -> label slot
            )
            for _ in range(self.n_estimators)
        ]
        return self

    def _draw_context(self, rng, max_context: int) -> np.ndarray:
        """The indices of one member's context, in its order: all of it shuffled, or, when it
        is too long, a random subset that holds one example of each class first."""
        y, n = self.context_y_, len(self.context_y_)
        if n <= max_context:
            return rng.permutation(n)
        chosen = np.empty(0, dtype=np.int64)
        if len(self.classes_) <= max_context:
            chosen = np.array(
                [rng.choice(np.flatnonzero(y == k)) for k in range(len(self.classes_))]
            )
        rest = np.setdiff1d(np.arange(n), chosen)
        fill = rng.choice(rest, size=max_context - len(chosen), replace=False)
        return rng.permutation(np.concatenate([chosen, fill]))

    def predict_proba(self, X) -> np.ndarray:
        """(n, n_classes) probabilities, columns in the order of classes_; rows sum to 1."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z = (X - self.mean_) / self.scale_
        proba = np.zeros((len(Z), len(self.classes_)))
        for order, projection, slots in self.members_:
            proba += self._member_proba(Z, order, projection, slots)
        proba /= len(self.members_)
        return proba / proba.sum(axis=1, keepdims=True)

    def _member_proba(self, Z, order, projection, slots) -> np.ndarray:
        """One member's probabilities of the classes (columns of classes_) for queries Z."""
        dev = torch.device(self.device)
        model = self.model_
        ctx_x = torch.from_numpy((self.context_X_[order] @ projection).astype(np.float32))
        ctx_y = torch.from_numpy(slots[self.context_y_[order]])
        context = make_tokens(ctx_x, ctx_y).to(dev)  # (Lc, Nx + 10)
        last_label = F.one_hot(ctx_y[-1], NUM_CLASSES).float()
        cached = self.cache_context and isinstance(model, Transformer)
        cache = context_cache(model, context) if cached else None
        out = []
        for lo in range(0, len(Z), self.batch_size):
            q_x = torch.from_numpy((Z[lo : lo + self.batch_size] @ projection).astype(np.float32))
            queries = torch.cat([q_x, last_label.expand(len(q_x), -1)], dim=1).to(dev)
            if cached:
                logits = cached_query_logits(model, cache, queries)
            else:
                logits = full_sequence_logits(model, context, queries)
            out.append(masked_slot_proba(logits, slots)[:, torch.as_tensor(slots)].cpu())
        return torch.cat(out).double().numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each query (a value of classes_)."""
        proba = self.predict_proba(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(proba, axis=1)]


# --------------------------------------------------------------------------- CSV files
def _read_csv(path, option: str):
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
        raise ValueError(f"{option} {path}: not a readable CSV table ({err})") from None
    if len(frame) == 0:
        raise ValueError(f"{option} {path}: no rows")
    return frame


def _feature_matrix(frame, columns: list[str], path, option: str) -> np.ndarray:
    import pandas as pd

    text = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise ValueError(
            f"{option} {path}: feature columns must be numeric; not: {', '.join(map(str, text))}"
        )
    x = frame[columns].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{option} {path}: column {columns[col]!r} has a missing or non-finite value "
            f"(row {row + 1} and {int(bad.sum()) - 1} more)"
        )
    return x


def predict_csv(context_path, query_path, out_path, label_column: str = "label", **kw) -> dict:
    """Classify the rows of query_path in the context of context_path's labelled rows and write
    out_path: the predicted label (column `label_column`) and one probability column per class
    (`proba_<class>`). Feature columns: every column of the context but the label, all numeric;
    the query must have them (a label column there is ignored). `kw` go to
    InContextClassifier. Everything is checked before out_path is written."""
    import pandas as pd

    context = _read_csv(context_path, "--context")
    if label_column not in context.columns:
        raise ValueError(
            f"--context {context_path}: no label column {label_column!r} (columns: "
            f"{', '.join(map(str, context.columns))}); name it with --label-column"
        )
    features = [c for c in context.columns if c != label_column]
    if not features:
        raise ValueError(f"--context {context_path}: no feature columns beside {label_column!r}")
    labels = context[label_column]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0]) + 1
        raise ValueError(
            f"--context {context_path}: label column {label_column!r} is empty in row {row}"
        )
    x_context = _feature_matrix(context, features, context_path, "--context")
    query = _read_csv(query_path, "--query")
    missing = [c for c in features if c not in query.columns]
    extra = [c for c in query.columns if c not in features and c != label_column]
    if missing or extra:
        what = [f"lacks {', '.join(map(str, missing))}"] if missing else []
        what += [f"has columns not in the context: {', '.join(map(str, extra))}"] if extra else []
        raise ValueError(f"--query {query_path}: {'; '.join(what)}")
    x_query = _feature_matrix(query, features, query_path, "--query")
    clf = InContextClassifier(**kw).fit(x_context, labels.to_numpy())
    proba = clf.predict_proba(x_query)
    out = pd.DataFrame({label_column: clf.classes_[np.argmax(proba, axis=1)]})
    for k, cls in enumerate(clf.classes_):
        out[f"proba_{cls}"] = proba[:, k]
    write_text(out_path, out.to_csv(index=False, float_format="%.6f"))
    return {"context": len(x_context), "queries": len(x_query), "classes": list(clf.classes_)}


# --------------------------------------------------------------------------- export
def export_model(model_path, out_path, dtype: str = "auto") -> dict:
    """Write a small self-describing checkpoint of a trained model (a run's model.pt): the
    weights (fp32, or fp16 when fp32 would exceed 1 MB; dtype="float32"/"float16" forces one),
    the run config, the run's fingerprint, the SHA-256 of the run config and of the source
    file, the input size, context length and class count. Written with gpicl.io.save_torch
    (integrity header, atomic), byte-identical for the same input. Returns the metadata."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    saved = load_artifact(model_path, "model", map_location="cpu")
    model, info = _build(saved, model_path)  # refuses weights that do not fit the config
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    fp32_bytes = sum(v.numel() * 4 for v in state.values() if v.is_floating_point())
    if dtype == "auto":
        dtype = "float32" if fp32_bytes <= FP32_LIMIT_BYTES else "float16"
    target = getattr(torch, dtype)
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
    config = saved["config"]
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "dtype": dtype,
        "model_type": info.kind,
        "input_size": info.input_size,
        "seq_len": info.seq_len,
        "num_classes": NUM_CLASSES,
        "num_params": int(sum(v.numel() for v in state.values())),
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "source_sha256": torch_digest(model_path),
        "fingerprint": saved.get("fingerprint"),
    }
    digest = save_torch({"model": state, "config": config, **meta}, out_path)
    return {**meta, "sha256": digest, "bytes": Path(out_path).stat().st_size}
