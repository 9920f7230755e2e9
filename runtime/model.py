"""Loading an inkstream ONNX model: metadata checks, session settings, zero states.

The ONNX file is the contract between ``export`` and the runtime: inputs ``x (batch, time,
features)``, ``h``, ``c`` (``(layers, batch, hidden)``), outputs ``log_probs (batch, time,
classes)``, ``h_out``, ``c_out``; and string metadata (``METADATA_KEYS``) that describe the model
and its features. A file that lacks a key or has another format version is refused with a message
naming the key; so is one whose ``num_features`` is not this runtime's, or whose graph dims (where
static) contradict the metadata.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from runtime.alphabet import Alphabet
from runtime.features import NUM_FEATURES, FeatureConfig

MODEL_TYPE = "inkstream-online-lstm-ctc"
FORMAT_VERSION = "1"
METADATA_KEYS = ("model_type", "format_version", "num_layers", "hidden_size", "num_features", "num_classes",
                 "feature_config", "alphabet", "blank_id")
INPUT_NAMES = ("x", "h", "c")
OUTPUT_NAMES = ("log_probs", "h_out", "c_out")


class ModelFileError(ValueError):
    """The file is not an inkstream model this runtime understands."""


def default_model_path(int8: bool = True) -> Path:
    """The model shipped inside the package (``runtime/models/``).

    The default is the int8 copy: a quarter of the bytes, about twice as fast per pen sample on a
    small CPU, and 0.01 point more CER on IAM-OnDB ``test`` greedy (docs/model_card.md). ``int8=False`` gives the
    float32 original, the reference for export parity."""
    name = "model.int8.onnx" if int8 else "model.onnx"
    return Path(str(resources.files("runtime.models").joinpath(name)))


def _has_dynamic_quantization(path: str) -> bool:
    """True when the ONNX file uses onnxruntime's dynamically quantizing ops (their op-type names
    are stored as plain strings in the protobuf, so no ``onnx`` package is needed to see them)."""
    with open(path, "rb") as f:
        return b"DynamicQuantize" in f.read()


def session_options(threads: int = 1, spinning: bool = False):
    """onnxruntime options for streaming: one thread, sequential, no busy-waiting by default.

    Spinning makes an idle recognizer burn a core between pen samples; on a small board that is
    the whole CPU budget, so it is off unless asked for.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return so


@dataclass(frozen=True)
class ModelInfo:
    """What the ONNX metadata says about the model."""

    num_layers: int
    hidden_size: int
    num_features: int
    num_classes: int
    feature_config: FeatureConfig
    alphabet: Alphabet
    metadata: dict

    @classmethod
    def from_metadata(cls, meta: dict, path: str = "<model>") -> "ModelInfo":
        missing = [k for k in METADATA_KEYS if k not in meta]
        if missing:
            if "model_type" in missing:
                raise ModelFileError(f"{path}: not an inkstream model (metadata key 'model_type' is missing)")
            raise ModelFileError(f"{path}: metadata key {missing[0]!r} is missing")
        if meta["model_type"] != MODEL_TYPE:
            raise ModelFileError(f"{path}: model_type {meta['model_type']!r} is not {MODEL_TYPE!r}")
        if meta["format_version"] != FORMAT_VERSION:
            raise ModelFileError(f"{path}: format_version {meta['format_version']!r}; this runtime reads "
                                 f"{FORMAT_VERSION!r}")
        ints = {}
        for k in ("num_layers", "hidden_size", "num_features", "num_classes", "blank_id"):
            try:
                ints[k] = int(meta[k])
            except ValueError:
                raise ModelFileError(f"{path}: metadata key {k!r} is not an integer: {meta[k]!r}") from None
            if ints[k] < (0 if k == "blank_id" else 1):
                raise ModelFileError(f"{path}: metadata key {k!r} must be {'>= 0' if k == 'blank_id' else '> 0'}, "
                                     f"got {ints[k]}")
        if ints["num_features"] != NUM_FEATURES:
            raise ModelFileError(f"{path}: metadata key 'num_features' is {ints['num_features']}; this runtime's "
                                 f"features have {NUM_FEATURES}")
        if ints["blank_id"] != 0:
            raise ModelFileError(f"{path}: metadata key 'blank_id' is {ints['blank_id']}; this runtime needs the "
                                 f"CTC blank at id 0")
        try:
            fcfg = FeatureConfig.from_json(meta["feature_config"])
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: metadata key 'feature_config' is unusable: {exc}") from None
        try:
            chars = json.loads(meta["alphabet"])
            if not isinstance(chars, str):
                raise ValueError(f"expected a JSON string of characters, got {type(chars).__name__}")
            alphabet = Alphabet(chars, blank=ints["blank_id"])
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ModelFileError(f"{path}: metadata key 'alphabet' is unusable: {exc}") from None
        if alphabet.size != ints["num_classes"]:
            raise ModelFileError(f"{path}: alphabet has {alphabet.size} symbols with blank, num_classes says "
                                 f"{ints['num_classes']}")
        return cls(ints["num_layers"], ints["hidden_size"], ints["num_features"], ints["num_classes"], fcfg,
                   alphabet, dict(meta))


