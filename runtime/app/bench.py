"""``inkstream bench``: what the streaming runtime costs, as ratios against floors measured in the same run,
and how long after a character is written it appears.

Absolute times on a shared machine are noise; ratios measured side by side are not. One run
measures, on the recognizer of the config tree (``--model``, ``--decoder`` and its options, as in
``inkstream eval``), in rounds that take turns (the streaming costs, the floors, the re-run
baseline, the real-time factors; then the batched streams in blocks that take turns), so both
sides of the ratios between them see the same machine: figures are medians over the rounds, and
those ratios and the targets medians of per-round ratios. The emission delay, the torch step and
the memory are measured once, at the end. :func:`run_bench` returns a :class:`BenchReport`;
``--json`` prints :meth:`BenchReport.to_json` (the key names below):

* ``per_sample_us_chunk{1,4,16}``: the whole streaming path (features, onnxruntime, the decoder)
  per pen sample when samples arrive 1, 4 or 16 at a time;
* ``floor_us_per_frame``: the same ONNX graph run on one 64-frame chunk, per frame (the
  arithmetic floor); ``ort_call_overhead_us``: one ``session.run`` of a trivial Identity graph
  from Python (the packaged ``runtime/samples/identity.onnx``, written by
  :mod:`export.identity_graph`: the edge install has no ``onnx`` package);
* ``ratio_vs_torch``: a torch eager step (one frame, state carried) of the model with the ONNX
  file's own weights (:mod:`export.torch_twin`), over the ONNX step (null, with the reason in
  ``torch_note``, when torch or onnx is not installed);
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
  decoder; ``rtf_200hz_greedy``, ``rtf_200hz_beam`` and ``rtf_200hz_word`` give each decoder;
* ``emission_delay_p50_ms_{greedy,beam,word}``, ``emission_delay_p90_ms_*``: on the packaged synthetic
  lines whose glyph boundaries are known (``runtime/samples/delay_ink.npz``, written by
  :mod:`training.delay_ink`), fed at their own 200 Hz time stamps in bursts of 2, the time from a
  glyph's last pen sample to the burst after which its character is shown and stays (the
  character at its position of the streamed text never changes again); ``not_shown_at_pen_up_*``
  the share of those characters not yet shown when the pen lifts at the end of the line (before
  ``input_finished``); ``emission_delay_chars_*`` how many characters were counted, of
  ``emission_delay_glyphs`` (see :func:`emission_delay`). The delay is on the pen's clock: the
  compute time is not in it (the real-time factor is);
* ``rss_mb``: resident memory of a fresh process that loaded the same recognizer (decoder and
  options) and decoded a line.

The ink (:func:`bench_ink`) is real handwriting re-sampled at 200 Hz in its writer's own time:
features make about 0.1 frames per pen sample of it (``frames_per_sample``), 20-22 frames per
second of pen-down writing (``frames_per_second``), so per-sample and per-frame figures differ;
the targets are reported like with like and as the issue words them (see ``TARGETS``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import operator
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from firmware_bridge.replay import resample_points, split_strokes
from runtime.app.config import AppConfig, DecoderConfig, add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.features import extract
from runtime.ink import load_corpus
from runtime.recognizer import OFFLINE, EndpointConfig, StreamingRecognizer

PROG = "inkstream bench"

# the targets: (name in the JSON, the BenchReport attribute it reads, how it compares, the limit)
TARGETS = (
    # like with like: the floor converted to a pen sample (this model reads fewer frames than samples)
    ("chunk1 <= floor*frames_per_sample + 2 call overheads", "chunk1_over_floor_per_sample_plus_2_calls", "<=", 1),
    ("chunk4 <= 2 x floor*frames_per_sample", "chunk4_over_floor_per_sample", "<=", 2),
    # the wording, which takes one frame per sample: the per-frame floor against a pen sample
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
CHUNKS = (1, 4, 16)
STREAM_COUNTS = (1, 16, 256)
COMPARED_DECODERS = ("greedy", "beam", "word")  # the real-time factor and the emission delay are given for each


# ---- bench ink --------------------------------------------------------------------------------
def bench_ink(num_points: int = 600) -> tuple[np.ndarray, str]:
    """``num_points`` pen samples at 200 Hz of real handwriting, as ``(n, 4)`` x, y, t, pen_up_after.

    The packaged demo phrases, each re-sampled at 200 Hz along its own time stamps
    (:func:`firmware_bridge.replay.resample_points`: the pen moves as fast as the writer's did,
    about 20 frames per second of pen-down writing, like IAM-OnDB's real-time lines), scaled to one
    height (the devices' units differ 20-fold, and the features' running scale would carry one
    phrase's size into the next), placed side by side on one line and repeated to length. The time
    between strokes is *not* counted: ``t`` advances 5 ms a sample, so the ink lasts
    ``num_points / 200`` seconds, the pen-down time alone, and a real-time factor over it is an
    upper bound. Without the packaged samples: a synthetic cursive-like line (loops with a pen lift
    every 60 points)."""
    try:
        path = resources.files("runtime.samples").joinpath("unipen_demo.npz")
        corpus = load_corpus(str(path))
        if len(corpus) == 0:
            raise ValueError(f"{path.name} holds no samples")  # -> the synthetic line below
        pieces, total, shift = [], 0, 0.0
        i = 0
        while total < num_points:
            strokes = [s[:, :2] for s in split_strokes(resample_points(corpus.points(i % len(corpus)), PEN_RATE_HZ))]
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


# ---- emission delay ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DelayLine:
    """A line of the delay ink: ``points`` ``(n, 4)`` x, y, t, pen_up_after; ``text`` its truth;
    ``glyphs`` per pen sample the index of the non-space character of ``text`` it belongs to."""

    points: np.ndarray
    text: str
    glyphs: np.ndarray

    def glyph_ends(self) -> np.ndarray:
        """Per glyph (non-space character of the text), the time of its last pen sample; NaN for
        a glyph that has none."""
        ends = np.full(sum(not c.isspace() for c in self.text), -np.inf)
        np.maximum.at(ends, self.glyphs, self.points[:, 2])
        return np.where(np.isfinite(ends), ends, np.nan)


def delay_ink() -> tuple[list[DelayLine], str]:
    """The packaged lines with known glyph boundaries (``runtime/samples/delay_ink.npz``, written by
    :func:`training.delay_ink.write_delay_ink`) and a description of them. Raises ``ValueError``
    when the file lacks the per-sample ``glyphs`` or they do not fit the texts."""
    path = resources.files("runtime.samples").joinpath("delay_ink.npz")
    corpus = load_corpus(str(path))
    glyphs = corpus.field("glyphs")
    if glyphs is None or len(glyphs) != corpus.offsets[-1]:
        raise ValueError(f"{path.name}: needs a 'glyphs' array with one entry per pen sample")
    lines = []
    for i in range(len(corpus)):
        text = str(corpus.texts[i])
        g = np.asarray(glyphs[corpus.offsets[i]:corpus.offsets[i + 1]], np.int64)
        if len(g) and (g.min() < 0 or g.max() >= sum(not c.isspace() for c in text)):
            raise ValueError(f"{path.name}: line {i} has glyph indices beyond its text {text!r}")
        lines.append(DelayLine(np.asarray(corpus.points(i), np.float64), text, g))
    return lines, f"{len(lines)} synthetic lines ({path.name})"


def streamed_texts(rec: StreamingRecognizer, points: np.ndarray, burst: int = BURST) -> tuple[list, str]:
    """What a reader shows while ``points`` stream in ``burst``-sample bursts (decode and
    get_result after each): ``[(t, text), ...]`` each time the text changes, ``t`` the time stamp of
    the burst's last sample; and the final text (after ``input_finished``)."""
    s = rec.create_stream(OFFLINE)
    changes: list = []
    for a in range(0, len(points), burst):
        chunk = points[a:a + burst]
        s.accept_samples(chunk)
        rec.decode_stream(s)
        text = rec.get_result(s).text
        if not changes or changes[-1][1] != text:
            changes.append((float(chunk[-1, 2]), text))
    s.input_finished()
    rec.decode_stream(s)
    return changes, rec.get_result(s).text


def matched_positions(hyp: str, ref: str) -> list[tuple[int, int]]:
    """``(j, i)`` for every character ``hyp[j]`` that is ``ref[i]`` in a minimal edit alignment of
    ``hyp`` to ``ref`` (a substituted, inserted or deleted character has no pair)."""
    n, m = len(hyp), len(ref)
    d = [[j + i if j == 0 or i == 0 else 0 for i in range(m + 1)] for j in range(n + 1)]
    for j in range(1, n + 1):
        for i in range(1, m + 1):
            d[j][i] = min(d[j - 1][i] + 1, d[j][i - 1] + 1, d[j - 1][i - 1] + (hyp[j - 1] != ref[i - 1]))
    pairs, j, i = [], n, m
    while j > 0 and i > 0:
        if hyp[j - 1] == ref[i - 1] and d[j][i] == d[j - 1][i - 1]:
            pairs.append((j - 1, i - 1))
            j, i = j - 1, i - 1
        elif d[j][i] == d[j - 1][i - 1] + 1:
            j, i = j - 1, i - 1
        elif d[j][i] == d[j - 1][i] + 1:
            j -= 1
        else:
            i -= 1
    return pairs[::-1]


def line_delays(changes: Sequence, final: str, truth: str, glyph_ends: np.ndarray,
                finish_t: float) -> tuple[list[float], int]:
    """``(delays in seconds, how many of them were not shown at pen-up)`` of one line's counted
    characters: those of ``final`` that the alignment to ``truth`` pairs with an equal non-space
    character whose glyph has pen samples. A character's delay runs from its glyph's last sample
    (``glyph_ends``, indexed by non-space character of ``truth``) to the first entry of ``changes``
    (:func:`streamed_texts`) from which on every entry holds ``final``'s character at its position;
    one that only the final result holds is shown at ``finish_t`` and was not shown at pen-up."""
    glyph_of = np.cumsum([not c.isspace() for c in truth]) - 1
    delays, not_shown = [], 0
    for j, i in matched_positions(final, truth):
        if truth[i].isspace() or not np.isfinite(glyph_ends[glyph_of[i]]):
            continue
        shown = finish_t
        for t, text in reversed(changes):
            if len(text) <= j or text[j] != final[j]:
                break
            shown = t
        not_shown += not changes or len(changes[-1][1]) <= j or changes[-1][1][j] != final[j]
        delays.append(shown - glyph_ends[glyph_of[i]])
    return delays, not_shown


@dataclass(frozen=True)
class EmissionDelay:
    """How long after a character is written it appears (see :func:`emission_delay`)."""

    p50_ms: Optional[float]  # None when no character was counted
    p90_ms: Optional[float]
    not_shown_at_pen_up: Optional[float]  # share of the counted characters
    chars: int  # characters counted
    glyphs: int  # characters written (non-space characters of the truths)


def emission_delay(rec: StreamingRecognizer, lines: Sequence[DelayLine]) -> EmissionDelay:
    """The delay from a glyph's last pen sample to the first time its character is shown and stays,
    over ``lines`` fed at their own time stamps in bursts of 2 (a 200 Hz serial reader), pooled.

    Only characters that the final text gets right count (:func:`line_delays`). A character that
    is not shown before the pen lifts at the end of its line is shown when a live session ends the
    line, the default endpoint pause after the last sample; it counts in ``not_shown_at_pen_up``.
    A character can show before its glyph's last sample (an i before its dot): its delay is negative.
    """
    pause_s = EndpointConfig().pause_s
    delays, not_shown, glyphs = [], 0, 0
    for line in lines:
        ends = line.glyph_ends()
        glyphs += len(ends)
        if not len(line.points):
            continue
        changes, final = streamed_texts(rec, line.points)
        d, n = line_delays(changes, final, line.text, ends, float(line.points[-1, 2]) + pause_s)
        delays += d
        not_shown += n
    if not delays:
        return EmissionDelay(None, None, None, 0, glyphs)
    p50, p90 = np.percentile(np.array(delays) * 1e3, [50, 90])
    return EmissionDelay(float(p50), float(p90), not_shown / len(delays), len(delays), glyphs)


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
    samples at a time (the last entry is input_finished + the final decode, and the final result
    with ``with_result``)."""
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
    if with_result:
        rec.get_result(s)  # the final result: the decoder's second pass, where it has one
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
    """Median microseconds of one ``session.run`` of the packaged ``y = Identity(x)`` graph."""
    import onnxruntime as ort

    from runtime.model import session_options

    graph = resources.files("runtime.samples").joinpath("identity.onnx").read_bytes()
    sess = ort.InferenceSession(graph, session_options(), providers=["CPUExecutionProvider"])
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


def torch_step_us(model_path: str, repeats: int) -> tuple[Optional[float], Optional[float], str]:
    """A torch eager one-frame step of the model's weights (:func:`export.torch_twin.twin_step`):
    ``(median us, parity with onnxruntime, note)``; ``(None, None, reason)`` when torch or onnx is
    not installed or the file cannot be read into a twin."""
    for name, why in (("torch", ""), ("onnx", " (needed to read the weights)")):
        if importlib.util.find_spec(name) is None:
            return None, None, f"{name} not installed{why}"
    from export.torch_twin import twin_step

    try:
        step, parity, note = twin_step(model_path)
    except (ValueError, OSError) as exc:
        return None, None, str(exc)
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
import json, sys
from runtime.app.bench import bench_ink
from runtime.app.config import AppConfig, DecoderConfig
from runtime.recognizer import OFFLINE
spec = json.loads(sys.argv[1])
config = AppConfig(model=spec["model"], decoder=DecoderConfig(spec["decoder"], tuple(map(tuple, spec["options"]))),
                   endpoint=OFFLINE, threads=spec["threads"])
rec = config.build_recognizer()
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


def rss_mb(config: AppConfig) -> Optional[float]:
    """Resident memory (MB) of a fresh Python process that built ``config``'s recognizer (the same
    model, decoder and decoder options, so the beam's language model counts) and decoded a line."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the source tree, when not installed
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    spec = json.dumps({"model": config.model, "decoder": config.decoder.name, "options": config.decoder.options,
                       "threads": config.threads})
    try:
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, spec], capture_output=True, text=True,
                             env=env, timeout=120, check=True).stdout
        return float(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


# ---- the report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkCost:
    """Streaming with pen samples arriving ``chunk`` at a time (features, model, decoder)."""

    per_sample_us: float
    per_frame_us: float


@dataclass(frozen=True)
class StreamsCost:
    """``decode_streams`` over concurrent writers."""

    per_stream_us: float  # per stream per frame decoded
    features_us_per_burst: float  # per stream


@dataclass(frozen=True)
class DecoderFigures:
    """What one decoder costs and how late it shows characters."""

    rtf_200hz: float
    emission: EmissionDelay


@dataclass(frozen=True)
class TorchStep:
    """The torch twin's one-frame step (:func:`torch_step_us`)."""

    us: Optional[float]  # None: skipped, ``note`` says why
    parity_max_abs_diff: Optional[float]
    note: str


@dataclass(frozen=True)
class BenchReport:
    """Every figure of one bench run (see the module docstring); :meth:`to_json` gives the JSON line."""

    model: str
    decoder: str
    decoder_options: dict
    bench_ink: str
    pen_samples: int
    frames: int
    rounds: int
    chunks: dict  # chunk size (CHUNKS) -> ChunkCost
    floor_us_per_frame: float
    step_us_1frame: float
    step_us_1frame_ort_values: Optional[float]
    ort_call_overhead_us: float
    rerun_600_s: float
    stream_600_s: float
    ratio_vs_rerun: float
    streams: dict  # number of streams (STREAM_COUNTS) -> StreamsCost
    streams_1_over_256: float
    model_us_per_stream_256: float
    model_1_over_256: float
    decoders: dict  # decoder name -> DecoderFigures; the chosen decoder and those of COMPARED_DECODERS that load
    delay_ink: str
    rss_mb: Optional[float]
    torch: TorchStep
    chunk1_over_floor_per_sample_plus_2_calls: float
    chunk4_over_floor_per_sample: float
    chunk1_over_floor_per_frame_plus_2_calls: float
    chunk4_over_floor_per_frame: float

    @property
    def frames_per_sample(self) -> float:
        return self.frames / max(self.pen_samples, 1)

    @property
    def frames_per_second(self) -> float:
        return self.frames_per_sample * PEN_RATE_HZ

    @property
    def rtf_200hz(self) -> float:
        return self.decoders[self.decoder].rtf_200hz

    @property
    def ratio_vs_torch(self) -> Optional[float]:
        return self.torch.us / self.step_us_1frame if self.torch.us else None

    @property
    def targets(self) -> dict:
        """Target name (:data:`TARGETS`) -> whether it holds."""
        return {name: _COMPARE[op](getattr(self, attr), limit) for name, attr, op, limit in TARGETS}

    def to_json(self) -> dict:
        """The flat figures under the JSON key names of the module docstring."""
        out = {"model": self.model, "decoder": self.decoder, "decoder_options": self.decoder_options,
               "bench_ink": self.bench_ink, "pen_samples": self.pen_samples, "frames": self.frames,
               "frames_per_sample": self.frames_per_sample, "frames_per_second": self.frames_per_second,
               "rounds": self.rounds}
        for chunk, cost in self.chunks.items():
            out[f"per_sample_us_chunk{chunk}"] = cost.per_sample_us
            out[f"per_frame_us_chunk{chunk}"] = cost.per_frame_us
        for name in ("floor_us_per_frame", "step_us_1frame", "step_us_1frame_ort_values", "ort_call_overhead_us",
                     "rerun_600_s", "stream_600_s", "ratio_vs_rerun"):
            out[name] = getattr(self, name)
        for n, cost in self.streams.items():
            out[f"per_stream_us_{n}"] = cost.per_stream_us
            out[f"features_us_per_burst_{n}"] = cost.features_us_per_burst
        out.update(streams_1_over_256=self.streams_1_over_256, model_us_per_stream_256=self.model_us_per_stream_256,
                   model_1_over_256=self.model_1_over_256, rtf_200hz=self.rtf_200hz)
        for name in COMPARED_DECODERS:
            figures = self.decoders.get(name)
            out[f"rtf_200hz_{name}"] = figures.rtf_200hz if figures else None
        beam = self.decoders.get("beam")
        out["per_sample_us_beam_chunk2"] = beam.rtf_200hz / PEN_RATE_HZ * 1e6 if beam else None
        out["emission_delay_ink"] = self.delay_ink
        out["emission_delay_glyphs"] = next((f.emission.glyphs for f in self.decoders.values()), 0)
        for name in COMPARED_DECODERS:
            emission = self.decoders[name].emission if name in self.decoders else None
            out[f"emission_delay_p50_ms_{name}"] = emission.p50_ms if emission else None
            out[f"emission_delay_p90_ms_{name}"] = emission.p90_ms if emission else None
            out[f"not_shown_at_pen_up_{name}"] = emission.not_shown_at_pen_up if emission else None
            out[f"emission_delay_chars_{name}"] = emission.chars if emission else None
        out.update(rss_mb=self.rss_mb, torch_step_us_1frame=self.torch.us,
                   torch_parity_max_abs_diff=self.torch.parity_max_abs_diff, torch_note=self.torch.note,
                   ratio_vs_torch=self.ratio_vs_torch)
        for name in ("chunk1_over_floor_per_sample_plus_2_calls", "chunk4_over_floor_per_sample",
                     "chunk1_over_floor_per_frame_plus_2_calls", "chunk4_over_floor_per_frame"):
            out[name] = getattr(self, name)
        out["targets"] = self.targets
        return out


# ---- the run ----------------------------------------------------------------------------------
def run_bench(config: AppConfig = AppConfig(endpoint=OFFLINE), quick: bool = False, log=print) -> BenchReport:
    """All measurements of the module docstring on ``config``'s recognizer.

    The streaming figures use ``config``'s decoder; the real-time factor and the emission delay
    are also measured for the other decoders of :data:`COMPARED_DECODERS` with their default
    options (a decoder that cannot load, such as a beam without its LM file, is left out with a
    line in the log). What is compared with what (streaming against the floors and against
    re-running, the real-time factors of the decoders) is measured in rounds that take turns, so a
    machine that speeds up or slows down during the run (shared hosts drift by 2x within minutes)
    moves both sides of a ratio together; each figure is the median over the rounds, and each of
    those ratios the median of its per-round ratios.
    """
    rounds = 3 if quick else 7
    config = dataclasses.replace(config, endpoint=OFFLINE)  # whole lines: the bench applies no endpoints
    rec = config.build_recognizer()
    decoder = config.decoder.name
    recognizers = {decoder: rec}
    for name in COMPARED_DECODERS:
        if name not in recognizers:
            try:
                recognizers[name] = dataclasses.replace(config, decoder=DecoderConfig(name)).build_recognizer()
            except (FileNotFoundError, ValueError) as exc:  # no LM file
                log(f"{name} decoder unavailable: {exc}")
    lines, delay_source = delay_ink()
    pts, source = bench_ink(600)
    frames = rec.recognize(pts).num_frames
    fps = frames / len(pts)
    options = ", ".join(f"{k}={v}" for k, v in config.decoder.options)
    log(f"model {rec.model.path} ({rec.model.info.num_layers}x{rec.model.info.hidden_size}), {decoder} decoder"
        f"{f' ({options})' if options else ''}; bench ink: {source}, {len(pts)} pen samples -> {frames} frames "
        f"({fps:.2f} frames per sample, {fps * PEN_RATE_HZ:.1f} per second of writing); {rounds} rounds")
    for r in recognizers.values():  # warm up every recognizer the rounds use
        for _ in range(2):
            stream_cost(r, pts, 4)
    per_round: dict = {}

    def keep(key, value):
        per_round.setdefault(key, []).append(value)

    for _ in range(rounds):
        for chunk in CHUNKS:
            keep(f"chunk{chunk}", stream_cost(rec, pts, chunk, 3))
        keep("floor", model_step_us(rec, 64, 1))
        keep("step1", model_step_us(rec, 1, 1))
        keep("overhead", ort_call_overhead_us(1))
        keep("rerun", rerun_cost(rec, pts, 10 if quick else 30))
        for name, r in recognizers.items():
            keep(f"rtf_{name}", rtf_200hz(r, pts, 1 if quick else 3))
    med = {k: statistics.median(v) for k, v in per_round.items()}

    def median_ratio(nums, dens):  # the median of the per-round (or per-block) ratios
        return statistics.median(a / b for a, b in zip(nums, dens))

    # batched streams: blocks of rounds that take turns between 1, 16 and 256 streams, so the
    # 1-vs-256 ratio, like the others, compares like with like
    blocks, reps = (2, 150) if quick else (3, 300)  # 150 rounds (300 pen samples) make about 30 frames a stream
    long_ink, _ = bench_ink(6000)
    batched: dict = {n: [] for n in STREAM_COUNTS}
    model_1, model_256 = [], []  # the model alone, in the same blocks: 1 row per call, 256 rows per call
    for _ in range(blocks):
        for n in batched:
            batched[n].append(batched_stream_cost(rec, long_ink, n, reps))
        model_1.append(model_step_us(rec, 1, 1))
        model_256.append(model_step_us(rec, 1, 1, batch=256) / 256)

    # measured once: the emission delay is on the pen's clock, not the machine's
    decoders = {name: DecoderFigures(med[f"rtf_{name}"], emission_delay(r, lines)) for name, r in recognizers.items()}
    rss = rss_mb(config)
    # last: importing torch starts its thread pool, which would disturb everything measured after it
    torch_step = TorchStep(*torch_step_us(rec.model.path, 3 if quick else 9))

    # the targets, each side of a comparison from the same round (see the docstring)
    n = len(pts)
    chunk1 = [t / n * 1e6 for t in per_round["chunk1"]]
    chunk4 = [t / n * 1e6 for t in per_round["chunk4"]]
    fl, ov = per_round["floor"], per_round["overhead"]
    fps = max(fps, 1e-9)  # ink that makes no frame would make every per-sample floor zero
    return BenchReport(
        model=str(rec.model.path), decoder=decoder, decoder_options=config.decoder.kwargs(), bench_ink=source,
        pen_samples=n, frames=frames, rounds=rounds,
        chunks={c: ChunkCost(med[f"chunk{c}"] / n * 1e6, med[f"chunk{c}"] / max(frames, 1) * 1e6) for c in CHUNKS},
        floor_us_per_frame=med["floor"], step_us_1frame=med["step1"],
        step_us_1frame_ort_values=ort_values_step_us(rec, 3 if quick else 9), ort_call_overhead_us=med["overhead"],
        rerun_600_s=med["rerun"], stream_600_s=med["chunk1"],  # streaming = one sample per call
        ratio_vs_rerun=median_ratio(per_round["rerun"], per_round["chunk1"]),
        streams={k: StreamsCost(statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
                 for k, values in batched.items()},
        streams_1_over_256=median_ratio([v[0] for v in batched[1]], [v[0] for v in batched[256]]),
        # the model's own share: one call over 256 rows against one row (one frame each), per row
        model_us_per_stream_256=statistics.median(model_256), model_1_over_256=median_ratio(model_1, model_256),
        decoders=decoders, delay_ink=delay_source, rss_mb=rss, torch=torch_step,
        chunk1_over_floor_per_sample_plus_2_calls=median_ratio(chunk1, [f * fps + 2 * o for f, o in zip(fl, ov)]),
        chunk4_over_floor_per_sample=median_ratio(chunk4, [f * fps for f in fl]),
        chunk1_over_floor_per_frame_plus_2_calls=median_ratio(chunk1, [f + 2 * o for f, o in zip(fl, ov)]),
        chunk4_over_floor_per_frame=median_ratio(chunk4, fl),
    )


def _ms(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def report_text(r: BenchReport, log=print) -> None:
    """The report for a reader, one figure group a line."""
    f, fps, o = r.floor_us_per_frame, r.frames_per_sample, r.ort_call_overhead_us
    log(f"floor (64-frame chunk): {f:.1f} us/frame = {f * fps:.1f} us/pen sample;  "
        f"onnxruntime call overhead: {o:.1f} us")
    for chunk, cost in r.chunks.items():
        log(f"chunk {chunk:>2}: {cost.per_sample_us:7.1f} us/pen sample ({cost.per_frame_us:.1f} us/frame)")
    log(f"per round: chunk 1 = {r.chunk1_over_floor_per_sample_plus_2_calls:.2f}x (floor per sample + 2 calls), "
        f"{r.chunk1_over_floor_per_frame_plus_2_calls:.2f}x (floor per frame + 2 calls); chunk 4 = "
        f"{r.chunk4_over_floor_per_sample:.2f}x floor per sample, {r.chunk4_over_floor_per_frame:.2f}x floor per frame")
    ov = r.step_us_1frame_ort_values
    log(f"model step, 1 frame: {r.step_us_1frame:.1f} us with numpy states"
        + (f", {ov:.1f} us with OrtValue states" if ov else ""))
    if r.ratio_vs_torch:
        log(f"torch eager step: {r.torch.us:.1f} us -> this ONNX model is {r.ratio_vs_torch:.1f}x "
            f"faster (parity {r.torch.parity_max_abs_diff:.1e}; {r.torch.note})")
    else:
        log(f"torch comparison skipped: {r.torch.note}")
    log(f"re-run from scratch per point over {r.pen_samples} points: {r.rerun_600_s:.2f} s vs streaming "
        f"{r.stream_600_s * 1e3:.1f} ms -> {r.ratio_vs_rerun:.0f}x (median of per-round ratios)")
    for n, cost in r.streams.items():
        log(f"{n:>3} streams: {cost.per_stream_us:.1f} us per stream per frame "
            f"(+ {cost.features_us_per_burst:.1f} us features per burst)")
    log(f"1 vs 256 streams: {r.streams_1_over_256:.1f}x cheaper per stream (median of per-block ratios); "
        f"the model alone: {r.model_us_per_stream_256:.1f} us per row in a call of 256 rows, "
        f"{r.model_1_over_256:.1f}x cheaper than a call of one")
    rtfs = ", ".join(f"{name} {figures.rtf_200hz:.4f}" for name, figures in r.decoders.items())
    log(f"real-time factor at 200 Hz (bursts of 2): {r.rtf_200hz:.4f} with the {r.decoder} decoder ({rtfs})")
    log(f"emission delay on {r.delay_ink}, 200 Hz in bursts of 2, glyph's last sample -> shown and stays:")
    for name, figures in r.decoders.items():
        e = figures.emission
        shown = "n/a" if e.not_shown_at_pen_up is None else f"{100 * e.not_shown_at_pen_up:.1f} %"
        log(f"  {name:>6}: p50 {_ms(e.p50_ms)}, p90 {_ms(e.p90_ms)}; not shown at pen-up {shown} "
            f"({e.chars} of {e.glyphs} characters counted: read right)")
    log(f"resident memory after loading and decoding: {r.rss_mb:.0f} MB" if r.rss_mb else "RSS unavailable")
    for (name, holds), (_, attr, _, _) in zip(r.targets.items(), TARGETS):
        log(f"  [{'ok' if holds else 'MISSED'}] {name}: {getattr(r, attr):.4g}")


def configure(parser: argparse.ArgumentParser) -> None:
    add_recognizer_arguments(parser, endpoints=False)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds; noisier)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    parser.add_argument("--sizes", metavar="LxH,...", default=None,
                        help="instead: what models of other shapes (e.g. 3x256,2x128) would cost to stream, "
                             "untrained, exported like the shipped one, greedy (needs the train extra)")
    parser.add_argument("--graphs", action="store_true",
                        help="instead: onnxruntime's LSTM kernel against a Scan of fused MatMul cells built from "
                             "the same weights, and the int8 copy (needs the train extra)")


def run(args) -> int:
    if args.sizes is not None or args.graphs:
        return _run_experiment(args)
    try:
        config = config_from_args(args, endpoint=OFFLINE)
        report = run_bench(config, quick=args.quick)
    except USER_ERRORS as exc:  # a bad model file or option
        return fail(PROG, exc)
    report_text(report)
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def _run_experiment(args) -> int:
    """``--sizes`` and ``--graphs``: the measurements behind the choice of the model's size and graph
    (docs/benchmarks.md); they build models, so they need torch and onnx."""
    try:
        if args.sizes is not None:
            from export.size_sweep import parse_sizes, sweep

            rows = sweep(parse_sizes(args.sizes), args.quick)
        else:
            from export.bench_graphs import run_bench as bench_graphs

            rows = bench_graphs(args.model)
    except ModuleNotFoundError as exc:
        return fail(PROG, f"--sizes and --graphs need the train extra ({exc.name} is missing): "
                          "pip install 'inkstream[train]'")
    except USER_ERRORS as exc:
        return fail(PROG, exc)
    if args.json:
        print(json.dumps(rows))
    return 0
