"""``inkstream export CHECKPOINT``: a self-describing ONNX model plus an int8 copy.

The exported graph takes ``x (batch, time, features)``, ``h``, ``c`` and returns ``log_probs``,
``h_out``, ``c_out`` (batch and time dynamic), so the runtime can run any number of new frames
per call with the state carried. The architecture is read from the checkpoint; nothing needs flags.
After writing, the file is checked the way the device runs it: torch and onnxruntime side by side
over several chunks with the state carried.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from runtime.model import FORMAT_VERSION, INPUT_NAMES, MODEL_TYPE, OUTPUT_NAMES, OnnxModel
from training.train import load_checkpoint, model_from_checkpoint


class StreamingWrapper(nn.Module):
    """The model with its state as explicit inputs and outputs (what the ONNX graph computes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, h, c):
        return self.model(x, h, c)


def metadata_for(ckpt: dict, val_cer: Optional[float] = None) -> dict:
    mc = ckpt["model_config"]
    cer = ckpt.get("best_cer") if val_cer is None else val_cer
    return {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "num_layers": str(mc["num_layers"]),
        "hidden_size": str(mc["hidden_size"]),
        "input_size": str(mc["input_size"]),
        "num_features": str(mc["num_features"]),
        "num_classes": str(mc["num_classes"]),
        "feature_config": ckpt["feature_config"],
        "alphabet": json.dumps(ckpt["alphabet"]),
        "blank_id": "0",
        "training_data": ckpt.get("data_summary", ""),
        "training_steps": str(ckpt.get("step", "")),
        "training_frames": str(ckpt.get("frames_seen", "")),
        "val_cer": "" if cer is None or not np.isfinite(cer) else f"{cer:.4f}",
        "exported": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
    }


def _set_metadata(path: Path, meta: dict) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.save(m, str(path))


def export_checkpoint(checkpoint, out_dir, int8: bool = True, opset: int = 17) -> dict:
    """Write ``model.onnx`` (and ``model.int8.onnx``) into ``out_dir``; returns paths and checks."""
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "model.onnx"
    wrapper = StreamingWrapper(model).eval()
    h, c = model.zero_state(1)
    x = torch.zeros(1, 5, model.config.num_features)
    torch.onnx.export(
        wrapper, (x, h, c), str(fp32), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
        dynamic_axes={"x": {0: "batch", 1: "time"}, "h": {1: "batch"}, "c": {1: "batch"},
                      "log_probs": {0: "batch", 1: "time"}, "h_out": {1: "batch"}, "c_out": {1: "batch"}},
        opset_version=opset, dynamo=False, do_constant_folding=True)
    meta = metadata_for(ckpt)
    _set_metadata(fp32, meta)
    result = {"onnx": str(fp32), "parity_max_abs_diff": parity_check(model, fp32)}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = out_dir / "model.int8.onnx"
        quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8)
        _set_metadata(q, {**meta, "quantization": "dynamic int8 weights (onnxruntime quantize_dynamic)"})
        result["int8"] = str(q)
        result["int8_parity_max_abs_diff"] = parity_check(model, q)
    return result


@torch.no_grad()
def parity_check(model: nn.Module, onnx_path, chunks=(1, 7, 16, 3, 40), batch: int = 2, seed: int = 0) -> float:
    """Max |torch - onnxruntime| over log-probs and states, chunk by chunk with the state carried."""
    rng = np.random.default_rng(seed)
    om = OnnxModel(onnx_path)
    h_t, c_t = model.zero_state(batch)
    h_o, c_o = om.zero_state(batch)
    worst = 0.0
    for n in chunks:
        x = rng.standard_normal((batch, n, model.config.num_features)).astype(np.float32)
        lp_t, h_t, c_t = model(torch.from_numpy(x), h_t, c_t)
        lp_o, h_o, c_o = om.step(x, h_o, c_o)
        for a, b in ((lp_t, lp_o), (h_t, h_o), (c_t, c_o)):
            worst = max(worst, float(np.abs(a.numpy() - b).max()))
    return worst


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by inkstream train (best.pt)")
    parser.add_argument("--out", default=None, help="output folder (default: beside the checkpoint)")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 copy")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--install", action="store_true",
                        help="also copy the files into the package as the shipped default model")


def run(args) -> int:
    out = args.out or str(Path(args.checkpoint).parent)
    if args.install and not args.int8:  # the runtime ships both: never leave a stale int8 copy
        print("inkstream export: --install needs the int8 copy (drop --no-int8)", file=sys.stderr)
        return 2
    res = export_checkpoint(args.checkpoint, out, int8=args.int8, opset=args.opset)
    for k, v in res.items():
        print(f"{k}: {v}")
    if res["parity_max_abs_diff"] > 1e-4:
        print("parity check FAILED: torch and onnxruntime disagree by more than 1e-4", file=sys.stderr)
        return 1
    if args.install:
        from runtime.model import default_model_path

        shutil.copyfile(res["onnx"], default_model_path(int8=False))
        shutil.copyfile(res["int8"], default_model_path(int8=True))
        print(f"installed as {default_model_path(int8=False)} and {default_model_path(int8=True)} (the default)")
    return 0
