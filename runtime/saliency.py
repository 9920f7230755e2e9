"""Which ink a decision rests on: the gradient of one output with respect to the input frames.

This drives the fourth row of the Graves-style demonstration in the live page: for the character
the network is most sure of right now, how much does each pen sample matter to that output? The
answer is ``d log_prob[t, k] / d frames``, reduced to one magnitude per frame and spread back
onto the pen samples that made each frame.

Design
------
The runtime has numpy and onnxruntime only, and onnxruntime gives no gradients. So the model is
re-implemented here in float64 numpy from the weights of the **float32** ONNX file, with an
explicit forward pass that keeps what the backward pass needs, and an exact backward pass
(backpropagation through time, through every layer and both the ``c`` and ``h`` paths).

*Reading the file without the ``onnx`` package.* :func:`read_onnx` is a minimal protobuf
wire-format reader for the few message fields needed: ``ModelProto.graph`` and
``metadata_props``; ``GraphProto.node``, ``initializer`` and ``input``; ``NodeProto`` inputs,
outputs, op type and attributes; ``TensorProto`` dims, data type, ``float_data``/``raw_data``.
Every length is checked against the bytes that remain, so a truncated or garbage file raises
:class:`~runtime.model.ModelFileError` (a ``ValueError``) naming the file instead of
``IndexError`` or a hang. Only float32 tensors are decoded; the int8 copy (dynamically quantized
ops, ``quantization`` metadata) is refused and the message points at ``model.onnx``.

*The graph.* ``inkstream export`` writes (see ``export/onnx_export.py``)::

    x -> MatMul(W_in) -> Add(b_in) -> Tanh -> Transpose
      -> LSTM -> Squeeze -> LSTM -> Squeeze -> ... -> Transpose
      -> MatMul(W_out) -> Add(b_out) -> Cast(float) -> LogSoftmax -> log_probs

with ``h``/``c`` sliced per layer into the LSTM nodes. Rather than interpret arbitrary ONNX,
:func:`load_weights` walks this one path from the input ``x`` to ``log_probs`` and accepts only
these ops (shape-only ops -- Transpose, Squeeze, Unsqueeze, Cast to float, Identity -- pass
through); anything else is refused, so a different architecture cannot silently produce wrong
gradients. ``Identity`` nodes that alias an initializer (the exporter's way of sharing a tensor)
are resolved. LSTM nodes must use the ONNX defaults (forward direction, sigmoid/tanh/tanh, no
clip, no peepholes, no coupled input-forget gate). ONNX orders the gates ``i, o, f, c`` and its
``B`` is ``[Wb; Rb]``.

*Truncation.* :meth:`InputGradientModel.input_gradient` backpropagates over at most ``window``
frames ending at the chosen frame (default :data:`DEFAULT_WINDOW` = 400, about 1,500-2,000 pen
samples of ordinary writing, i.e. a whole line in practice). The state entering the window comes
from the forward pass over the earlier frames and is held constant, so frames before the window
get exactly zero gradient, and inside the window the result is the exact gradient (the earlier
frames do not depend on the later ones). Frames after the chosen one get zero as well, exactly:
the model is causal.

*Cost.* Forward and backward are a Python loop over frames with one ``(H, 4H)`` matrix-vector
product per layer and frame. Those float64 products dominate: a line of 1,000 pen samples (238
frames) took about 0.35 s for :func:`ink_saliency` on a busy 2-core machine, roughly half forward
and half backward (``python -m runtime.saliency`` measures it). Call it when a stroke ends, not
per pen sample.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from runtime.features import FeatureConfig, extract
from runtime.model import INPUT_NAMES, OUTPUT_NAMES, ModelFileError, ModelInfo, default_model_path

__all__ = ["DEFAULT_WINDOW", "RECENT_FRAMES", "OnnxFile", "read_onnx", "LstmCtcWeights", "load_weights",
           "ForwardPass", "InputGradientModel", "InkSaliency", "ink_saliency"]

DEFAULT_WINDOW = 400  # frames of BPTT (see the module docstring: a whole line in practice)
RECENT_FRAMES = 10  # "the last few frames" searched for the most active character (~1.5 characters)

# TensorProto.DataType numbers, for messages
_DATA_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
               8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}
_FLOAT = 1


# ---- protobuf wire format ------------------------------------------------------------------------

class _Malformed(Exception):
    """Raised inside the reader; :func:`read_onnx` turns it into a ModelFileError naming the file."""


def _varint(buf: memoryview, pos: int, where: str) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it. A varint has at most 10 bytes."""
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise _Malformed(f"{where}: truncated (a number runs past the end)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
    raise _Malformed(f"{where}: a number is longer than 10 bytes")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: memoryview, where: str):
    """``(field_number, wire_type, value)`` for each field of one message.

    ``value`` is an int for varints and a memoryview for the other wire types. Every step moves
    forward by at least one byte and every length is checked against what remains, so this ends
    on any input. Groups (wire types 3 and 4) are deprecated and absent from ONNX: refused.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, where)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed(f"{where}: field number 0 (not protobuf)")
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 2:
            n, pos = _varint(buf, pos, where)
            if n > end - pos:
                raise _Malformed(f"{where}: field {number} claims {n} bytes but only {end - pos} remain (truncated?)")
            value, pos = buf[pos:pos + n], pos + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            if n > end - pos:
                raise _Malformed(f"{where}: field {number} runs past the end (truncated?)")
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise _Malformed(f"{where}: wire type {wire} in field {number} (not ONNX protobuf)")
        yield number, wire, value


def _expect(number: int, wire: int, wanted: int, where: str) -> None:
    if wire != wanted:
        raise _Malformed(f"{where}: field {number} has wire type {wire}, expected {wanted}")


def _text(value: memoryview, where: str) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{where}: a string is not UTF-8") from None


def _packed_varints(value: memoryview, where: str) -> list[int]:
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos, where)
        out.append(v)
    return out


# ---- ONNX messages (just the fields this module needs) --------------------------------------------

@dataclass
class _Tensor:
    """A TensorProto, undecoded: its data stays a view into the file until asked for."""

    name: str = ""
    dims: list = field(default_factory=list)
    data_type: int = 0
    raw_data: Optional[memoryview] = None
    float_chunks: list = field(default_factory=list)  # float_data, packed or one value per field
    external: bool = False


@dataclass
class _Node:
    op_type: str = ""
    name: str = ""
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)  # name -> int, float, str, or list of those


def _parse_tensor(buf: memoryview, where: str) -> _Tensor:
    t = _Tensor()
    for number, wire, value in _fields(buf, where):
        if number == 1:  # dims: repeated int64, packed or not
            if wire == 2:
                t.dims.extend(_signed64(v) for v in _packed_varints(value, where))
            else:
                _expect(number, wire, 0, where)
                t.dims.append(_signed64(value))
        elif number == 2:
            _expect(number, wire, 0, where)
            t.data_type = value
        elif number == 4:  # float_data: repeated float, packed or not
            if wire not in (2, 5):
                raise _Malformed(f"{where}: float_data has wire type {wire}")
            t.float_chunks.append(value)
        elif number == 8:
            _expect(number, wire, 2, where)
            t.name = _text(value, where)
        elif number == 9:
            _expect(number, wire, 2, where)
            t.raw_data = value
        elif number == 13:  # external_data entries
            t.external = True
        elif number == 14:  # data_location: 1 = EXTERNAL
            _expect(number, wire, 0, where)
            t.external = t.external or value == 1
    return t


def _parse_attribute(buf: memoryview, where: str) -> tuple[str, object]:
    """``(name, value)`` of an AttributeProto; tensors and graphs are not decoded (value None)."""
    name, value, lists = "", None, {7: [], 8: [], 9: []}
    for number, wire, v in _fields(buf, where):
        if number == 1:
            _expect(number, wire, 2, where)
            name = _text(v, where)
        elif number == 2:  # f: float
            _expect(number, wire, 5, where)
            value = float(np.frombuffer(v, "<f4")[0])
        elif number == 3:  # i: int64
            _expect(number, wire, 0, where)
            value = _signed64(v)
        elif number == 4:  # s: bytes
            _expect(number, wire, 2, where)
            value = _text(v, where)
        elif number == 7:  # floats
            if wire == 2 and len(v) % 4 == 0:
                lists[7].extend(np.frombuffer(v, "<f4").tolist())
            else:
                _expect(number, wire, 5, where)
                lists[7].append(float(np.frombuffer(v, "<f4")[0]))
        elif number == 8:  # ints
            if wire == 2:
                lists[8].extend(_signed64(x) for x in _packed_varints(v, where))
            else:
                _expect(number, wire, 0, where)
                lists[8].append(_signed64(v))
        elif number == 9:  # strings
            _expect(number, wire, 2, where)
            lists[9].append(_text(v, where))
    for number in (7, 8, 9):
        if lists[number]:
            value = lists[number]
    return name, value


def _parse_node(buf: memoryview, where: str) -> _Node:
    n = _Node()
    for number, wire, value in _fields(buf, where):
        if number in (1, 2, 3, 4):
            _expect(number, wire, 2, where)
            s = _text(value, where)
            if number == 1:
                n.inputs.append(s)
            elif number == 2:
                n.outputs.append(s)
            elif number == 3:
                n.name = s
            else:
                n.op_type = s
        elif number == 5:
            _expect(number, wire, 2, where)
            key, v = _parse_attribute(value, f"{where}, attribute")
            n.attributes[key] = v
    return n


@dataclass
class OnnxFile:
    """What :func:`read_onnx` found: metadata, nodes in file order, initializers by name, inputs."""

    path: str
    metadata: dict
    nodes: list
    initializers: dict
    graph_inputs: list

    def array(self, name: str) -> np.ndarray:
        """Initializer ``name`` as a float64 array; raises ModelFileError unless it is float32 data."""
        t = self.initializers.get(name)
        if t is None:
            raise ModelFileError(f"{self.path}: the graph has no initializer {name!r}")
        if t.external:
            raise ModelFileError(f"{self.path}: tensor {name!r} keeps its data in an external file; not supported")
        if t.data_type != _FLOAT:
            kind = _DATA_TYPES.get(t.data_type, f"type {t.data_type}")
            raise ModelFileError(f"{self.path}: tensor {name!r} is {kind}; only float32 weights are supported "
                                 f"(use the float32 model, {default_model_path(int8=False).name})")
        if any(d < 0 for d in t.dims):
            raise ModelFileError(f"{self.path}: tensor {name!r} has a negative dimension {t.dims}")
        count = int(np.prod(t.dims, dtype=object)) if t.dims else 1
        if t.raw_data is not None and len(t.raw_data):
            if len(t.raw_data) != 4 * count:
                raise ModelFileError(f"{self.path}: tensor {name!r} has {len(t.raw_data)} bytes of data, "
                                     f"its shape {t.dims} needs {4 * count}")
            flat = np.frombuffer(t.raw_data, "<f4")
        else:
            if any(len(chunk) % 4 for chunk in t.float_chunks):
                raise ModelFileError(f"{self.path}: tensor {name!r} has float_data that is not whole floats")
            flat = (np.concatenate([np.frombuffer(chunk, "<f4") for chunk in t.float_chunks])
                    if t.float_chunks else np.zeros(0, np.float32))
            if flat.size != count:
                raise ModelFileError(f"{self.path}: tensor {name!r} has {flat.size} values, its shape {t.dims} "
                                     f"needs {count}")
        return flat.astype(np.float64).reshape(t.dims)


def read_onnx(path) -> OnnxFile:
    """Parse an ONNX file's protobuf just far enough to get the weights and the node list.

    Raises :class:`~runtime.model.ModelFileError` (a ``ValueError``) naming ``path`` when the
    bytes are not a well-formed ONNX model (truncated, garbage, no graph).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = memoryview(f.read())
    try:
        graph, metadata = None, {}
        for number, wire, value in _fields(data, "model"):
            if number == 7:
                _expect(number, wire, 2, "model")
                if graph is not None:
                    raise _Malformed("model: two graphs")
                graph = value
            elif number == 14:  # metadata_props: StringStringEntryProto key=1, value=2
                _expect(number, wire, 2, "model")
                key = val = ""
                for n2, w2, v2 in _fields(value, "metadata"):
                    _expect(n2, w2, 2, "metadata")
                    if n2 == 1:
                        key = _text(v2, "metadata")
                    elif n2 == 2:
                        val = _text(v2, "metadata")
                metadata[key] = val
        if graph is None:
            raise _Malformed("no graph (ModelProto field 7) in the file")
        nodes, initializers, inputs = [], {}, []
        for number, wire, value in _fields(graph, "graph"):
            if number == 1:
                _expect(number, wire, 2, "graph")
                nodes.append(_parse_node(value, f"graph node {len(nodes)}"))
            elif number == 5:
                _expect(number, wire, 2, "graph")
                t = _parse_tensor(value, f"graph initializer {len(initializers)}")
                initializers[t.name] = t
            elif number == 11:  # ValueInfoProto: name = 1
                _expect(number, wire, 2, "graph")
                for n2, w2, v2 in _fields(value, "graph input"):
                    if n2 == 1:
                        _expect(n2, w2, 2, "graph input")
                        inputs.append(_text(v2, "graph input"))
    except _Malformed as exc:
        raise ModelFileError(f"{path}: not a readable ONNX model ({exc})") from None
    return OnnxFile(path, metadata, nodes, initializers, inputs)


