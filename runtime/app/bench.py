"""``inkstream bench``: what the streaming runtime costs, as ratios against floors measured in the same run.

Absolute times on a shared machine are noise; ratios measured side by side are not. One run
measures, on the shipped model (or ``--model``) and with the default decoder (or ``--decoder``),
in rounds that take turns (the streaming costs, the floors, the re-run baseline, the real-time
factors; then the batched streams in blocks that take turns), so both sides of the ratios
between them see the same machine: figures are medians over the rounds, and those ratios and the
targets medians of per-round ratios. The torch step and the memory are measured once, at the end:

* ``per_sample_us_chunk{1,4,16}``: the whole streaming path (features, onnxruntime, the decoder)
  per pen sample when samples arrive 1, 4 or 16 at a time;
* ``floor_us_per_frame``: the same ONNX graph run on one 64-frame chunk, per frame (the
  arithmetic floor); ``ort_call_overhead_us``: one ``session.run`` of a trivial Identity graph
  from Python (the graph's bytes are written by :func:`trivial_onnx_bytes` without the ``onnx``
  package, which the edge install does not have);
* ``ratio_vs_torch``: a torch eager step (one frame, state carried) of an LSTM built from the ONNX
  file's own weights, over the ONNX step (null when torch is not installed);
* ``ratio_vs_rerun``: re-running from scratch over the whole prefix on every new point of a
  600-point line (features, one model call, a fresh decode: :func:`rerun_once`), over streaming
  it (the rerun cost is integrated from 30 evenly spaced prefix lengths rather than all 600);
* ``per_stream_us_{1,16,256}``: ``decode_streams`` over that many concurrent writers, per frame
  decoded (each round every stream gets its next burst of 2 pen samples, each stream writes its
  own stretch of the ink, so frames complete at different moments and only the streams that have
  one share a call; feature time is excluded and reported per stream separately as
  ``features_us_per_burst``);
  ``model_us_per_stream_256``: the model alone, one frame for 256 rows in one call, per row, and
  ``model_1_over_256`` a one-row call over that (measured in the same blocks);
* ``rtf_200hz``: processing time / ink time for a 200 Hz pen delivered as a serial reader sees
  it, a burst of 2 samples every 10 ms, each followed by decode and get_result, with the chosen
  decoder; ``rtf_200hz_greedy`` and ``rtf_200hz_beam`` give both decoders;
* ``rss_mb``: resident memory of a fresh process that loaded the recognizer and decoded a line.

The ink (:func:`bench_ink`) is real handwriting re-sampled at 200 Hz in its writer's own time:
features make about 0.1 frames per pen sample of it (``frames_per_sample``), 20-22 frames per
second of pen-down writing (``frames_per_second``), so per-sample and per-frame figures differ;
the targets are reported like with like and as the issue words them (see ``targets``).
"""
from __future__ import annotations

import argparse
import json
import math
import operator
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from runtime.features import extract
from runtime.recognizer import DEFAULT_DECODER, OFFLINE, StreamingRecognizer

# the issue's targets: (name in the JSON, the figure it reads, how it compares, the limit)
TARGETS = (
    # like with like: the floor converted to a pen sample (this model reads fewer frames than samples)
    ("chunk1 <= floor*frames_per_sample + 2 call overheads", "chunk1_over_floor_per_sample_plus_2_calls", "<=", 1),
    ("chunk4 <= 2 x floor*frames_per_sample", "chunk4_over_floor_per_sample", "<=", 2),
    # the issue's wording, which takes one frame per sample: the per-frame floor against a pen sample
    ("chunk1 <= floor per frame + 2 call overheads", "chunk1_over_floor_per_frame_plus_2_calls", "<=", 1),
    ("chunk4 <= 2 x floor per frame", "chunk4_over_floor_per_frame", "<=", 2),
    ("rtf_200hz < 0.01", "rtf_200hz", "<", 0.01),
    ("ratio_vs_rerun >= 100", "ratio_vs_rerun", ">=", 100),
    ("per_stream_us_1 / per_stream_us_256 >= 5", "streams_1_over_256", ">=", 5),
)
_COMPARE = {"<": operator.lt, "<=": operator.le, ">=": operator.ge}
PEN_RATE_HZ = 200.0
PHRASE_HEIGHT = 100.0  # the bench ink's phrases are all scaled to this height
BURST = 2


