"""The online (forward-only) LSTM-CTC model."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from runtime.features import NUM_FEATURES


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored in every checkpoint so nothing downstream needs flags."""

    num_features: int = NUM_FEATURES
    input_size: int = 64  # width of the per-frame input projection (0: feed features to the LSTM directly)
    hidden_size: int = 192
    num_layers: int = 3
    dropout: float = 0.15
    num_classes: int = 96  # alphabet size incl. blank

    def __post_init__(self):
        for name in ("num_features", "hidden_size", "num_layers", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.input_size < 0:
            raise ValueError(f"ModelConfig.input_size must be >= 0, got {self.input_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class OnlineLSTMCTC(nn.Module):
    """frames ``(B, T, F)`` -> CTC log-probabilities ``(B, T, C)``, with the LSTM state in and out.

    Strictly causal: output at frame t depends on frames <= t only, so it can run one frame at a time.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.input_size:
            self.input_proj = nn.Sequential(nn.Linear(config.num_features, config.input_size), nn.Tanh())
            lstm_in = config.input_size
        else:
            self.input_proj = nn.Identity()
            lstm_in = config.num_features
        self.lstm = nn.LSTM(lstm_in, config.hidden_size, num_layers=config.num_layers,
                            dropout=config.dropout if config.num_layers > 1 else 0.0, batch_first=True)
        self.output_dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, config.num_classes)
        self._init_weights()

    def _init_weights(self):
        for name, p in self.lstm.named_parameters():
            if "weight_hh" in name:
                for i in range(4):  # orthogonal recurrent weights per gate: stable early training
                    nn.init.orthogonal_(p.data[i * self.config.hidden_size:(i + 1) * self.config.hidden_size])
            elif "bias_ih" in name:
                p.data.zero_()
                h = self.config.hidden_size
                p.data[h:2 * h] = 1.0  # forget-gate bias 1: remember by default
            elif "bias_hh" in name:
                p.data.zero_()

    def zero_state(self, batch: int, device=None):
        c = self.config
        z = torch.zeros(c.num_layers, batch, c.hidden_size, device=device)
        return z, z.clone()

    def forward(self, x, h=None, c=None):
        if h is None or c is None:
            h, c = self.zero_state(x.shape[0], x.device)
        y, (h_out, c_out) = self.lstm(self.input_proj(x), (h, c))
        logits = self.output(self.output_dropout(y))
        return torch.log_softmax(logits.float(), dim=-1), h_out, c_out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def widen_state_dict(model: OnlineLSTMCTC, small_state: dict, small_config: ModelConfig) -> dict:
    """A state dict for ``model`` (wider LSTM) that computes exactly what ``small_state`` computes.

    Net2Net-style growth, so a trained model can continue training with more capacity instead of
    starting over: every weight of the small model is copied into the matching slice of the wide
    one (per LSTM gate); the new units keep ``model``'s fresh initialisation for their *incoming*
    weights from the input and the old units, and every weight *leaving* a new unit (recurrent, new
    units included, next layer, output) is zero. At the
    start the new units therefore change nothing, and gradients reach them through those zero
    weights. Only ``hidden_size`` may grow; everything else must match.
    """
    big = model.config
    same = lambda mc: {k: v for k, v in asdict(mc).items() if k not in ("hidden_size", "dropout")}
    if same(big) != same(small_config) or big.hidden_size < small_config.hidden_size:
        raise ValueError(f"cannot widen {small_config} into {big}: only hidden_size may grow")
    h0, h1 = small_config.hidden_size, big.hidden_size
    out = {k: v.detach().clone() for k, v in model.state_dict().items()}
    unknown = sorted(set(small_state) - set(out))
    if unknown:
        raise ValueError(f"cannot widen: the checkpoint has parameters this model lacks: {unknown}")
    for name, small in small_state.items():
        wide = out[name]
        if name.startswith("lstm."):
            # rows: 4 gates of h units each; columns: inputs (the previous layer's h beyond l0)
            gates_small = small.reshape(4, h0, *small.shape[1:])
            gates_wide = wide.reshape(4, h1, *wide.shape[1:])
            if small.dim() == 1:
                gates_wide[:, :h0] = gates_small
            else:
                hidden_input = "weight_hh" in name or not name.endswith("_l0")
                if hidden_input:
                    gates_wide[:, :, h0:] = 0.0  # nothing reads the new units yet
                gates_wide[:, :h0, :small.shape[1]] = gates_small
        elif name == "output.weight":
            wide.zero_()
            wide[:, :h0] = small
        else:
            wide.copy_(small)
    return out