# ---- the model's weights ---------------------------------------------------------------------------

@dataclass
class LstmLayer:
    """One ONNX LSTM node's weights, float64, gate rows in ONNX order ``i, o, f, c``."""

    w: np.ndarray  # (4H, in)
    r: np.ndarray  # (4H, H)
    bias: np.ndarray  # (4H,) = Wb + Rb (only their sum enters the maths)


@dataclass
class LstmCtcWeights:
    """Everything the numpy model needs, float64: input projection, LSTM layers, output layer."""

    info: ModelInfo
    input_weight: Optional[np.ndarray]  # (F, I) MatMul weight, None when the LSTM reads frames directly
    input_bias: Optional[np.ndarray]  # (I,)
    input_tanh: bool
    layers: list  # of LstmLayer
    output_weight: np.ndarray  # (H, C)
    output_bias: np.ndarray  # (C,)


_PASS_THROUGH = {"Transpose", "Squeeze", "Unsqueeze", "Identity", "Cast"}  # layout only, on the main path


def _is_quantized(onnx_file: OnnxFile) -> bool:
    return ("quantization" in onnx_file.metadata
            or any("Quantize" in n.op_type or n.op_type.startswith("QLinear") or "Integer" in n.op_type
                   for n in onnx_file.nodes))


def _check_lstm_attributes(node: _Node, hidden: int, path: str) -> None:
    a = node.attributes
    problems = []
    if a.get("hidden_size") != hidden:
        problems.append(f"hidden_size {a.get('hidden_size')} (metadata says {hidden})")
    if a.get("direction", "forward") != "forward":
        problems.append(f"direction {a['direction']!r}")
    if a.get("activations", ["Sigmoid", "Tanh", "Tanh"]) != ["Sigmoid", "Tanh", "Tanh"]:
        problems.append(f"activations {a['activations']}")
    if "clip" in a:
        problems.append("a cell clip")
    if a.get("input_forget", 0) or a.get("layout", 0):
        problems.append("input_forget or layout set")
    if len(node.inputs) > 4 and node.inputs[4]:
        problems.append("sequence_lens")
    if len(node.inputs) > 7 and node.inputs[7]:
        problems.append("peephole weights")
    if problems:
        raise ModelFileError(f"{path}: LSTM node {node.name!r} has {', '.join(problems)}; this module computes "
                             f"only the default forward LSTM")