# ---- a trivial ONNX graph without the onnx package --------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, payload: bytes) -> bytes:  # protobuf wire type 2 (length-delimited)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _field_int(num: int, value: int) -> bytes:  # protobuf wire type 0 (varint)
    return _varint(num << 3) + _varint(value)


def trivial_onnx_bytes() -> bytes:
    """A serialized ONNX ModelProto: ``y = Identity(x)``, x and y float32 of shape (1,).

    Written field by field (onnx.proto numbers) so measuring the fixed cost of an onnxruntime
    call needs no ``onnx`` package on the device.
    """
    dim = _field_bytes(1, _field_int(1, 1))  # TensorShapeProto.dim { dim_value: 1 }
    tensor_type = _field_int(1, 1) + _field_bytes(2, dim)  # elem_type FLOAT, shape
    type_proto = _field_bytes(1, tensor_type)  # TypeProto.tensor_type

    def value_info(name: str) -> bytes:
        return _field_bytes(1, name.encode()) + _field_bytes(2, type_proto)

    node = _field_bytes(1, b"x") + _field_bytes(2, b"y") + _field_bytes(4, b"Identity")
    graph = (_field_bytes(1, node) + _field_bytes(2, b"trivial") + _field_bytes(11, value_info("x"))
             + _field_bytes(12, value_info("y")))
    opset = _field_bytes(1, b"") + _field_int(2, 13)
    return _field_int(1, 7) + _field_bytes(2, b"inkstream-bench") + _field_bytes(7, graph) + _field_bytes(8, opset)


# ---- bench ink --------------------------------------------------------------------------------
def _resample_strokes(points: np.ndarray, rate_hz: float) -> list:
    """The strokes of one sample re-sampled in time at ``rate_hz`` along its own time stamps (what
    a tablet at that rate would have reported for the same handwriting), each an ``(n, 2)`` array
    of x, y; a stroke's last point is always kept. A stroke whose time stamps do not advance keeps
    its points as they are (there is no time to place them in); an empty sample has no strokes."""
    if len(points) == 0:
        return []
    ends = np.flatnonzero(points[:, 3] > 0.5)
    if len(ends) == 0 or ends[-1] != len(points) - 1:
        ends = np.r_[ends, len(points) - 1]
    strokes, start = [], 0
    for end in ends:
        s = points[start:end + 1]
        start = end + 1
        t = np.maximum.accumulate(s[:, 2] - s[0, 2])  # time stamps made monotone
        if t[-1] <= 0.0:
            strokes.append(s[:, :2].copy())
            continue
        grid = np.arange(0.0, t[-1], 1.0 / rate_hz)
        if len(grid) == 0 or grid[-1] < t[-1]:
            grid = np.r_[grid, t[-1]]
        strokes.append(np.stack([np.interp(grid, t, s[:, 0]), np.interp(grid, t, s[:, 1])], axis=1))
    return strokes


