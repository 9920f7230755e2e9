"""The streaming runtime through real ONNX files: streaming == offline, batching == single,
metadata errors, endpoints and reset, alignment, ``inkstream eval`` and the edge-install imports."""
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from runtime.app.cli import main as cli_main
from runtime.ink import InkFormatError, load_corpus
from runtime.model import ModelFileError, default_model_path
from runtime.recognizer import OFFLINE, EndpointConfig, StreamingRecognizer

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "runtime" / "unipen_lines.npz"
SHARED = ROOT.parent / "shared" / "data"
# the shipped model unless INKSTREAM_TEST_MODEL names another (e.g. while the shipped one is re-exported)
MODEL = os.environ.get("INKSTREAM_TEST_MODEL") or None


@pytest.fixture(scope="module")
def rec():
    return StreamingRecognizer(MODEL, endpoint=OFFLINE)


@pytest.fixture(scope="module")
def samples():
    c = load_corpus(FIXTURE)
    return [(np.asarray(c.points(i), np.float64), str(c.texts[i])) for i in range(len(c))]


def _stream(rec, pts, bursts):
    """Feed ``pts`` in the given burst sizes (cycled), decoding after each; returns the final result."""
    s = rec.create_stream()
    a, k = 0, 0
    while a < len(pts):
        n = bursts[k % len(bursts)]
        s.accept_samples(pts[a:a + n])
        rec.decode_stream(s)
        a, k = a + n, k + 1
    s.input_finished()
    rec.decode_stream(s)
    return rec.get_result(s)


def test_streaming_one_point_at_a_time_equals_offline(rec, samples):
    for pts, _ in samples:
        offline = rec.recognize(pts)
        streamed = _stream(rec, pts, [1])
        assert streamed.is_final and offline.is_final
        assert streamed.text == offline.text
        assert streamed.num_frames == offline.num_frames
        assert [c.frame for c in streamed.chars] == [c.frame for c in offline.chars]
        assert _stream(rec, pts, [2, 7, 1, 30]).text == offline.text


def test_streaming_equals_offline_with_the_beam_decoder(samples):
    beam = StreamingRecognizer(MODEL, decoder="beam", endpoint=OFFLINE, decoder_options={"beam_width": 4})
    for pts, _ in samples[:3]:
        assert _stream(beam, pts, [3]).text == beam.recognize(pts).text


@pytest.mark.shared
def test_streaming_equals_offline_on_shared_iamondb_lines(rec):
    path = SHARED / "iamondb" / "val.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data not mounted)")
    c = load_corpus(path)
    for i in range(3):
        pts = np.asarray(c.points(i), np.float64)
        assert _stream(rec, pts, [1]).text == rec.recognize(pts).text


@pytest.fixture(scope="module")
def float_rec():
    return StreamingRecognizer(default_model_path(int8=False), endpoint=OFFLINE)


def test_the_default_model_is_the_int8_copy_stepped_one_frame_per_call(rec, float_rec):
    if MODEL:
        pytest.skip("INKSTREAM_TEST_MODEL names another model")
    assert rec.model.path == str(default_model_path(int8=True)) and rec.model.quantizes_per_call
    assert not float_rec.model.quantizes_per_call


def test_model_step_output_does_not_depend_on_how_frames_are_split_into_calls(rec, samples):
    from runtime.features import extract

    x = extract(samples[0][0], rec.model.feature_config)[None]
    whole = rec.model.step(x, *rec.model.zero_state(1))
    h, c = rec.model.zero_state(1)
    parts = []
    for a, b in ((0, 3), (3, 4), (4, 40), (40, x.shape[1])):
        lp, h, c = rec.model.step(x[:, a:b], h, c)
        parts.append(lp)
    # bit for bit for the int8 default (one frame per call); float kernels may round differently
    tol = 0.0 if rec.model.quantizes_per_call else 1e-5
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole[0], rtol=0, atol=tol)
    np.testing.assert_allclose(h, whole[1], rtol=0, atol=tol)