def load_weights(path) -> LstmCtcWeights:
    """The float64 weights of an inkstream float32 ONNX model, checked against its metadata.

    Walks the main path from input ``x`` to output ``log_probs`` (see the module docstring) and
    refuses any op that would make the numpy model compute something else.
    """
    f = read_onnx(path)
    path = f.path
    if _is_quantized(f):
        raise ModelFileError(f"{path}: an int8 (quantized) model has no float weights to take gradients "
                             f"through; use the float32 model {default_model_path(int8=False)}")
    info = ModelInfo.from_metadata(f.metadata, path)

    # Identity nodes that alias initializers: resolve (nodes are topologically ordered, so chains resolve)
    weight_of = {name: name for name in f.initializers}
    for node in f.nodes:
        if node.op_type == "Identity" and len(node.inputs) == 1 and node.inputs[0] in weight_of:
            for out in node.outputs:
                weight_of[out] = weight_of[node.inputs[0]]

    def weight(name: str) -> np.ndarray:
        if name not in weight_of:
            raise ModelFileError(f"{path}: {name!r} is not a weight (initializer) of the graph")
        return f.array(weight_of[name])

    consumers: dict = {}
    for node in f.nodes:
        for name in node.inputs:
            if name and name not in weight_of:
                consumers.setdefault(name, []).append(node)

    # Walk the main path. Each step is a "stage": ("dense", W, b, tanh) or ("lstm", node).
    stages: list = []
    current = INPUT_NAMES[0]
    if f.graph_inputs and current not in f.graph_inputs:
        raise ModelFileError(f"{path}: the graph has no input {current!r}")
    for _ in range(len(f.nodes) + 1):  # bounded: a cycle cannot hang the walk
        users = consumers.get(current, [])
        if len(users) != 1:
            raise ModelFileError(f"{path}: tensor {current!r} feeds {len(users)} nodes; the exported layout "
                                 f"has one node on each step from {INPUT_NAMES[0]!r} to {OUTPUT_NAMES[0]!r}")
        node = users[0]
        op = node.op_type
        if op == "MatMul" and node.inputs[0] == current and len(node.inputs) == 2:
            stages.append(["dense", weight(node.inputs[1]), None, False])
        elif (op == "Add" and len(node.inputs) == 2 and stages and stages[-1][0] == "dense"
              and stages[-1][2] is None and not stages[-1][3]):  # the bias, before any activation
            other = node.inputs[1] if node.inputs[0] == current else node.inputs[0]
            stages[-1][2] = weight(other)
        elif op == "Tanh" and stages and stages[-1][0] == "dense" and not stages[-1][3]:
            stages[-1][3] = True
        elif op == "Cast" and node.attributes.get("to") != _FLOAT:
            raise ModelFileError(f"{path}: node {node.name!r} casts to type {node.attributes.get('to')}, not float")
        elif op in _PASS_THROUGH:
            pass
        elif op == "LSTM" and node.inputs[0] == current:
            _check_lstm_attributes(node, info.hidden_size, path)
            stages.append(["lstm", node])
        elif op == "LogSoftmax":
            if node.attributes.get("axis", -1) not in (-1, 2):
                raise ModelFileError(f"{path}: LogSoftmax over axis {node.attributes.get('axis')}, not the classes")
            if node.outputs[0] != OUTPUT_NAMES[0]:
                raise ModelFileError(f"{path}: LogSoftmax writes {node.outputs[0]!r}, not {OUTPUT_NAMES[0]!r}")
            break
        else:
            raise ModelFileError(f"{path}: unexpected {op} node {node.name!r} on the path from "
                                 f"{INPUT_NAMES[0]!r} to {OUTPUT_NAMES[0]!r}; not an inkstream LSTM-CTC export")
        current = node.outputs[0]
    else:
        raise ModelFileError(f"{path}: the path from {INPUT_NAMES[0]!r} never reaches a LogSoftmax")

    kinds = [s[0] for s in stages]
    n_in = 1 if kinds[:1] == ["dense"] and len(kinds) > 1 and kinds[1] == "lstm" else 0
    if kinds != ["dense"] * n_in + ["lstm"] * info.num_layers + ["dense"]:
        raise ModelFileError(f"{path}: the graph computes {' -> '.join(kinds)}; expected an optional input "
                             f"projection, {info.num_layers} LSTM layers (metadata) and an output layer")
    if stages[-1][3] or stages[-1][2] is None:
        raise ModelFileError(f"{path}: the output layer must be MatMul + Add with no activation")

    H, F, C = info.hidden_size, info.num_features, info.num_classes
    input_weight = input_bias = None
    width = F
    if n_in:
        _, input_weight, input_bias, _ = stages[0]
        if input_bias is None or input_weight.ndim != 2 or input_weight.shape[0] != F \
                or input_bias.shape != (input_weight.shape[1],):
            raise ModelFileError(f"{path}: input projection has shapes {input_weight.shape} / "
                                 f"{None if input_bias is None else input_bias.shape}, frames have {F} features")
        width = input_weight.shape[1]
    layers = []
    for k, (_, node) in enumerate(stages[n_in:n_in + info.num_layers]):
        names = node.inputs[1:4]
        w, r = weight(names[0]), weight(names[1])
        b = weight(names[2]) if len(names) > 2 and names[2] else np.zeros((1, 8 * H))
        if w.shape != (1, 4 * H, width) or r.shape != (1, 4 * H, H) or b.shape != (1, 8 * H):
            raise ModelFileError(f"{path}: LSTM layer {k} has W {w.shape}, R {r.shape}, B {b.shape}; expected "
                                 f"{(1, 4 * H, width)}, {(1, 4 * H, H)}, {(1, 8 * H)}")
        layers.append(LstmLayer(np.ascontiguousarray(w[0]), np.ascontiguousarray(r[0]), b[0, :4 * H] + b[0, 4 * H:]))
        width = H
    _, out_w, out_b, _ = stages[-1]
    if out_w.shape != (H, C) or out_b.shape != (C,):
        raise ModelFileError(f"{path}: output layer has shapes {out_w.shape} / {out_b.shape}, expected "
                             f"{(H, C)} / {(C,)}")
    return LstmCtcWeights(info, input_weight, input_bias, bool(n_in and stages[0][3]), layers, out_w, out_b)