def bench_ink(num_points: int = 600) -> tuple[np.ndarray, str]:
    """``num_points`` pen samples at 200 Hz of real handwriting, as ``(n, 4)`` x, y, t, pen_up_after.

    The packaged demo phrases, each re-sampled at 200 Hz along its own time stamps (so the pen
    moves as fast as the writer's did: about 20 frames per second of pen-down writing, like
    IAM-OnDB's real-time lines), scaled to one height (the devices' units differ 20-fold, and the
    features' running scale would carry one phrase's size into the next), placed side by side on
    one line and repeated to length. The time between
    strokes is *not* counted: ``t`` advances 5 ms a sample, so the ink lasts
    ``num_points / 200`` seconds, the pen-down time alone, and a real-time factor over it is an
    upper bound. Without the packaged samples: a synthetic cursive-like line (loops with a pen lift
    every 60 points)."""
    try:
        from importlib import resources

        from runtime.ink import load_corpus

        path = resources.files("runtime.samples").joinpath("unipen_demo.npz")
        corpus = load_corpus(str(path))
        if len(corpus) == 0:
            raise ValueError(f"{path.name} holds no samples")  # -> the synthetic line below
        pieces, total, shift = [], 0, 0.0
        i = 0
        while total < num_points:
            strokes = _resample_strokes(np.asarray(corpus.points(i % len(corpus)), np.float64), PEN_RATE_HZ)
            i += 1
            if not strokes:
                if i >= len(corpus) and total == 0:
                    raise ValueError(f"{path.name} holds no ink")  # -> the synthetic line below
                continue
            xy = np.concatenate(strokes)
            scale = PHRASE_HEIGHT / max(float(np.ptp(xy[:, 1])), 1e-9)
            x0, y0 = xy[:, 0].min(), xy[:, 1].min()
            for s in strokes:
                p = np.zeros((len(s), 4))
                p[:, 0] = shift + (s[:, 0] - x0) * scale
                p[:, 1] = (s[:, 1] - y0) * scale
                p[-1, 3] = 1.0
                pieces.append(p)
                total += len(p)
            shift += (xy[:, 0].max() - x0) * scale + 0.3 * PHRASE_HEIGHT
        pts = np.concatenate(pieces)[:num_points]
        source = f"packaged demo phrases ({path.name}) re-sampled at {PEN_RATE_HZ:.0f} Hz in their own time"
    except (FileNotFoundError, ModuleNotFoundError, OSError, ValueError):
        k = np.arange(num_points, dtype=np.float64)
        phase = k / 12.0
        pts = np.zeros((num_points, 4))
        pts[:, 0] = 2.0 * k / 12.0 + np.cos(phase)  # a trochoid: loops marching to the right
        pts[:, 1] = 3.0 * np.sin(phase)
        pts[59::60, 3] = 1.0
        source = "synthetic loops"
    pts[:, 2] = np.arange(num_points) / PEN_RATE_HZ
    pts[-1, 3] = 1.0
    return pts, source


# ---- measurements -----------------------------------------------------------------------------
def _per_call_median(fn, calls: int) -> float:
    """Median seconds of one ``fn()`` over ``calls`` calls (robust to the odd preempted call)."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stream_call_times(rec: StreamingRecognizer, pts: np.ndarray, chunk: int, with_result: bool = False) -> np.ndarray:
    """Seconds of each accept + decode call when ``pts`` streams through a fresh stream ``chunk``
    samples at a time (the last entry is input_finished + the final decode)."""
    s = rec.create_stream()
    times = []
    for a in range(0, len(pts), chunk):
        t0 = time.perf_counter()
        s.accept_samples(pts[a:a + chunk])
        rec.decode_stream(s)
        if with_result:
            rec.get_result(s)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    s.input_finished()
    rec.decode_stream(s)
    times.append(time.perf_counter() - t0)
    return np.array(times)


def stream_cost(rec: StreamingRecognizer, pts: np.ndarray, chunk: int, repeats: int = 1,
                with_result: bool = False) -> float:
    """Seconds to stream ``pts``: per call position the median over ``repeats`` runs, summed.

    Taking the median per call rather than per run keeps a run that was preempted once (a busy
    machine) from counting, while every call's real cost still does.
    """
    runs = np.stack([stream_call_times(rec, pts, chunk, with_result) for _ in range(repeats)])
    return float(np.median(runs, axis=0).sum())


def ort_call_overhead_us(repeats: int) -> float:
    import onnxruntime as ort

    from runtime.model import session_options

    sess = ort.InferenceSession(trivial_onnx_bytes(), session_options(), providers=["CPUExecutionProvider"])
    feed = {"x": np.zeros(1, np.float32)}
    for _ in range(50):
        sess.run(None, feed)
    return _per_call_median(lambda: sess.run(None, feed), 100 * repeats) * 1e6


def model_step_us(rec: StreamingRecognizer, frames: int, repeats: int, batch: int = 1) -> float:
    """Median seconds*1e6 of one onnxruntime call (``model.run``) over ``frames`` frames (batch
    ``batch``), per frame: the graph's own cost, whatever calls the streaming path makes."""
    model = rec.model
    x = np.random.default_rng(0).standard_normal((batch, frames, model.info.num_features)).astype(np.float32)
    h, c = model.zero_state(batch)
    for _ in range(5):
        model.run(x, h, c)
    return _per_call_median(lambda: model.run(x, h, c), max(3, 300 // frames) * repeats) / frames * 1e6


def ort_values_step_us(rec: StreamingRecognizer, repeats: int) -> Optional[float]:
    """One-frame step keeping h/c as OrtValues between calls (``run_with_ort_values``), per frame."""
    import onnxruntime as ort

    sess = rec.model.session
    if not hasattr(sess, "run_with_ort_values"):
        return None
    x = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, rec.model.info.num_features), np.float32))
    h0, c0 = rec.model.zero_state(1)
    state = {"h": ort.OrtValue.ortvalue_from_numpy(h0), "c": ort.OrtValue.ortvalue_from_numpy(c0)}
    names = ["log_probs", "h_out", "c_out"]

    def step():
        lp, h, c = sess.run_with_ort_values(names, {"x": x, "h": state["h"], "c": state["c"]})
        lp.numpy()  # the decoder needs the log-probs in numpy
        state["h"], state["c"] = h, c

    for _ in range(20):
        step()
    return _per_call_median(step, 100 * repeats) * 1e6