def test_batched_decode_equals_single(float_rec, samples):
    # the float model: its batch rows are independent. (The int8 default shares activation scales
    # across a batch, so it is not exact there: runtime.model.OnnxModel.step, docs/runtime.md.)
    rec = float_rec
    inks = [pts for pts, _ in samples[:5]]
    bursts = [1, 2, 3, 5, 8]  # every stream its own rhythm, so pending frame counts differ
    singles = [_stream(rec, pts, [b]) for pts, b in zip(inks, bursts)]
    streams = [rec.create_stream() for _ in inks]
    pos = [0] * len(inks)
    while any(p < len(pts) for p, pts in zip(pos, inks)):
        for k, (s, pts) in enumerate(zip(streams, inks)):
            if pos[k] < len(pts):
                s.accept_samples(pts[pos[k]:pos[k] + bursts[k]])
                pos[k] += bursts[k]
        rec.decode_streams(streams)
    for s in streams:
        s.input_finished()
    rec.decode_streams(streams)
    for s, single in zip(streams, singles):
        got = rec.get_result(s)
        assert got.text == single.text and got.chars == single.chars and got.is_final


def test_alignment_points_into_the_ink(rec, samples):
    for pts, _ in samples:
        res = rec.recognize(pts)
        strokes = int((pts[:, 3] > 0.5).sum())
        prev_end = 0
        for ch in res.chars:
            assert prev_end <= ch.sample_end <= len(pts) and ch.sample_start <= ch.sample_end
            assert all(0 <= k < strokes for k in ch.strokes)
            prev_end = ch.sample_end
        assert "".join(c.char for c in res.chars) == res.text


def _onnx():
    return pytest.importorskip("onnx", reason="building test ONNX files needs the onnx package")


def test_a_file_without_metadata_is_refused(tmp_path):
    onnx = _onnx()
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain", [x], [y])
    path = tmp_path / "plain.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match="not an inkstream model.*model_type"):
        StreamingRecognizer(path)


def test_another_format_version_is_refused(tmp_path):
    onnx = _onnx()
    m = onnx.load(MODEL or str(default_model_path()))
    for p in m.metadata_props:
        if p.key == "format_version":
            p.value = "99"
    path = tmp_path / "future.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelFileError, match="format_version '99'"):
        StreamingRecognizer(path)


def test_usage_errors_are_clear(rec, samples):
    s = rec.create_stream()
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        s.accept_samples(np.zeros((3, 2)))
    s.input_finished()
    with pytest.raises(RuntimeError, match="input_finished"):
        s.accept_samples(samples[0][0][:2])
    with pytest.raises(ValueError, match="decoder must be"):
        StreamingRecognizer(MODEL, decoder="nope")
    with pytest.raises(FileNotFoundError):
        StreamingRecognizer("/nonexistent/model.onnx")


def test_pause_endpoint_and_reset(samples):
    rec = StreamingRecognizer(MODEL, endpoint=EndpointConfig(long_pause_s=0.5, line_break=False))
    pts = samples[0][0]
    s = rec.create_stream()
    s.accept_samples(pts)
    rec.decode_stream(s)
    last_t = float(pts[-1, 2])
    has_text = bool(rec.get_result(s).text)
    assert not rec.is_endpoint(s, now=last_t + 0.1)
    assert rec.is_endpoint(s, now=last_t + 0.6) == has_text  # a pause ends a line only after some text
    rec.reset(s)
    assert s.samples == 0 and rec.get_result(s).text == "" and not s.finished


def _session(rec, samples, n_lines):
    """``n_lines`` one-line fixture samples written one below the other by one writer, as one ink."""
    from runtime.features import FeatureExtractor

    single_lines = [3, 5, 7, 8, 6]  # fixture samples that are one written line each
    lines, t0, top = [], 0.0, 0.0
    for k in range(n_lines):
        pts = samples[single_lines[k % len(single_lines)]][0].copy()
        fx = FeatureExtractor(rec.model.feature_config)
        fx.accept(pts)
        pts[:, :2] = (pts[:, :2] - pts[:, :2].min(axis=0)) * (100.0 / fx.scale())  # one writer's size
        pts[:, 1] += top
        top = pts[:, 1].max() + 150.0  # the next line starts below this one
        pts[:, 2] += t0
        t0 = pts[-1, 2] + 0.3
        lines.append(pts)
    return lines