class OnnxModel:
    """An onnxruntime session over an inkstream model, plus what its metadata says.

    ``step(x, h, c)`` runs frames ``(B, T, F)`` from states ``(L, B, H)`` and returns
    ``(log_probs, h_out, c_out)`` as numpy arrays. Holds no per-input state.
    """

    def __init__(self, path: Optional[str | os.PathLike] = None, threads: int = 1, spinning: bool = False):
        import onnxruntime as ort

        self.path = str(path or default_model_path())
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"model file {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(self.path, session_options(threads, spinning),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_metadata(meta, self.path)
        # onnxruntime's dynamic quantization (DynamicQuantizeLSTM, DynamicQuantizeMatMul) picks
        # each activation scale from the values in the call, so a frame's output would depend on
        # which frames share its call: `step` then runs one frame per call. The metadata says so
        # for our exports; the op names in the file catch a model quantized by other means.
        self.quantizes_per_call = "dynamic" in meta.get("quantization", "") or _has_dynamic_quantization(self.path)
        names_in = tuple(i.name for i in self.session.get_inputs())
        names_out = tuple(o.name for o in self.session.get_outputs())
        if names_in != INPUT_NAMES or names_out != OUTPUT_NAMES:
            raise ModelFileError(f"{self.path}: inputs {names_in} / outputs {names_out}, expected "
                                 f"{INPUT_NAMES} / {OUTPUT_NAMES}")
        self._check_shapes()

    def _check_shapes(self) -> None:
        """The graph's declared input/output dims (where static) must agree with the metadata, so a
        mismatching file fails at load time, not at its first step."""
        state = ("num_layers", None, "hidden_size")  # the metadata key each dim must equal (None: dynamic)
        keys = {"x": (None, None, "num_features"), "h": state, "c": state,
                "log_probs": (None, None, "num_classes"), "h_out": state, "c_out": state}
        for arg in list(self.session.get_inputs()) + list(self.session.get_outputs()):
            shape = arg.shape
            if shape is None:
                continue
            if len(shape) != 3:
                raise ModelFileError(f"{self.path}: graph {arg.name!r} has shape {shape}, expected 3 dims")
            for dim, key in zip(shape, keys[arg.name]):
                if key is not None and isinstance(dim, int) and dim != getattr(self.info, key):
                    raise ModelFileError(f"{self.path}: graph {arg.name!r} has shape {shape}, but metadata key "
                                         f"{key!r} says {getattr(self.info, key)}")

    @property
    def alphabet(self) -> Alphabet:
        return self.info.alphabet

    @property
    def feature_config(self) -> FeatureConfig:
        return self.info.feature_config

    def zero_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.info.num_layers, batch, self.info.hidden_size)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def run(self, x: np.ndarray, h: np.ndarray, c: np.ndarray):
        """One onnxruntime call over frames ``(B, T, F)``: ``(log_probs, h_out, c_out)``.

        For a model that quantizes per call (:attr:`quantizes_per_call`) the result for a frame
        depends on the other frames and rows in the call; :meth:`step` is the stable entry point."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.info.num_features:
            raise ValueError(f"frames must be (batch, time, {self.info.num_features}), got {x.shape}")
        return self.session.run(None, {"x": x, "h": h, "c": c})

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray):
        """Advance frames ``(B, T, F)`` from states ``h, c``: ``(log_probs, h_out, c_out)``.

        However the frames of one stream are split into calls, its outputs are the same: bit
        for bit for a per-call-quantized model, which takes one frame per call to get there, and
        up to float rounding (about 1e-6) for a float model. That is what makes streaming equal
        offline. With several batch rows a per-call-quantized model shares its activation scales
        across them, so a batched row can differ from the same row run alone (measured: 7 of 48
        IAM-OnDB lines decoded 16 to a batch gave other text than decoded alone); a float
        model's rows are independent.
        """
        if not self.quantizes_per_call or x.shape[1] <= 1:
            return self.run(x, h, c)
        out = []
        for t in range(x.shape[1]):
            log_probs, h, c = self.run(x[:, t:t + 1], h, c)
            out.append(log_probs)
        return np.concatenate(out, axis=1), h, c