def exported_weights(model) -> tuple[list, tuple, tuple]:
    """The weights of an exported float graph (an ``onnx.ModelProto``): ``([(W, R, B)] per LSTM
    layer in ONNX gate order i, o, f, c, (w_in, b_in), (w_out, b_out))``.

    Raises ValueError when the graph is not the exporter's input projection -> LSTMs -> linear.
    """
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    # the exporter shares equal tensors (such as equal biases of two layers) through Identity nodes
    for n in nodes:
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    matmuls = [n for n in nodes if n.op_type == "MatMul" and n.input[1] in init]
    adds = [n for n in nodes if n.op_type == "Add" and any(i in init for i in n.input)]
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    if len(matmuls) != 2 or len(adds) != 2 or not lstms:
        raise ValueError("ONNX graph is not the expected proj -> LSTMs -> linear shape")
    if not all(len(n.input) > 3 and all(n.input[j] in init for j in (1, 2, 3)) for n in lstms):
        raise ValueError("ONNX graph has an LSTM whose weights are not constants of the file")

    def bias(add):
        return next(init[i] for i in add.input if i in init)

    layers = [tuple(init[n.input[j]][0] for j in (1, 2, 3)) for n in lstms]
    return layers, (init[matmuls[0].input[1]], bias(adds[0])), (init[matmuls[1].input[1]], bias(adds[1]))


