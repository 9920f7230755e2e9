"""runtime.saliency: the numpy LSTM against onnxruntime, its gradient against finite differences,
the protobuf reader against bad files (and against the onnx package where it is installed), and
the pen-sample saliency the live page draws."""
import struct
import time

import numpy as np
import pytest

from runtime.app.sources import DEMO_SAMPLES
from runtime.features import extract
from runtime.ink import load_corpus
from runtime.model import OnnxModel, default_model_path
from runtime.saliency import (RECENT_FRAMES, InputGradientModel, _frames_to_samples, ink_saliency, load_weights,
                              read_onnx)

FLOAT_MODEL = default_model_path(int8=False)


@pytest.fixture(scope="module")
def model():
    return InputGradientModel(FLOAT_MODEL)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(DEMO_SAMPLES)


def _states(seed, model):
    """A random entering LSTM state of the model's shape."""
    layers, hidden = model.info.num_layers, model.info.hidden_size
    rng = np.random.default_rng(seed)
    return (0.5 * rng.standard_normal((layers, 1, hidden))).astype(np.float32), \
        rng.standard_normal((layers, 1, hidden)).astype(np.float32)


# ---- forward ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_state", [False, True])
def test_forward_matches_onnxruntime(model, corpus, with_state):
    ort = OnnxModel(FLOAT_MODEL)
    frames = extract(corpus.points(2).astype(np.float64), ort.feature_config)
    assert len(frames) > 100
    h, c = _states(1, model) if with_state else ort.zero_state(1)
    lp, h_out, c_out = ort.step(frames[None], h, c)
    trace = model.forward(frames, h if with_state else None, c if with_state else None)
    assert trace.log_probs.dtype == np.float64 and trace.log_probs.shape == lp[0].shape
    np.testing.assert_allclose(trace.log_probs, lp[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(trace.h_out, h_out[:, 0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(trace.c_out, c_out[:, 0], rtol=1e-5, atol=1e-4)  # cells grow to ~60


# ---- gradient -----------------------------------------------------------------------------------------

def _log_prob(model, frames, t, k, h0, c0):
    return model.forward(frames, h0, c0).log_probs[t, k]


@pytest.mark.parametrize("with_state", [False, True])
def test_gradient_matches_central_differences(model, corpus, with_state):
    frames = extract(corpus.points(1).astype(np.float64), model.feature_config).astype(np.float64)[:60]
    h0, c0 = _states(2, model) if with_state else (None, None)
    t, window = 55, 30
    start = t - window + 1
    lp = model.forward(frames, h0, c0).log_probs
    k = 1 + int(np.argmax(lp[t, 1:]))  # a character, not the blank
    grad = model.input_gradient(frames, t, k, window=window, h0=h0, c0=c0)
    assert grad.shape == frames.shape

    # truncation: exactly zero before the window and (causality) after the frame; not zero at its start
    assert np.all(grad[:start] == 0.0) and np.all(grad[t + 1:] == 0.0)
    assert np.any(grad[start] != 0.0)

    rng = np.random.default_rng(3)
    entries = [(start, int(rng.integers(7))), (t, 0)] + [(int(rng.integers(start, t + 1)), int(rng.integers(7)))
                                                         for _ in range(6)]
    eps = 1e-5
    for j, q in entries:
        plus, minus = frames.copy(), frames.copy()
        plus[j, q] += eps
        minus[j, q] -= eps
        fd = (_log_prob(model, plus, t, k, h0, c0) - _log_prob(model, minus, t, k, h0, c0)) / (2 * eps)
        assert abs(grad[j, q] - fd) <= 1e-6 * abs(fd) + 1e-9, (j, q, grad[j, q], fd)

    # the zeros before the window are the truncation, not an insensitive model: the true derivative
    # there is not zero, and a window reaching frame 0 gets it
    j, q = start - 5, 1
    plus, minus = frames.copy(), frames.copy()
    plus[j, q] += eps
    minus[j, q] -= eps
    fd = (_log_prob(model, plus, t, k, h0, c0) - _log_prob(model, minus, t, k, h0, c0)) / (2 * eps)
    assert abs(fd) > 1e-6
    full = model.input_gradient(frames, t, k, window=t + 1, h0=h0, c0=c0)
    assert abs(full[j, q] - fd) <= 1e-6 * abs(fd) + 1e-9
    np.testing.assert_allclose(full[start:], grad[start:], rtol=1e-12, atol=1e-15)  # the window part is the same


def test_gradient_rejects_bad_arguments(model, corpus):
    frames = extract(corpus.points(5).astype(np.float64), model.feature_config)
    with pytest.raises(ValueError):
        model.input_gradient(frames, len(frames), 1)
    with pytest.raises(ValueError):
        model.input_gradient(frames, 0, model.info.num_classes)
    with pytest.raises(ValueError):
        model.input_gradient(frames, 3, 1, trace=model.forward(frames[:-1]))


# ---- the protobuf reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [0, 3, 200, 0.5, -1, -300])
def test_reader_refuses_truncated_file(tmp_path, cut):
    data = FLOAT_MODEL.read_bytes()
    n = int(cut * len(data)) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match="truncated.onnx"):
        load_weights(path)


@pytest.mark.parametrize("seed", range(6))
def test_reader_refuses_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "noise.onnx"
    path.write_bytes(rng.bytes(int(rng.integers(1, 20000))))
    with pytest.raises(ValueError, match="noise.onnx"):
        load_weights(path)


def test_reader_refuses_int8_model():
    with pytest.raises(ValueError) as err:
        InputGradientModel(default_model_path(int8=True))
    message = str(err.value)
    assert str(default_model_path(int8=True)) in message and "int8" in message
    assert str(FLOAT_MODEL) in message  # points at the float32 file


def _key(number, wire):
    return _varint((number << 3) | wire)


def _varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _bytes_field(number, payload):
    return _key(number, 2) + _varint(len(payload)) + payload


def test_reader_decodes_every_float_encoding(tmp_path):
    """float_data packed and unpacked, dims packed and unpacked, raw_data; other types refused."""
    values = np.arange(6, dtype=np.float32) * 0.25 - 0.5
    packed = (_bytes_field(1, _varint(2) + _varint(3)) + _key(2, 0) + _varint(1)
              + _bytes_field(4, values.tobytes()) + _bytes_field(8, b"packed"))
    unpacked = (_key(1, 0) + _varint(3) + _key(1, 0) + _varint(2) + _key(2, 0) + _varint(1)
                + b"".join(_key(4, 5) + struct.pack("<f", v) for v in values) + _bytes_field(8, b"unpacked"))
    raw = (_bytes_field(1, _varint(6)) + _key(2, 0) + _varint(1) + _bytes_field(8, b"raw")
           + _bytes_field(9, values.tobytes()))
    ints = (_bytes_field(1, _varint(2)) + _key(2, 0) + _varint(7) + _bytes_field(8, b"ints")
            + _bytes_field(9, np.arange(2, dtype=np.int64).tobytes()))
    short = (_bytes_field(1, _varint(7)) + _key(2, 0) + _varint(1) + _bytes_field(8, b"short")
             + _bytes_field(9, values.tobytes()))
    graph = b"".join(_bytes_field(5, t) for t in (packed, unpacked, raw, ints, short))
    meta = _bytes_field(14, _bytes_field(1, b"answer") + _bytes_field(2, b"42"))
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_key(1, 0) + _varint(8) + _bytes_field(7, graph) + meta)

    f = read_onnx(path)
    assert f.metadata == {"answer": "42"}
    np.testing.assert_array_equal(f.array("packed"), values.reshape(2, 3))
    np.testing.assert_array_equal(f.array("unpacked"), values.reshape(3, 2))
    np.testing.assert_array_equal(f.array("raw"), values)
    with pytest.raises(ValueError, match="int64"):
        f.array("ints")
    with pytest.raises(ValueError, match="short"):
        f.array("short")
    with pytest.raises(ValueError, match="tiny.onnx"):  # a graph without the model's layout
        load_weights(path)


def test_reader_agrees_with_onnx_package():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    reference = onnx.load(str(FLOAT_MODEL))
    mine = read_onnx(FLOAT_MODEL)
    assert mine.metadata == {p.key: p.value for p in reference.metadata_props}
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in reference.graph.node] == \
        [(n.op_type, n.name, n.inputs, n.outputs) for n in mine.nodes]
    assert mine.graph_inputs == [i.name for i in reference.graph.input]
    assert set(mine.initializers) == {t.name for t in reference.graph.initializer}
    for t in reference.graph.initializer:
        expected = numpy_helper.to_array(t)
        got = mine.array(t.name)
        assert got.shape == expected.shape, t.name
        np.testing.assert_array_equal(got, expected.astype(np.float64), err_msg=t.name)
    lstm = [n for n in reference.graph.node if n.op_type == "LSTM"]
    assert [m.attributes["hidden_size"] for m in mine.nodes if m.op_type == "LSTM"] == \
        [onnx.helper.get_attribute_value(n.attribute[0]) for n in lstm]


def test_identity_alias_and_foreign_op(tmp_path, model):
    """An Identity that aliases an initializer is followed; an op the numpy model lacks is refused."""
    onnx = pytest.importorskip("onnx")

    m = onnx.load(str(FLOAT_MODEL))
    lstm = next(n for n in m.graph.node if n.op_type == "LSTM")
    m.graph.node.insert(0, onnx.helper.make_node("Identity", [lstm.input[2]], ["shared_R"]))
    lstm.input[2] = "shared_R"
    aliased = tmp_path / "aliased.onnx"
    onnx.save(m, str(aliased))
    np.testing.assert_array_equal(load_weights(aliased).layers[0].r, model.weights.layers[0].r)

    tanh = next(n for n in m.graph.node if n.op_type == "Tanh")
    tanh.op_type = "Relu"
    foreign = tmp_path / "relu.onnx"
    onnx.save(m, str(foreign))
    with pytest.raises(ValueError, match="Relu"):
        load_weights(foreign)


# ---- ink saliency -------------------------------------------------------------------------------------

def test_frames_to_samples_fills_each_stretch_from_its_frame():
    # samples 0..5; frames completed by samples 1, 1, 3, 5
    out = _frames_to_samples(7, np.array([1, 1, 3, 5]), np.array([0.2, 0.5, 0.1, 0.7]))
    np.testing.assert_array_equal(out, [0.5, 0.5, 0.1, 0.1, 0.7, 0.7, 0.0])


def test_ink_saliency_on_a_demo_line(model, corpus):
    points = corpus.points(0).astype(np.float64)
    result = ink_saliency(points, model=model)
    frames, sources = extract(points, model.feature_config, return_sources=True)

    # the explained output, chosen independently from onnxruntime's log-probs
    ort = OnnxModel(FLOAT_MODEL)
    lp = ort.step(frames[None], *ort.zero_state(1))[0][0]
    recent = lp[-RECENT_FRAMES:, 1:]
    j, k = np.unravel_index(np.argmax(recent), recent.shape)
    assert (result.frame_index, result.class_index) == (len(frames) - RECENT_FRAMES + j, k + 1)
    assert result.character == model.alphabet.decode([result.class_index])
    assert result.sample_index == sources[result.frame_index]
    assert abs(result.probability - np.exp(lp[result.frame_index, result.class_index])) < 1e-4

    v = result.values
    assert v.shape == (len(points),) and v.min() >= 0.0 and v.max() == 1.0
    assert np.all(v[result.sample_index + 1:] == 0.0)  # later ink cannot matter: the model is causal
    assert np.count_nonzero(v) > 10

    # the caller's choice is honoured
    chosen = ink_saliency(points, model=model, frame_index=40, class_index=3)
    assert (chosen.frame_index, chosen.class_index, chosen.character) == (40, 3, model.alphabet.decode([3]))
    assert np.all(chosen.values[sources[40] + 1:] == 0.0)
    assert not np.allclose(chosen.values, v)


def test_a_long_line_runs_its_prefix_through_onnxruntime_and_gives_the_same_answer(model, corpus):
    """With ``prefix_model`` the frames before the window go through onnxruntime and the numpy
    passes cover the window only: the same character, frame and values as the numpy forward over
    the whole line (same truncation), for a line several windows long."""
    parts, shift, t0 = [], 0.0, 0.0
    for i in (2, 7, 4):
        p = corpus.points(i).astype(np.float64)
        p[:, 0] += shift - p[:, 0].min()
        p[:, 2] += t0 - p[0, 2]
        shift, t0 = p[:, 0].max() + 50.0, p[-1, 2] + 0.3
        parts.append(p)
    line = np.concatenate(parts)
    window = 60
    assert len(extract(line, model.feature_config)) > 4 * window
    whole = ink_saliency(line, model=model, window=window)
    fast = ink_saliency(line, model=model, window=window, prefix_model=OnnxModel(FLOAT_MODEL))
    assert (fast.frame_index, fast.class_index, fast.sample_index) == (whole.frame_index, whole.class_index,
                                                                       whole.sample_index)
    np.testing.assert_allclose(fast.values, whole.values, atol=1e-3)
    assert fast.values[: fast.sample_index // 2].max() == 0.0  # far before the window: nothing
