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