def torch_step_us(model_path: str, repeats: int) -> tuple[Optional[float], Optional[float], str]:
    """Torch eager one-frame step of the ONNX file's own weights: ``(us, parity, note)``.

    Returns ``(None, None, reason)`` when torch (or onnx, to read the weights) is missing.
    """
    try:
        import torch
    except ImportError:
        return None, None, "torch not installed"
    try:
        import onnx
    except ImportError:
        return None, None, "onnx not installed (needed to read the weights)"
    m = onnx.load(model_path)
    note = f"torch {torch.__version__}, weights from the ONNX file"
    sibling = Path(model_path).with_name(Path(model_path).name.replace(".int8", ""))
    if any(n.op_type == "DynamicQuantizeLSTM" for n in m.graph.node) and sibling.exists():
        # an int8 graph: torch runs the float weights it was quantized from (what a user of the
        # training checkpoint would run); the parity check is against that float graph
        model_path = str(sibling)
        m = onnx.load(model_path)
        note = f"torch {torch.__version__} float32, weights from {sibling.name} (this graph's float original)"
    try:
        layers, (w_in, b_in), (w_out, b_out) = exported_weights(m)
    except ValueError as exc:
        return None, None, str(exc)

    def iofc_to_ifgo(w):  # ONNX gate order i, o, f, c; torch i, f, g(c), o
        i, o, f, c = np.split(w, 4, axis=0)
        return np.concatenate([i, f, c, o], axis=0)

    hidden = layers[0][1].shape[-1]
    torch.set_num_threads(1)
    proj = torch.nn.Linear(w_in.shape[0], w_in.shape[1])
    lstm = torch.nn.LSTM(w_in.shape[1], hidden, num_layers=len(layers), batch_first=True)
    out = torch.nn.Linear(w_out.shape[0], w_out.shape[1])
    with torch.no_grad():
        proj.weight.copy_(torch.from_numpy(w_in.T.copy()))
        proj.bias.copy_(torch.from_numpy(np.array(b_in)))
        out.weight.copy_(torch.from_numpy(w_out.T.copy()))
        out.bias.copy_(torch.from_numpy(np.array(b_out)))
        for k, (w, r, b) in enumerate(layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(iofc_to_ifgo(w)))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(iofc_to_ifgo(r)))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(iofc_to_ifgo(b[:4 * hidden])))
            getattr(lstm, f"bias_hh_l{k}").copy_(torch.from_numpy(iofc_to_ifgo(b[4 * hidden:])))

    def forward(x, h, c):
        y, (h, c) = lstm(torch.tanh(proj(x)), (h, c))
        return torch.log_softmax(out(y), dim=-1), h, c

    # parity against onnxruntime over a few frames
    import onnxruntime as ort

    from runtime.model import session_options

    sess = ort.InferenceSession(model_path, session_options(), providers=["CPUExecutionProvider"])
    nf = w_in.shape[0]
    x = np.random.default_rng(1).standard_normal((1, 8, nf)).astype(np.float32)
    z = np.zeros((len(layers), 1, hidden), np.float32)
    ref = sess.run(None, {"x": x, "h": z, "c": z})[0]
    with torch.no_grad():
        got = forward(torch.from_numpy(x), torch.from_numpy(z), torch.from_numpy(z))[0].numpy()
    parity = float(np.abs(ref - got).max())
    xs = torch.zeros(1, 1, nf)
    state = [torch.zeros(len(layers), 1, hidden), torch.zeros(len(layers), 1, hidden)]

    def step():
        with torch.no_grad():
            lp, state[0], state[1] = forward(xs, state[0], state[1])
            lp.numpy()

    for _ in range(10):
        step()
    return _per_call_median(step, 100 * repeats) * 1e6, parity, note


def rerun_once(rec: StreamingRecognizer, pts: np.ndarray) -> str:
    """What a recognizer that must see the whole line does on a new point, at its cheapest:
    the features of the whole prefix, one model call over all their frames, a fresh decode."""
    frames = extract(pts, rec.model.feature_config)
    state = rec.decoder.new_state()
    if len(frames):
        h, c = rec.model.zero_state(1)
        log_probs, _, _ = rec.model.run(frames[None], h, c)
        rec.decoder.accept(state, log_probs[0])
    return rec.decoder.result(state)[0]


def rerun_cost(rec: StreamingRecognizer, pts: np.ndarray, points: int = 30) -> float:
    """Seconds to re-recognize the whole prefix after every new point, over all of ``pts``.

    Integrated from ``points`` evenly spaced prefix lengths (each measured once), scaled to all.
    """
    n = len(pts)
    lengths = np.linspace(n / points, n, points).round().astype(int)
    total = 0.0
    for k in lengths:
        total += _per_call_median(lambda: rerun_once(rec, pts[:k]), 3)
    return total * n / points


def batched_stream_cost(rec: StreamingRecognizer, long_ink: np.ndarray, streams: int,
                        rounds: int) -> tuple[float, float]:
    """``(decode_streams us per stream per frame, features us per stream per burst)`` of ``streams``
    concurrent writers: each round (10 ms of a 200 Hz pen) every stream gets its next burst of 2
    pen samples, then one ``decode_streams`` call runs the streams that completed frames. Stream k
    writes its own stretch of ``long_ink`` (starting ``97 * k`` samples in), so the streams complete
    frames at different moments and their beams hold different text, as real writers' would.
    The decode figure is the time of all the calls over the frames they decoded."""
    span = BURST * rounds
    room = len(long_ink) - span
    if room < streams:
        raise ValueError(f"batched_stream_cost: {streams} streams of {rounds} rounds need more than "
                         f"{span + streams} pen samples of ink, got {len(long_ink)}")
    inks = [long_ink[(97 * k) % room:][:span] for k in range(streams)]
    ss = [rec.create_stream() for _ in range(streams)]
    decode_s, frames, feature_times = 0.0, 0, []
    for a in range(0, span, BURST):
        t0 = time.perf_counter()
        for s, ink in zip(ss, inks):
            s.accept_samples(ink[a:a + BURST])
        t1 = time.perf_counter()
        feature_times.append((t1 - t0) / streams)
        waiting = sum(len(s.pending) for s in ss)
        if waiting:
            t2 = time.perf_counter()  # the decode alone, not the bench's count of waiting frames
            rec.decode_streams(ss)
            decode_s += time.perf_counter() - t2
            frames += waiting
    return decode_s / max(frames, 1) * 1e6, statistics.median(feature_times) * 1e6


