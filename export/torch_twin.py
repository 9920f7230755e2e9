"""The torch twin of an exported model: the training model loaded with the ONNX file's own weights.

``inkstream bench`` compares one onnxruntime step with one torch eager step of the same weights
(``ratio_vs_torch``). The weights are read by :func:`training.onnx_import.checkpoint_from_onnx`, the
one reader of the exporter's layout (gate order, split biases, transposed MatMuls). An int8 file's
weights have lost precision, so its twin runs the float original beside it (``model.onnx`` for
``model.int8.onnx``), which is what a user of the training checkpoint would run.

Needs torch and onnx (the ``train`` extra); the bench imports this module only when both are
there, and times :func:`twin_step` itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from training.onnx_import import checkpoint_from_onnx
from training.train import model_from_checkpoint

__all__ = ["float_original", "torch_twin", "twin_step"]


def float_original(model_path) -> Path:
    """The float32 file an int8 file was quantized from (the exporter writes ``model.int8.onnx``
    beside ``model.onnx``); a float file is its own original."""
    path = Path(model_path)
    return path.with_name(path.name.replace(".int8", "")) if ".int8" in path.name else path


def torch_twin(model_path):
    """``(model, float_path)``: the training model (eval mode) holding the weights of
    ``model_path``'s float original. Raises ``ValueError`` when the file is not an inkstream export,
    ``FileNotFoundError`` when an int8 file has no float original beside it."""
    path = float_original(model_path)
    if not path.exists():
        raise FileNotFoundError(f"{path.name} (the float original of {Path(model_path).name}) is not beside it")
    return model_from_checkpoint(checkpoint_from_onnx(path)), path


def twin_step(model_path) -> tuple[Callable[[], None], float, str]:
    """``(step, parity, note)``: ``step()`` runs the twin one frame in torch eager mode (one thread,
    state carried, log-probabilities made numpy as the decoder needs them); ``parity`` is the
    largest difference of the twin's log-probabilities from onnxruntime's on the float graph over
    8 frames; ``note`` says what ran. Raises as :func:`torch_twin` does."""
    import onnxruntime as ort

    from runtime.model import session_options

    model, path = torch_twin(model_path)
    note = f"torch {torch.__version__} float32, weights from {path.name}"
    if path != Path(model_path):
        note += " (this graph's float original)"
    torch.set_num_threads(1)
    config = model.config
    sess = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 8, config.num_features)).astype(np.float32)
    z = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
    reference = sess.run(None, {"x": x, "h": z, "c": z})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x), torch.from_numpy(z), torch.from_numpy(z))[0].numpy()
    parity = float(np.abs(reference - got).max())

    xs = torch.zeros(1, 1, config.num_features)
    state = list(model.zero_state(1))

    def step() -> None:
        with torch.no_grad():
            log_probs, state[0], state[1] = model(xs, state[0], state[1])
            log_probs.numpy()

    return step, parity, note
