"""Meta-learners behind one interface: tokens (B, L, Nx + 10) -> logits (B, L, 10), each reporting
its parameter count and its accessible state size."""

from gpicl.models.transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig", "build_model"]


def build_model(model_cfg: dict, input_size: int, seq_len: int):
    """The model named by model_cfg["type"], sized for inputs of `input_size` features."""
    kind = model_cfg.get("type", "transformer")
    if kind == "transformer":
        fields = {k: v for k, v in model_cfg.items() if k != "type"}
        return Transformer(TransformerConfig(input_size=input_size, seq_len=seq_len, **fields))
    raise ValueError(f"unknown model type {kind!r}")
