"""A training checkpoint from an exported ONNX model, so a shipped model can be trained further.

``inkstream export`` writes the weights as graph initializers: the input projection and the
output layer as MatMul + Add, each LSTM layer as an ONNX ``LSTM`` node. This module reads them
back into an :class:`~training.model.OnlineLSTMCTC` state dict, undoing the exporter's layout:

- ONNX orders the LSTM gates ``i, o, f, c``; torch orders them ``i, f, g, o`` (``g`` is ``c``);
- ONNX's ``B`` is ``[Wb; Rb]`` in one row, torch keeps ``bias_ih`` and ``bias_hh`` apart;
- a MatMul weight is the transpose of a ``Linear`` weight.

Only the float32 file can be read: the int8 copy has lost precision that training cannot get back.
The checkpoint has no optimizer state, so it serves ``--init``, not ``--resume``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _gate_order_onnx_to_torch(w: np.ndarray, hidden: int) -> np.ndarray:
    i, o, f, c = (w[k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, c, o], axis=0)


def checkpoint_from_onnx(path) -> dict:
    """A checkpoint dict (as ``training.train.load_checkpoint`` returns) holding the ONNX file's weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    from training.model import ModelConfig, OnlineLSTMCTC
    from training.train import CHECKPOINT_VERSION

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "quantization" in meta or any(n.op_type.startswith("DynamicQuantize") for n in model.graph.node):
        raise ValueError(f"{path}: an int8 model cannot be trained further; use the float32 file (model.onnx)")
    try:
        config = ModelConfig(num_features=int(meta["num_features"]), input_size=int(meta["input_size"]),
                             hidden_size=int(meta["hidden_size"]), num_layers=int(meta["num_layers"]),
                             num_classes=int(meta["num_classes"]), dropout=0.0)
    except KeyError as missing:
        raise ValueError(f"{path}: not an inkstream model (metadata {missing} missing)") from None
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    # Identity nodes let the exporter share one tensor between several names
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]

    h = config.hidden_size
    lstm_nodes = [n for n in model.graph.node if n.op_type == "LSTM"]
    matmul_weights = [weights[n.input[1]] for n in model.graph.node
                      if n.op_type == "MatMul" and n.input[1] in weights]
    if len(lstm_nodes) != config.num_layers or len(matmul_weights) != (2 if config.input_size else 1):
        raise ValueError(f"{path}: the graph does not match its metadata ({len(lstm_nodes)} LSTM nodes, "
                         f"{len(matmul_weights)} weight MatMuls)")
    state = {}
    for layer, node in enumerate(lstm_nodes):
        w, r, b = (weights[name][0] for name in node.input[1:4])
        state[f"lstm.weight_ih_l{layer}"] = _gate_order_onnx_to_torch(w, h)
        state[f"lstm.weight_hh_l{layer}"] = _gate_order_onnx_to_torch(r, h)
        state[f"lstm.bias_ih_l{layer}"] = _gate_order_onnx_to_torch(b[:4 * h], h)
        state[f"lstm.bias_hh_l{layer}"] = _gate_order_onnx_to_torch(b[4 * h:], h)
    if config.input_size:
        state["input_proj.0.weight"] = matmul_weights[0].T
        state["input_proj.0.bias"] = weights["model.input_proj.0.bias"]
    state["output.weight"] = matmul_weights[-1].T
    state["output.bias"] = weights["model.output.bias"]

    reference = OnlineLSTMCTC(config).state_dict()
    if set(state) != set(reference):
        raise ValueError(f"{path}: weights {sorted(set(reference) ^ set(state))} do not match the model")
    tensors = {}
    for name, value in state.items():
        if tuple(value.shape) != tuple(reference[name].shape):
            raise ValueError(f"{path}: {name} has shape {value.shape}, the model expects {tuple(reference[name].shape)}")
        tensors[name] = torch.from_numpy(np.array(value, dtype=np.float32))
    steps = meta.get("training_steps", "")
    return {
        "version": CHECKPOINT_VERSION,
        "model_config": json.loads(config.to_json()),
        "feature_config": meta["feature_config"],
        "alphabet": json.loads(meta["alphabet"]),
        "model": tensors,
        "step": int(steps) if steps.isdigit() else 0,
        "best_cer": float(meta["val_cer"]) if meta.get("val_cer") else float("nan"),
        "data_summary": meta.get("training_data", ""),
        "source": str(Path(path)),
    }