def test_a_long_session_writes_line_after_line_with_bounded_state(samples):
    """Ten lines written one below the other, fed 2 samples at a time: each new line is noticed
    when its first stroke starts far left and below, the stream is reset, and no state grows."""
    rec = StreamingRecognizer(MODEL, endpoint=EndpointConfig(pause_s=1e9, long_pause_s=1e9))
    lines = _session(rec, samples, 10)
    session = np.concatenate(lines)
    s = rec.create_stream()
    ends, biggest = 0, 0
    for a in range(0, len(session), 2):
        s.accept_samples(session[a:a + 2])
        rec.decode_stream(s)
        biggest = max(biggest, s.samples, len(s.frame_samples))
        if rec.is_endpoint(s):
            ends += 1
            rec.reset(s)
            rec.decode_stream(s)
    assert ends == 9  # nine line breaks between ten lines
    assert biggest <= max(len(p) for p in lines)


def _line_lengths(rec, session, bursts):
    """Samples per line when ``session`` is fed in ``bursts`` (cycled; 0 = all the rest)."""
    s, out, a, k = rec.create_stream(), [], 0, 0
    while a < len(session):
        n = bursts[k % len(bursts)] or len(session)
        s.accept_samples(session[a:a + n])
        a, k = a + n, k + 1
        while s.held_back is not None:
            out.append(s.samples)
            rec.reset(s)
    s.input_finished()
    return out + [s.samples]


def test_line_breaks_do_not_depend_on_chunking(samples):
    rec = StreamingRecognizer(MODEL, endpoint=EndpointConfig(pause_s=1e9, long_pause_s=1e9))
    lines = _session(rec, samples, 3)
    session = np.concatenate(lines)
    want = [len(p) for p in lines]
    for bursts in ([0], [1], [2], [7, 3, 1], [50]):
        assert _line_lengths(rec, session, bursts) == want, bursts


class _GuardedRecognizer(StreamingRecognizer):
    """Fails if the shared endpoint config is assigned after construction."""

    @property
    def endpoint(self):
        return self._endpoint

    @endpoint.setter
    def endpoint(self, value):
        assert not hasattr(self, "_endpoint"), "the recognizer's shared endpoint config was changed"
        self._endpoint = value


def test_streams_own_their_endpoint_config_and_recognize_leaves_it_alone(samples):
    line_breaks = EndpointConfig(pause_s=1e9, long_pause_s=1e9)
    rec = _GuardedRecognizer(MODEL, endpoint=line_breaks)
    session = np.concatenate(_session(rec, samples, 2))
    s, quiet = rec.create_stream(), rec.create_stream(OFFLINE)
    assert s.endpoint is line_breaks and quiet.endpoint is OFFLINE
    res = rec.recognize(session)  # offline: one result over every sample, no line split
    assert res.num_samples == len(session) and res.is_final
    assert rec.endpoint is line_breaks
    quiet.accept_samples(session)
    assert quiet.held_back is None and quiet.samples == len(session)
    rec.reset(quiet)
    assert quiet.endpoint is OFFLINE  # reset keeps the stream's own config


def test_malformed_samples_leave_the_stream_unchanged_also_while_a_line_is_held_back(samples):
    rec = StreamingRecognizer(MODEL, endpoint=EndpointConfig(pause_s=1e9, long_pause_s=1e9))
    lines = _session(rec, samples, 2)
    session = np.concatenate(lines)
    s = rec.create_stream()
    bad = session[:40].copy()
    bad[30, 1] = np.nan  # in a later stroke of the chunk
    with pytest.raises(ValueError, match="sample 30 has a non-finite"):
        s.accept_samples(bad)
    assert s.samples == 0 and s.features.samples_seen == 0
    for a in range(0, len(session), 2):
        s.accept_samples(session[a:a + 2])
        if s.held_back is not None:
            break
    held = s.held_back.copy()
    with pytest.raises(ValueError, match="non-finite"):
        s.accept_samples([[1.0, np.inf, 2.0, 0.0]])
    assert np.array_equal(s.held_back, held)
    rec.reset(s)  # nothing lost, nothing raised
    assert s.held_back is None and s.samples == len(held)


def _edited_model(tmp_path, **meta):
    onnx = _onnx()
    m = onnx.load(MODEL or str(default_model_path()))
    for p in m.metadata_props:
        if p.key in meta:
            p.value = meta[p.key]
    path = tmp_path / "edited.onnx"
    onnx.save(m, str(path))
    return path


