"""Meta-learners behind one interface: tokens (B, L, Nx + 10) -> logits (B, L, 10), each reporting
its parameter count and its accessible state size."""

from gpicl.models.mlp import MLP, MLPConfig
from gpicl.models.transformer import Transformer, TransformerConfig

__all__ = ["MLP", "MLPConfig", "Transformer", "TransformerConfig", "build_model", "model_size"]

# The model file each model type is defined in (the workflow reruns a run when it changes).
MODEL_SOURCES = {"transformer": "gpicl/models/transformer.py", "mlp": "gpicl/models/mlp.py"}


def build_model(model_cfg: dict, input_size: int, seq_len: int):
    """The model named by model_cfg["type"], sized for inputs of `input_size` features."""
    kind = model_cfg.get("type", "transformer")
    fields = {k: v for k, v in model_cfg.items() if k != "type"}
    if kind == "transformer":
        return Transformer(TransformerConfig(input_size=input_size, seq_len=seq_len, **fields))
    if kind == "mlp":
        return MLP(MLPConfig(input_size=input_size, seq_len=seq_len, **fields))
    raise ValueError(f"unknown model type {kind!r}")


def model_size(model_cfg: dict) -> int:
    """The capacity axis of Figure 2: width of a Transformer, hidden size of an MLP."""
    kind = model_cfg.get("type", "transformer")
    return model_cfg["hidden_size"] if kind == "mlp" else model_cfg["width"]