# ---- forward and backward --------------------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + exp(-x)), without overflow warnings


@dataclass
class _LayerTrace:
    x: np.ndarray  # (T, in) this layer's input
    act: np.ndarray  # (T, 4H) gate activations i, o, f (sigmoid) and the candidate c (tanh)
    dact: np.ndarray  # (T, 4H) their derivatives with respect to the pre-activations
    c: np.ndarray  # (T + 1, H) cell states, c[0] the entering state
    tanh_c: np.ndarray  # (T, H)


@dataclass
class ForwardPass:
    """A float64 forward pass: ``log_probs (T, C)``, final states, and what the backward pass needs."""

    frames: np.ndarray  # (T, F) float64
    log_probs: np.ndarray  # (T, C)
    h_out: np.ndarray  # (L, H)
    c_out: np.ndarray  # (L, H)
    projected: Optional[np.ndarray]  # (T, I) input projection output (after tanh)
    layers: list  # of _LayerTrace


class InputGradientModel:
    """The inkstream LSTM-CTC model in float64 numpy, with the gradient of an output with respect to
    the input frames. Built from the float32 ONNX file (default: the shipped ``model.onnx``)."""

    def __init__(self, path=None):
        self.path = os.fspath(path or default_model_path(int8=False))
        self.weights = load_weights(self.path)
        self.info = self.weights.info
        # (H, 4H) copies so the per-frame recurrent product h @ R^T reads contiguous memory
        self._r_t = [np.ascontiguousarray(layer.r.T) for layer in self.weights.layers]

    @property
    def alphabet(self):
        return self.info.alphabet

    @property
    def feature_config(self) -> FeatureConfig:
        return self.info.feature_config

    def _state(self, s, name: str) -> np.ndarray:
        shape = (self.info.num_layers, self.info.hidden_size)
        if s is None:
            return np.zeros(shape)
        s = np.asarray(s, np.float64)
        if s.shape == (shape[0], 1, shape[1]):  # the runtime's (layers, batch=1, hidden)
            s = s[:, 0]
        if s.shape != shape:
            raise ValueError(f"{name} must be (layers, hidden) = {shape} or (layers, 1, hidden), got {s.shape}")
        return s

    def forward(self, frames, h0=None, c0=None) -> ForwardPass:
        """Run frames ``(T, num_features)`` from states ``h0, c0`` (zero when None) in float64."""
        x = np.asarray(frames, np.float64)
        if x.ndim != 2 or x.shape[1] != self.info.num_features:
            raise ValueError(f"frames must be (T, {self.info.num_features}), got {x.shape}")
        h0, c0 = self._state(h0, "h0"), self._state(c0, "c0")
        w = self.weights
        H, T = self.info.hidden_size, len(x)
        projected = None
        if w.input_weight is not None:
            projected = x @ w.input_weight + w.input_bias
            if w.input_tanh:
                projected = np.tanh(projected)
            y = projected
        else:
            y = x
        traces, h_out, c_out = [], np.empty_like(h0), np.empty_like(c0)
        for k, layer in enumerate(w.layers):
            pre_in = y @ layer.w.T + layer.bias  # (T, 4H): the input part of every frame at once
            act = np.empty((T, 4 * H))
            c = np.empty((T + 1, H))
            hs = np.empty((T, H))
            c[0] = c0[k]
            h = h0[k]
            r_t = self._r_t[k]
            for t in range(T):
                g = pre_in[t] + h @ r_t
                a = act[t]
                a[:3 * H] = _sigmoid(g[:3 * H])  # i, o, f
                a[3 * H:] = np.tanh(g[3 * H:])  # candidate c
                c[t + 1] = a[2 * H:3 * H] * c[t] + a[:H] * a[3 * H:]
                h = hs[t] = a[H:2 * H] * np.tanh(c[t + 1])
            dact = np.empty_like(act)
            dact[:, :3 * H] = act[:, :3 * H] * (1.0 - act[:, :3 * H])
            dact[:, 3 * H:] = 1.0 - act[:, 3 * H:] ** 2
            traces.append(_LayerTrace(y, act, dact, c, np.tanh(c[1:])))
            h_out[k], c_out[k] = (hs[-1], c[-1]) if T else (h0[k], c0[k])
            y = hs
        logits = y @ w.output_weight + w.output_bias
        m = logits.max(axis=1, keepdims=True) if T else 0.0
        log_probs = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return ForwardPass(x, log_probs, h_out, c_out, projected, traces)

    def input_gradient(self, frames, frame_index: int, class_index: int, window: int = DEFAULT_WINDOW,
                       h0=None, c0=None, *, trace: Optional[ForwardPass] = None) -> np.ndarray:
        """``d log_probs[frame_index, class_index] / d frames``, shape ``(T, num_features)``, float64.

        Exact backpropagation through time over the ``window`` frames ending at ``frame_index``;
        the state entering the window is held constant, so earlier frames get zero (see the
        module docstring). ``trace``: a :meth:`forward` result for these frames and states, to
        skip recomputing it.
        """
        x = np.asarray(frames, np.float64)
        if trace is None:
            trace = self.forward(x, h0, c0)
        elif trace.frames.shape != x.shape or not np.array_equal(trace.frames, x):
            raise ValueError("trace is a forward pass over other frames")
        T, H = len(x), self.info.hidden_size
        if not 0 <= frame_index < T:
            raise ValueError(f"frame_index {frame_index} is outside the {T} frames")
        if not 0 <= class_index < self.info.num_classes:
            raise ValueError(f"class_index {class_index} is outside the {self.info.num_classes} classes")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        start = max(0, frame_index - window + 1)
        n = frame_index - start + 1  # frames in the window
        w = self.weights

        # d log_softmax(z)[k] / dz = onehot(k) - softmax(z)
        dlogits = -np.exp(trace.log_probs[frame_index])
        dlogits[class_index] += 1.0
        dh_from_above = np.zeros((n, H))
        dh_from_above[-1] = w.output_weight @ dlogits

        for layer, lt in zip(reversed(w.layers), reversed(trace.layers)):
            dgates = np.empty((n, 4 * H))
            dh_next, dc_next = np.zeros(H), np.zeros(H)
            for j in range(n - 1, -1, -1):
                t = start + j
                a = lt.act[t]
                dh = dh_from_above[j] + dh_next
                tc = lt.tanh_c[t]
                dc = dc_next + dh * a[H:2 * H] * (1.0 - tc * tc)
                d = dgates[j]
                d[:H] = dc * a[3 * H:]  # i
                d[H:2 * H] = dh * tc  # o
                d[2 * H:3 * H] = dc * lt.c[t]  # f (c[t] is the state before frame t)
                d[3 * H:] = dc * a[:H]  # candidate
                d *= lt.dact[t]
                dh_next = d @ layer.r  # into h of the previous frame
                dc_next = dc * a[2 * H:3 * H]
            dh_from_above = dgates @ layer.w  # into this layer's input, every window frame at once

        grad = np.zeros_like(x)
        if w.input_weight is not None:
            d = dh_from_above
            if w.input_tanh:
                d = d * (1.0 - trace.projected[start:frame_index + 1] ** 2)
            grad[start:frame_index + 1] = d @ w.input_weight.T
        else:
            grad[start:frame_index + 1] = dh_from_above
        return grad