@pytest.mark.parametrize("key, value", [
    ("alphabet", "not json"),
    ("alphabet", "[1, 2]"),
    ("alphabet", json.dumps("aa")),
    ("blank_id", "1"),
    ("num_features", "8"),
    ("hidden_size", "32"),  # the graph's h and c say otherwise
    ("num_layers", "2"),
    ("feature_config", "3"),
    ("num_classes", "x"),
])
def test_bad_or_contradicting_metadata_is_refused_at_load_naming_the_key(tmp_path, key, value):
    with pytest.raises(ModelFileError, match=f"'{key}'"):
        StreamingRecognizer(_edited_model(tmp_path, **{key: value}))


def test_a_corpus_with_an_object_array_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, points=np.zeros((2, 4), np.float32), offsets=np.array([0, 2]),
             texts=np.array(["a", None], dtype=object), ids=np.array(["i"]), writers=np.array(["w"]),
             units_per_mm=np.ones(1, np.float32), kind=np.array(["line"]))
    with pytest.raises(InkFormatError, match="pickled.npz"):
        load_corpus(path)


def _cli(argv):
    if MODEL and argv[0] == "eval":
        argv = argv + ["--model", MODEL]
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(argv)
    return code, out.getvalue().strip().splitlines()


def test_eval_cli_reports_json_and_streaming_matches_whole_feeding():
    code, lines = _cli(["eval", str(FIXTURE), "--json", "--limit", "4"])
    assert code == 0
    res = json.loads(lines[-1])
    assert {"cer", "wer", "samples", "chars"} <= set(res) and res["samples"] == 4
    assert 0 <= res["wer"] <= 1 and res["chars"] > 0 and res["pen_samples"] > 0
    _, whole = _cli(["eval", str(FIXTURE), "--json", "--limit", "4", "--burst", "0"])
    assert json.loads(whole[-1])["char_errors"] == res["char_errors"]
    _, val = _cli(["eval", str(FIXTURE), "--json", "--split", "val"])
    assert json.loads(val[-1])["samples"] == 8  # the fixture holds 8 val and 2 train samples


def test_eval_cli_reads_an_iamondb_root_with_forms():
    root = ROOT / "tests" / "fixtures" / "ink" / "iamondb_root"
    code, lines = _cli(["eval", str(root), "--forms", str(root / "forms.txt"), "--json"])
    assert code == 0 and json.loads(lines[-1])["samples"] >= 1


def test_eval_cuts_a_sample_that_wraps_into_lines_and_reads_a_line_as_one(rec, samples, tmp_path):
    """A sample of kind "text" may wrap over several written lines: ``inkstream eval`` reads it as
    a live pen would, cut by the device's endpoint rules into lines joined by a space. A sample of
    kind "line" is one line by definition and is read whole, unless the rules are asked for."""
    from runtime.evaluate import evaluate
    from runtime.ink import Ink, save_corpus

    # three one-line samples written one below the other, as float32 as the corpus file holds them
    lines = [line.astype(np.float32).astype(np.float64) for line in _session(rec, samples, 3)]
    ink = np.concatenate(lines)
    texts = [rec.recognize(line).text for line in lines]
    whole = rec.recognize(ink).text
    assert whole != " ".join(texts)  # read as one line, a three-line ink reads otherwise
    for kind in ("text", "line"):
        save_corpus(tmp_path / f"{kind}.npz", [Ink.from_points(ink, text="reference", id="s0", writer="w")], kind=kind)

    def hypotheses(kind, endpoints):
        got = []
        res = evaluate(rec, [tmp_path / f"{kind}.npz"], endpoints=endpoints, on_sample=lambda i, r, h: got.append(h))
        return got, res["samples_with_rules"], res["samples_cut"]

    assert hypotheses("text", "auto") == ([" ".join(texts)], 1, 1)
    assert hypotheses("line", "auto") == ([whole], 0, 0)
    assert hypotheses("line", True) == ([" ".join(texts)], 1, 1)
    assert hypotheses("text", False) == ([whole], 0, 0)
    with pytest.raises(ValueError, match="endpoints"):
        evaluate(rec, [tmp_path / "text.npz"], endpoints="sometimes")
    code, out = _cli(["eval", str(tmp_path / "text.npz"), "--no-endpoints", "--json"])
    assert code == 0 and json.loads(out[-1])["samples_with_rules"] == 0
    code, out = _cli(["eval", "--endpoints", str(tmp_path / "line.npz"), "--json"])  # the path is not its value
    assert code == 0 and json.loads(out[-1])["samples_cut"] == 1
    # a kind written otherwise ("Line ") is still one line
    save_corpus(tmp_path / "Line.npz", [Ink.from_points(ink, text="reference", id="s0", writer="w")], kind="Line ")
    assert evaluate(rec, [tmp_path / "Line.npz"])["samples_with_rules"] == 0
    # time stamps in milliseconds: every pen lift looks like a long pause; counted, and eval warns
    in_ms = ink.copy()
    in_ms[:, 2] *= 1000
    save_corpus(tmp_path / "ms.npz", [Ink.from_points(in_ms, text="reference", id="s0", writer="w")], kind="text")
    assert evaluate(rec, [tmp_path / "ms.npz"])["samples_time_suspect"] == 1
    assert evaluate(rec, [tmp_path / "text.npz"])["samples_time_suspect"] == 0
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "eval", str(tmp_path / "ms.npz"), "--decoder",
                        "greedy"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "milliseconds?" in r.stderr


