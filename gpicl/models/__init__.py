"""Meta-learners behind one interface: tokens (B, L, Nx + 10) -> logits (B, L, 10) at every
position, each reporting its parameter count (`num_params`) and its accessible state size
(`state_size`, counted as each model's docstring says), so evaluation and figures never
special-case a method."""

from gpicl.models.lstm import LSTM, LSTMConfig
from gpicl.models.mlp import MLP, MLPConfig
from gpicl.models.online import OnlineLearner, OnlineLearnerConfig
from gpicl.models.outer_lstm import OuterProductLSTM, OuterProductLSTMConfig
from gpicl.models.transformer import Transformer, TransformerConfig
from gpicl.models.vsml import VSML, VSMLConfig

__all__ = ["MODEL_SOURCES", "SIZE_FIELD", "build_model", "model_size"]

# model type -> (model class, its config class). SGD and MAML are one online learner, with
# fresh or meta-learned initial weights.
_MODELS = {
    "transformer": (Transformer, TransformerConfig),
    "mlp": (MLP, MLPConfig),
    "lstm": (LSTM, LSTMConfig),
    "outer_lstm": (OuterProductLSTM, OuterProductLSTMConfig),
    "sgd": (OnlineLearner, OnlineLearnerConfig),
    "maml": (OnlineLearner, OnlineLearnerConfig),
    "vsml": (VSML, VSMLConfig),
}
_FIXED_FIELDS = {"sgd": {"meta_learned_init": False}, "maml": {"meta_learned_init": True}}

# The model file each model type is defined in (the workflow reruns a run when it changes).
MODEL_SOURCES = {
    "transformer": "gpicl/models/transformer.py",
    "mlp": "gpicl/models/mlp.py",
    "lstm": "gpicl/models/lstm.py",
    "outer_lstm": "gpicl/models/outer_lstm.py",
    "sgd": "gpicl/models/online.py",
    "maml": "gpicl/models/online.py",
    "vsml": "gpicl/models/vsml.py",
}

# The config field a run name's size sets, and the capacity axis of the figures.
SIZE_FIELD = {
    "transformer": "width",
    **{kind: "hidden_size" for kind in _MODELS if kind != "transformer"},
}


def build_model(model_cfg: dict, input_size: int, seq_len: int):
    """The model named by model_cfg["type"], sized for inputs of `input_size` features."""
    kind = model_cfg.get("type", "transformer")
    if kind not in _MODELS:
        raise ValueError(f"unknown model type {kind!r} (known: {', '.join(_MODELS)})")
    model_cls, config_cls = _MODELS[kind]
    fields = {k: v for k, v in model_cfg.items() if k != "type"}
    fields.update(_FIXED_FIELDS.get(kind, {}))
    return model_cls(config_cls(input_size=input_size, seq_len=seq_len, **fields))


def model_size(model_cfg: dict) -> int:
    """The capacity axis of the figures: width of a Transformer, hidden size of the others."""
    return model_cfg[SIZE_FIELD[model_cfg.get("type", "transformer")]]