# ---- from pen samples to something the page can draw -----------------------------------------------

@dataclass
class InkSaliency:
    """How much each pen sample of a line matters to one character's output.

    ``values[i]`` in ``[0, 1]`` for pen sample ``i`` (1 at the most influential sample; all 0 when
    the gradient vanishes). ``frame_index`` is the frame whose output was differentiated and
    ``sample_index`` the pen sample that completed it; ``probability`` is that output's value.
    """

    character: str
    class_index: int
    frame_index: int
    sample_index: int
    probability: float
    values: np.ndarray  # (n,) float64


def _choose_output(log_probs: np.ndarray, frame_index: Optional[int], class_index: Optional[int],
                   recent: int) -> tuple[int, int]:
    """The (frame, class) to explain. With neither given: the non-blank class with the highest
    probability over the last ``recent`` frames (the latest frame wins a tie), i.e. the character
    the network is most sure of right now."""
    T = len(log_probs)
    if frame_index is not None:
        if not -T <= frame_index < T:
            raise ValueError(f"frame_index {frame_index} is outside the {T} frames")
        frame_index %= T
        if class_index is None:
            class_index = 1 + int(np.argmax(log_probs[frame_index, 1:]))  # blank is id 0
        return frame_index, class_index
    lo = max(0, T - max(1, recent))
    if class_index is None:
        block = log_probs[lo:, 1:][::-1]  # reversed so argmax's first hit is the latest frame
        j, k = np.unravel_index(int(np.argmax(block)), block.shape)
        return T - 1 - int(j), 1 + int(k)
    column = log_probs[lo:, class_index][::-1]
    return T - 1 - int(np.argmax(column)), class_index