def rtf_200hz(rec: StreamingRecognizer, pts: np.ndarray, repeats: int) -> float:
    """Processing time / ink time at 200 Hz, a burst of 2 samples per 10 ms, decode + result each."""
    duration = len(pts) / PEN_RATE_HZ
    return stream_cost(rec, pts, BURST, repeats, with_result=True) / duration


_RSS_SCRIPT = r"""
import sys, numpy as np
from runtime.recognizer import StreamingRecognizer
from runtime.app.bench import bench_ink
from runtime.recognizer import OFFLINE
model = sys.argv[1] or None
rec = StreamingRecognizer(model, decoder=sys.argv[2], endpoint=OFFLINE)
pts, _ = bench_ink(600)
s = rec.create_stream()
for a in range(0, len(pts), 2):
    s.accept_samples(pts[a:a + 2]); rec.decode_stream(s)
rec.get_result(s)
rss = None
try:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
except OSError:
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 1024.0 ** 2)
print(rss)
"""


def rss_mb(model_path: Optional[str], decoder: str = DEFAULT_DECODER) -> Optional[float]:
    """Resident memory (MB) of a fresh Python process that loaded the recognizer (with ``decoder``,
    so the beam's language model counts) and decoded a line."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, model_path or "", decoder], capture_output=True, text=True,
                             env=env, timeout=120, check=True).stdout
        return float(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_bench(model_path: Optional[str] = None, quick: bool = False, decoder: str = DEFAULT_DECODER, log=print) -> dict:
    """All measurements of the module docstring; returns the figures (also the JSON line).

    The streaming figures use ``decoder``. What is compared with what (streaming against the
    floors and against re-running, the real-time factors of the decoders) is measured in rounds
    that take turns, so a machine that speeds up or slows down during the run (shared hosts drift
    by 2x within minutes) moves both sides of a ratio together; each figure is the median over the
    rounds, and each of those ratios the median of its per-round ratios.
    """
    rounds = 3 if quick else 7
    rec = StreamingRecognizer(model_path, decoder=decoder, endpoint=OFFLINE)
    decoders = {decoder: rec}
    for name in ("greedy", "beam"):
        if name not in decoders:
            try:
                decoders[name] = StreamingRecognizer(model_path, decoder=name, endpoint=OFFLINE)
            except (FileNotFoundError, ValueError) as exc:  # no LM file
                log(f"{name} decoder unavailable: {exc}")
    pts, source = bench_ink(600)
    frames = rec.recognize(pts).num_frames
    fps = frames / len(pts)
    log(f"model {rec.model.path} ({rec.model.info.num_layers}x{rec.model.info.hidden_size}), {decoder} decoder; "
        f"bench ink: {source}, {len(pts)} pen samples -> {frames} frames ({fps:.2f} frames per sample, "
        f"{fps * PEN_RATE_HZ:.1f} per second of writing); {rounds} rounds")
    for r in decoders.values():  # warm up every recognizer the rounds use
        for _ in range(2):
            stream_cost(r, pts, 4)
    per_round: dict = {}

    def keep(key, value):
        per_round.setdefault(key, []).append(value)

    for _ in range(rounds):
        for chunk in (1, 4, 16):
            keep(f"chunk{chunk}", stream_cost(rec, pts, chunk, 3))
        keep("floor", model_step_us(rec, 64, 1))
        keep("step1", model_step_us(rec, 1, 1))
        keep("overhead", ort_call_overhead_us(1))
        keep("rerun", rerun_cost(rec, pts, 10 if quick else 30))
        for name, r in decoders.items():
            keep(f"rtf_{name}", rtf_200hz(r, pts, 1 if quick else 3))
    med = {k: statistics.median(v) for k, v in per_round.items()}

    def median_ratio(nums, dens):  # the median of the per-round (or per-block) ratios
        return statistics.median(a / b for a, b in zip(nums, dens))

    res: dict = {"model": rec.model.path, "decoder": decoder, "bench_ink": source, "pen_samples": len(pts),
                 "frames": frames, "frames_per_sample": fps, "frames_per_second": fps * PEN_RATE_HZ,
                 "rounds": rounds}
    for chunk in (1, 4, 16):
        res[f"per_sample_us_chunk{chunk}"] = med[f"chunk{chunk}"] / len(pts) * 1e6
        res[f"per_frame_us_chunk{chunk}"] = med[f"chunk{chunk}"] / max(frames, 1) * 1e6
    res["floor_us_per_frame"] = med["floor"]
    res["step_us_1frame"] = med["step1"]
    res["step_us_1frame_ort_values"] = ort_values_step_us(rec, 3 if quick else 9)
    res["ort_call_overhead_us"] = med["overhead"]
    res["rerun_600_s"] = med["rerun"]
    res["stream_600_s"] = med["chunk1"]  # streaming = one sample per call
    res["ratio_vs_rerun"] = median_ratio(per_round["rerun"], per_round["chunk1"])
    # batched streams: blocks of rounds that take turns between 1, 16 and 256 streams, so the
    # 1-vs-256 ratio, like the others, compares like with like
    blocks, reps = (2, 150) if quick else (3, 300)  # 150 rounds (300 pen samples) make about 30 frames a stream
    long_ink, _ = bench_ink(6000)
    batched: dict = {n: [] for n in (1, 16, 256)}
    model_1, model_256 = [], []  # the model alone, in the same blocks: 1 row per call, 256 rows per call
    for _ in range(blocks):
        for n in batched:
            batched[n].append(batched_stream_cost(rec, long_ink, n, reps))
        model_1.append(model_step_us(rec, 1, 1))
        model_256.append(model_step_us(rec, 1, 1, batch=256) / 256)
    for n, values in batched.items():
        res[f"per_stream_us_{n}"] = statistics.median(v[0] for v in values)
        res[f"features_us_per_burst_{n}"] = statistics.median(v[1] for v in values)
    res["streams_1_over_256"] = median_ratio([v[0] for v in batched[1]], [v[0] for v in batched[256]])
    # the model's own share: one call over 256 rows against one row (one frame each), per row
    res["model_us_per_stream_256"] = statistics.median(model_256)
    res["model_1_over_256"] = median_ratio(model_1, model_256)
    res["rtf_200hz"] = med[f"rtf_{decoder}"]
    for name in ("greedy", "beam"):
        res[f"rtf_200hz_{name}"] = med.get(f"rtf_{name}")
    if res["rtf_200hz_beam"] is not None:
        res["per_sample_us_beam_chunk2"] = res["rtf_200hz_beam"] / PEN_RATE_HZ * 1e6
    res["rss_mb"] = rss_mb(model_path, decoder)
    # last: importing torch starts its thread pool, which would disturb everything measured after it
    torch_us, parity, note = torch_step_us(rec.model.path, 3 if quick else 9)
    res["torch_step_us_1frame"] = torch_us
    res["torch_parity_max_abs_diff"] = parity
    res["torch_note"] = note
    res["ratio_vs_torch"] = torch_us / res["step_us_1frame"] if torch_us else None
    # the targets, each side of a comparison from the same round (see the docstring)
    n = len(pts)
    chunk1 = [t / n * 1e6 for t in per_round["chunk1"]]
    chunk4 = [t / n * 1e6 for t in per_round["chunk4"]]
    fl, ov = per_round["floor"], per_round["overhead"]
    fps = max(fps, 1e-9)  # ink that makes no frame would make every per-sample floor zero
    res["chunk1_over_floor_per_sample_plus_2_calls"] = median_ratio(chunk1, [f * fps + 2 * o for f, o in zip(fl, ov)])
    res["chunk4_over_floor_per_sample"] = median_ratio(chunk4, [f * fps for f in fl])
    res["chunk1_over_floor_per_frame_plus_2_calls"] = median_ratio(chunk1, [f + 2 * o for f, o in zip(fl, ov)])
    res["chunk4_over_floor_per_frame"] = median_ratio(chunk4, fl)
    res["targets"] = {name: _COMPARE[op](res[key], limit) for name, key, op, limit in TARGETS}
    return res


def _report(res: dict, log=print) -> None:
    f = res["floor_us_per_frame"]
    fps = res["frames_per_sample"]
    o = res["ort_call_overhead_us"]
    log(f"floor (64-frame chunk): {f:.1f} us/frame = {f * fps:.1f} us/pen sample;  "
        f"onnxruntime call overhead: {o:.1f} us")
    for chunk in (1, 4, 16):
        ps = res[f"per_sample_us_chunk{chunk}"]
        log(f"chunk {chunk:>2}: {ps:7.1f} us/pen sample ({res[f'per_frame_us_chunk{chunk}']:.1f} us/frame)")
    log(f"per round: chunk 1 = {res['chunk1_over_floor_per_sample_plus_2_calls']:.2f}x (floor per sample + 2 calls), "
        f"{res['chunk1_over_floor_per_frame_plus_2_calls']:.2f}x (floor per frame + 2 calls); chunk 4 = "
        f"{res['chunk4_over_floor_per_sample']:.2f}x floor per sample, {res['chunk4_over_floor_per_frame']:.2f}x "
        f"floor per frame")
    ov = res["step_us_1frame_ort_values"]
    log(f"model step, 1 frame: {res['step_us_1frame']:.1f} us with numpy states"
        + (f", {ov:.1f} us with OrtValue states" if ov else ""))
    if res["ratio_vs_torch"]:
        log(f"torch eager step: {res['torch_step_us_1frame']:.1f} us -> this ONNX model is {res['ratio_vs_torch']:.1f}x "
            f"faster (parity {res['torch_parity_max_abs_diff']:.1e}; {res['torch_note']})")
    else:
        log(f"torch comparison skipped: {res['torch_note']}")
    log(f"re-run from scratch per point over {res['pen_samples']} points: {res['rerun_600_s']:.2f} s vs streaming "
        f"{res['stream_600_s'] * 1e3:.1f} ms -> {res['ratio_vs_rerun']:.0f}x (median of per-round ratios)")
    for n in (1, 16, 256):
        log(f"{n:>3} streams: {res[f'per_stream_us_{n}']:.1f} us per stream per frame "
            f"(+ {res[f'features_us_per_burst_{n}']:.1f} us features per burst)")
    log(f"1 vs 256 streams: {res['streams_1_over_256']:.1f}x cheaper per stream (median of per-block ratios); "
        f"the model alone: {res['model_us_per_stream_256']:.1f} us per row in a call of 256 rows, "
        f"{res['model_1_over_256']:.1f}x cheaper than a call of one")
    rtfs = ", ".join(f"{name} {res[f'rtf_200hz_{name}']:.4f}" for name in ("greedy", "beam")
                     if res.get(f"rtf_200hz_{name}") is not None)
    log(f"real-time factor at 200 Hz (bursts of 2): {res['rtf_200hz']:.4f} with the {res['decoder']} decoder ({rtfs})")
    log(f"resident memory after loading and decoding: {res['rss_mb']:.0f} MB" if res["rss_mb"] else "RSS unavailable")
    for name, key, _, _ in TARGETS:
        log(f"  [{'ok' if res['targets'][name] else 'MISSED'}] {name}: {res[key]:.4g}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    parser.add_argument("--decoder", choices=("greedy", "beam"), default=DEFAULT_DECODER,
                        help=f"decoder of the streaming figures (default: {DEFAULT_DECODER}); the real-time factor "
                             f"is measured for both")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds; noisier)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def run(args) -> int:
    res = run_bench(args.model, quick=args.quick, decoder=args.decoder)
    _report(res)
    if args.json:
        print(json.dumps(res))
    return 0