def test_recognize_lines_reads_a_page_line_by_line_with_alignments_into_the_whole_ink(rec, samples):
    """Three lines written one below the other: one result per line, each the same text and
    alignment as the line recognised alone, with sample and stroke indices moved to where the line
    starts in the whole ink; in bursts of 2 as a serial reader feeds them, the same."""
    lines = _session(rec, samples, 3)
    ink = np.concatenate(lines)
    page = rec.recognize_lines(ink, EndpointConfig())  # the device's rules (this recognizer's are OFFLINE)
    assert [r.text for r in page] == [rec.recognize(line).text for line in lines]
    assert sum(r.num_samples for r in page) == len(ink) and all(r.is_final for r in page)
    first = strokes = 0
    for res, line in zip(page, lines):
        alone = rec.recognize(line)
        assert [(c.char, c.sample_start + first, c.sample_end + first, tuple(k + strokes for k in c.strokes))
                for c in alone.chars] == [(c.char, c.sample_start, c.sample_end, c.strokes) for c in res.chars]
        first, strokes = first + len(line), strokes + int((line[:, 3] > 0.5).sum())
    assert [(r.text, r.chars) for r in rec.recognize_lines(ink, EndpointConfig(), burst=2)] == [(r.text, r.chars) for r in page]
    one = rec.recognize_lines(lines[0], EndpointConfig())
    # a pen-up pause longer than long_pause_s ends the line there, as in the live loop, whatever the bursts
    ink = lines[0].copy()
    lift = int(np.flatnonzero(ink[:, 3] > 0.5)[len(np.flatnonzero(ink[:, 3] > 0.5)) // 2])
    ink[lift + 1:, 2] += 40.0
    paused = [[(r.text, r.num_samples) for r in rec.recognize_lines(ink, EndpointConfig(), burst=b)] for b in (0, 2, 7)]
    assert len(paused[0]) >= 2 and paused[0][0][1] == lift + 1 and paused[1] == paused[0] == paused[2]
    assert sum(n for _, n in paused[0]) == len(ink)
    assert len(rec.recognize_lines(ink, EndpointConfig(long_pause_s=60.0))) == 1
    with pytest.raises(ValueError, match="sample 5"):
        bad = ink.copy(); bad[5, 0] = np.nan
        rec.recognize_lines(bad)
    assert len(one) == 1 and one[0].text == rec.recognize(lines[0]).text and one[0].chars == rec.recognize(lines[0]).chars


def test_edge_modules_do_not_import_torch_or_onnx():
    """Every module of the edge install (runtime.*, firmware_bridge.*), imported in a fresh process."""
    code = ("import importlib, pkgutil, sys, runtime, firmware_bridge\n"
            "mods = [m.name for p in (runtime, firmware_bridge) for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.')]\n"
            "for m in mods: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'wordfreq'))\n"
            "print(' '.join(mods)); print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    mods, bad = out.stdout.splitlines()
    assert {"runtime.recognizer", "runtime.app.recognize", "runtime.app.cli", "runtime.lm", "runtime.app.ui.server",
            "runtime.app.ui.session", "runtime.app.sources", "firmware_bridge.sources",
            "firmware_bridge.emulator"} <= set(mods.split())
    assert bad == ""


def test_a_pen_that_is_never_lifted_makes_bounded_lines_whatever_the_chunking():
    """max_line_samples ends a line that never pauses or breaks: the samples after it start the
    next line (held back like a line break), for any chunking of the input."""
    rec = StreamingRecognizer(MODEL, decoder="greedy", endpoint=EndpointConfig(max_line_samples=500))
    t = np.arange(1700) * 0.005
    pts = np.column_stack([np.cos(t * 9) * 300 + t * 40, np.sin(t * 13) * 200, t, np.zeros_like(t)])  # one stroke
    for chunk in (1, 7, 1700):
        s, lines = rec.create_stream(), []
        for a in range(0, len(pts), chunk):
            s.accept_samples(pts[a:a + chunk])
            while rec.is_endpoint(s):
                lines.append(s.samples)
                rec.reset(s)
        lines.append(s.samples)
        assert lines == [500, 500, 500, 200], (chunk, lines)
    assert EndpointConfig().max_line_samples == 20_000 and OFFLINE.max_line_samples == float("inf")


def test_a_pause_mid_line_does_not_end_it_but_a_new_line_after_a_pause_does():
    """The demo's "easy exams": the writer paused 1.9 s between the words, then went on to the
    right: one line. The same ink written again below it after a pause: a second line."""
    from runtime.app.sources import DEMO_SAMPLES

    corpus = load_corpus(DEMO_SAMPLES)
    index = [str(t) for t in corpus.texts].index("easy exams")
    pts = corpus.points(index).astype(np.float64)
    ends = np.flatnonzero(pts[:-1, 3] > 0.5)
    assert (pts[ends + 1, 2] - pts[ends, 2]).max() > 1.5  # the pause is in the ink
    below = pts.copy()
    below[:, 1] += 3 * np.ptp(pts[:, 1])
    below[:, 2] += pts[-1, 2] + 2.0
    rec = StreamingRecognizer(MODEL, decoder="greedy")  # the default endpoint rules
    s, lines = rec.create_stream(), []
    for a in range(0, len(pts) * 2, 2):
        s.accept_samples(np.concatenate([pts, below])[a:a + 2])
        rec.decode_stream(s)
        # while the pen is up, 1.9 s pass before the next sample comes (a live source asks then)
        now = None if s.pen_up_since is None else s.pen_up_since + 1.9
        while rec.is_endpoint(s, now=now):
            lines.append(s.samples)
            rec.reset(s)
            now = None
    lines.append(s.samples)
    assert lines == [len(pts), len(pts)]


def test_error_rates_count_words_and_marks_not_where_a_corpus_puts_spaces():
    """IAM-OnDB sets punctuation apart, the other corpora do not: with split_punctuation on both
    sides, the same writing scores the same however its reference is spaced, and a wrong mark is
    still an error."""
    from runtime.metrics import ErrorCounter, split_punctuation

    assert split_punctuation("Mr. Foot's line,  a") == "Mr . Foot ' s line , a"
    raw, apart = ErrorCounter(), ErrorCounter(split_punctuation)
    for counter in (raw, apart):
        counter.add("Left-wing support , a large majority", "Left-wing support, a large majority")
    assert raw.word_errors == 2 and raw.char_errors == 1  # "support," for "support" and ","
    assert apart.word_errors == 0 and apart.char_errors == 0 and apart.words == 8
    apart.add("support , a", "support. a")
    assert apart.word_errors == 1 and apart.char_errors == 1


def test_error_rates_ignore_layout_and_typographic_marks_the_ink_does_not_show():
    """A line break in a transcription (the reader joins lines with a space), spaces at the ends,
    and curly quotes or dashes (written as the model's ASCII marks) are no errors; a wrong
    character still is."""
    from runtime.metrics import ErrorCounter, canonical_text

    assert canonical_text(" \u201cIt\u2019s\u201d \u2014 one\nline\u00a0 more ") == '"It\'s" - one line more'
    counter = ErrorCounter()
    counter.add("It\u2019s a \u201cpage\u201d\nof two lines ", "It's a \"page\" of two lines")
    assert counter.char_errors == counter.word_errors == 0 and counter.words == 6
    counter.add("caf\u00e9", "cafe")
    assert counter.char_errors == 1
    # where line breaks are the point (eval --paragraphs: a wrong cut), they still count
    as_given = ErrorCounter(canonical=False)
    as_given.add("one line\nand the next", "one line and the next")
    assert as_given.char_errors == 1