def _frames_to_samples(n: int, sources: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """One value per pen sample from one value per frame.

    ``sources[j]`` is the sample that completed frame ``j`` (non-decreasing). A sample that
    completed frames takes the largest of their values. A sample that completed none lies on the
    stretch of path that the *next* frame covers (the resampled frame point is beyond it), so it
    takes that frame's sample value: a piecewise-constant fill along the ink, no interpolation
    between unrelated frames. Samples after the last frame (none once the extractor is flushed)
    get 0.
    """
    per_sample = np.zeros(n)
    np.maximum.at(per_sample, sources, magnitude)
    owners = np.unique(sources)
    nxt = np.searchsorted(owners, np.arange(n), side="left")
    out = np.zeros(n)
    ok = nxt < len(owners)
    out[ok] = per_sample[owners[nxt[ok]]]
    return out


@functools.lru_cache(maxsize=1)
def _shipped_model() -> InputGradientModel:
    return InputGradientModel(default_model_path(int8=False))


def ink_saliency(points, feature_config: Optional[FeatureConfig] = None, *,
                 model: Optional[InputGradientModel] = None, frame_index: Optional[int] = None,
                 class_index: Optional[int] = None, window: int = DEFAULT_WINDOW, recent: int = RECENT_FRAMES,
                 h0=None, c0=None, prefix_model=None) -> Optional[InkSaliency]:
    """Per-pen-sample saliency of one character's output for one line of ink.

    ``points``: ``(n, 4)`` rows ``x, y, t, pen_up_after`` of the line (since the recognizer's
    last reset; ``h0, c0`` are the states it started from, zero by default). ``feature_config``
    defaults to the model's own (a different one gives frames the model was not trained on).
    ``model`` defaults to the shipped float32 model (loaded once per process).

    The output explained is ``(frame_index, class_index)`` when given; otherwise the character
    the network is most sure of over the last ``recent`` frames (see :func:`_choose_output`;
    with only ``frame_index`` given, the most probable non-blank class there; with only
    ``class_index``, its most probable frame among the last ``recent``). The gradient
    (:meth:`InputGradientModel.input_gradient`, truncated to ``window`` frames) is reduced to
    its L2 norm over the features of each frame, spread onto pen samples
    (:func:`_frames_to_samples`) and divided by its maximum. Returns None when the ink makes no
    frames.

    ``prefix_model``: an :class:`runtime.model.OnnxModel` of the same weights. On a line longer than
    ``window`` frames it runs the frames before the last ``window`` (onnxruntime, fast) to get the
    state entering them, so the numpy passes cover only the window and the cost stays bounded
    however long the line is (the output explained is then among the last ``window`` frames).
    """
    model = model or _shipped_model()
    config = feature_config or model.feature_config
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ValueError(f"points must be (n, 4) x, y, t, pen_up_after; got shape {pts.shape}")
    frames, sources = extract(pts, config, return_sources=True)
    if not len(frames):
        return None
    start = 0
    if prefix_model is not None and len(frames) > window and frame_index is None:
        start = len(frames) - window
        if h0 is None:
            h0, c0 = prefix_model.zero_state(1)
        _, h0, c0 = prefix_model.step(frames[None, :start], np.asarray(h0, np.float32), np.asarray(c0, np.float32))
    trace = model.forward(frames[start:], h0, c0)
    if class_index is not None and not 1 <= class_index < model.info.num_classes:
        raise ValueError(f"class_index {class_index} is not a character id (1..{model.info.num_classes - 1})")
    t, k = _choose_output(trace.log_probs, frame_index, class_index, recent)
    grad = model.input_gradient(trace.frames, t, k, window, trace=trace)
    magnitude = np.zeros(len(frames))
    magnitude[start:] = np.linalg.norm(grad, axis=1)
    values = _frames_to_samples(len(pts), sources, magnitude)
    top = values.max()
    if top > 0:
        values /= top
    return InkSaliency(model.alphabet.decode([k]), k, start + t, int(sources[start + t]),
                       float(np.exp(trace.log_probs[t, k])), values)


def _benchmark(repeats: int = 3) -> None:
    """``python -m runtime.saliency``: time ink_saliency on a ~1,000-sample line of the demo samples."""
    from runtime.app.sources import DEMO_SAMPLES
    from runtime.ink import load_corpus

    corpus = load_corpus(DEMO_SAMPLES)
    a, b = corpus.points(2).astype(np.float64), corpus.points(3).astype(np.float64)
    b = b.copy()
    b[:, 0] += a[:, 0].max() - b[:, 0].min() + 0.5 * (a[:, 1].max() - a[:, 1].min())  # written to the right
    b[:, 2] += a[-1, 2] - b[0, 2] + 0.3
    line = np.concatenate([a, b])[:1000]
    t0 = time.perf_counter()
    model = _shipped_model()
    load_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = ink_saliency(line, model=model)
        best = min(best, time.perf_counter() - t0)
    frames = len(extract(line, model.feature_config))
    print(f"model load {load_s * 1e3:.0f} ms; ink_saliency on {len(line)} samples ({frames} frames): "
          f"best of {repeats} {best * 1e3:.0f} ms; explained {result.character!r} at frame {result.frame_index} "
          f"(p={result.probability:.2f})")


if __name__ == "__main__":
    _benchmark()
