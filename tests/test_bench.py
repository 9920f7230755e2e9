"""``inkstream bench`` and what it reads: the bench ink, the packaged Identity graph and delay ink
(each re-made by its generator), the torch twin, the typed report and its JSON keys, and the
emission-delay measurement on cases whose answer is known, with the real model."""
import io
import json
import os
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

from runtime.app.bench import (PEN_RATE_HZ, BenchReport, ChunkCost, DecoderFigures, EmissionDelay,
                               StreamsCost, TorchStep, batched_stream_cost, bench_ink, delay_ink, emission_delay,
                               line_delays, matched_positions, rss_mb, streamed_texts, torch_step_us)
from runtime.app.cli import main as cli_main
from runtime.app.config import AppConfig, DecoderConfig
from runtime.ink import load_corpus
from runtime.model import default_model_path
from runtime.recognizer import OFFLINE, StreamingRecognizer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "runtime" / "samples"
# the shipped model unless INKSTREAM_TEST_MODEL names another (e.g. while the shipped one is re-exported)
MODEL = os.environ.get("INKSTREAM_TEST_MODEL") or None


@pytest.fixture(scope="module")
def greedy():
    return StreamingRecognizer(MODEL, decoder="greedy", endpoint=OFFLINE)


# ---- the bench ink ------------------------------------------------------------------------------
def test_bench_ink_is_the_demo_handwriting_at_200_hz_in_its_writers_time():
    """The bench's pen moves as fast as the writer's did: each stroke re-sampled at 200 Hz (by the
    bridge's resampler) lasts as long as the original stroke to one 5 ms sample, starts where it
    started, and ends with a pen lift."""
    from firmware_bridge.replay import resample_points, split_strokes

    demo = load_corpus(str(SAMPLES / "unipen_demo.npz"))
    original = np.asarray(demo.points(0), np.float64)
    ends = np.flatnonzero(original[:, 3] > 0.5)
    starts = np.r_[0, ends[:-1] + 1]
    strokes = split_strokes(resample_points(original, PEN_RATE_HZ))
    assert len(strokes) == len(ends)
    for s, a, b in zip(strokes, starts, ends):
        assert abs((len(s) - 1) / PEN_RATE_HZ - (original[b, 2] - original[a, 2])) <= 1 / PEN_RATE_HZ
        assert np.allclose(s[0, :2], original[a, :2]) and s[-1, 3] == 1.0 and not s[:-1, 3].any()
    # twice the demo's 100 Hz: every 10 ms interval of the original gets two 5 ms samples
    assert np.median(np.diff(original[:, 2])) == pytest.approx(0.01, abs=1e-4)
    assert abs(sum(len(s) - 1 for s in strokes) - 2 * sum(b - a for a, b in zip(starts, ends))) <= len(strokes)
    pts, source = bench_ink(600)
    assert "demo" in source and pts.shape == (600, 4)
    assert np.allclose(np.diff(pts[:, 2]), 1 / PEN_RATE_HZ)
    lifts = np.flatnonzero(pts[:, 3] > 0.5)
    assert lifts[-1] == 599 and np.array_equal(lifts[:-1] + 1, np.cumsum([len(s) for s in strokes])[:len(lifts) - 1])
    # the first phrase, scaled to the bench's height, is the resampled stroke geometry
    first = np.concatenate(strokes)[:, :2]
    scale = 100.0 / np.ptp(first[:, 1])
    assert np.allclose(pts[:len(strokes[0]), :2], (strokes[0][:, :2] - first.min(axis=0)) * scale)


def test_batched_bench_streams_write_their_own_ink_and_refuse_too_little(greedy):
    ink, _ = bench_ink(400)
    decode_us, features_us = batched_stream_cost(greedy, ink, 3, 50)  # 3 streams of 100 samples each
    assert decode_us > 0 and features_us > 0
    with pytest.raises(ValueError, match="pen samples of ink"):
        batched_stream_cost(greedy, ink, 3, 199)  # 398 samples a stream leave no room for 3 offsets


# ---- packaged files and their generators ----------------------------------------------------------
def test_the_packaged_identity_graph_runs_in_onnxruntime():
    import onnxruntime as ort

    sess = ort.InferenceSession(str(SAMPLES / "identity.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": np.array([3.5], np.float32)})[0].tolist() == [3.5]


def test_the_packaged_identity_graph_is_what_its_generator_writes():
    pytest.importorskip("onnx")
    from export.identity_graph import IDENTITY_PATH, identity_model

    assert IDENTITY_PATH == SAMPLES / "identity.onnx"
    assert identity_model().SerializeToString() == IDENTITY_PATH.read_bytes()


def test_the_packaged_delay_ink_is_what_its_generator_writes():
    pytest.importorskip("wordfreq")
    from training.delay_ink import DEFAULT_COUNT, DEFAULT_PATH, delay_ink_samples

    assert DEFAULT_PATH == SAMPLES / "delay_ink.npz"
    lines, source = delay_ink()
    assert len(lines) == DEFAULT_COUNT and f"{DEFAULT_COUNT} synthetic lines" in source
    assert DEFAULT_PATH.stat().st_size <= 200 * 1024
    for line, sample in zip(lines[:3], delay_ink_samples(3)):
        assert line.text == sample.text
        assert np.allclose(line.points, sample.points.astype(np.float32), rtol=0, atol=1e-6)
        assert np.array_equal(line.glyphs, sample.glyphs)
        # every glyph (non-space character) has ink, and the lines are at the bench's pen rate
        assert set(line.glyphs.tolist()) == set(range(len(line.text.replace(" ", ""))))
        in_stroke = np.diff(line.points[:, 2])[line.points[:-1, 3] < 0.5]
        assert np.allclose(in_stroke, 1 / PEN_RATE_HZ, atol=1e-5)


def test_synthetic_glyph_indices_follow_the_writing():
    """Glyph k is the k-th non-space character: in a print font every glyph has samples, the
    glyphs start in text order, and a glyph's samples outside its own run are marks written
    later (the dot of an i or j, the bar of a t, after the word)."""
    pytest.importorskip("wordfreq")
    from training.synthetic import SynthConfig, SyntheticInk

    ink = SyntheticInk(SynthConfig(kind="line", fonts=("ems-readability",)), seed=5)
    for index in range(3):
        sample = ink.sample_info(index)
        g = sample.glyphs
        glyphs = sample.text.replace(" ", "")
        assert len(g) == len(sample.points) and set(g.tolist()) == set(range(len(glyphs)))
        first = [int(np.flatnonzero(g == k)[0]) for k in range(len(glyphs))]
        assert first == sorted(first)
        for k, char in enumerate(glyphs):
            own = np.flatnonzero(g == k)
            runs = np.flatnonzero(np.diff(own) > 1)
            if len(runs):  # a glyph written in two goes: the second after the glyphs that follow it
                assert own[runs[0] + 1] > first[min(k + 1, len(glyphs) - 1)], (sample.text, char)


# ---- the torch twin -----------------------------------------------------------------------------
def test_torch_twin_of_the_onnx_model_matches_it():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    path = MODEL or str(default_model_path())
    us, parity, note = torch_step_us(path, repeats=1)
    assert us is not None and parity < 1e-4, note
    if ".int8" in Path(path).name:
        assert "float original" in note


def test_torch_twin_reads_an_export_whose_layers_share_weights(tmp_path):
    """An untrained model's layers have equal biases, which the exporter stores once and passes
    to the other layers through Identity nodes; the twin (through training.onnx_import) still
    finds every layer's weights, for the float file and, through its float original, the int8 one."""
    pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from export.onnx_export import export_checkpoint
    from export.size_sweep import untrained_checkpoint
    from export.torch_twin import torch_twin, twin_step

    exported = export_checkpoint(untrained_checkpoint(2, 16, tmp_path / "untrained.pt"), tmp_path)
    graph = onnx.load(exported["onnx"])
    assert any(n.op_type == "Identity" for n in graph.graph.node)  # the shared bias this test is about
    model, path = torch_twin(exported["int8"])
    assert path == Path(exported["onnx"]) and model.config.num_layers == 2 and model.config.hidden_size == 16
    for file in (exported["onnx"], exported["int8"]):
        step, parity, note = twin_step(file)
        step()
        assert parity < 1e-4, note
    (tmp_path / "model.onnx").unlink()
    us, parity, note = torch_step_us(exported["int8"], repeats=1)
    assert us is None and "model.onnx" in note  # no float original beside it: skipped, with the reason


def test_graph_bench_rebuilds_the_model_as_a_scan_that_computes_the_same():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from export.bench_graphs import run_bench

    lines = []
    res = run_bench(str(default_model_path(int8=False)), log=lines.append)  # the float graph it rebuilds
    assert res["scan_parity"] < 1e-4
    assert set(res[1]) >= {"lstm-op", "scan-matmul"} and all(v > 0 for v in res[64].values())
    assert len(lines) == 4


# ---- emission delay -----------------------------------------------------------------------------
def test_matched_positions_pair_only_equal_characters_of_a_minimal_alignment():
    assert matched_positions("abc", "abc") == [(0, 0), (1, 1), (2, 2)]
    assert matched_positions("axc", "abc") == [(0, 0), (2, 2)]  # a substitution pairs nothing
    assert matched_positions("ac", "abc") == [(0, 0), (1, 2)]  # a deletion shifts what follows
    assert matched_positions("aXbc", "abc") == [(0, 0), (2, 1), (3, 2)]  # an insertion too
    assert matched_positions("", "abc") == [] and matched_positions("abc", "") == []


def test_line_delays_on_a_built_case():
    """Truth "ab cd": glyphs a b c d end at 0.10, 0.20, 0.30, 0.40 s. The streamed text shows "a"
    at 0.15; "ab" at 0.25; "abX" at 0.35 (a wrong c: 'X'); "ab c" at 0.45; "ab cx" at 0.50; the
    final text, "ab cq", only appears after input_finished. So a shows at 0.15 (+50 ms), b at 0.25
    (+50), the space is not a glyph, c at 0.45 (its position held 'X' before: +150), d is read
    wrong (not counted)."""
    truth = "ab cd"
    ends = np.array([0.10, 0.20, 0.30, 0.40])
    changes = [(0.15, "a"), (0.25, "ab"), (0.35, "abX"), (0.45, "ab c"), (0.50, "ab cx")]
    delays, not_shown = line_delays(changes, "ab cq", truth, ends, finish_t=2.0)
    assert np.allclose(delays, [0.05, 0.05, 0.15]) and not_shown == 0
    # a character that only the final result holds: shown at finish_t, and not shown at pen-up
    delays, not_shown = line_delays(changes, "ab cd", truth, ends, finish_t=2.0)
    assert np.allclose(delays, [0.05, 0.05, 0.15, 1.6]) and not_shown == 1
    # shown, then revised away, then back: it counts from when it came back to stay
    changes = [(0.15, "a"), (0.25, "ab"), (0.30, "aB"), (0.42, "ab"), (0.45, "ab c"), (0.5, "ab cd")]
    delays, not_shown = line_delays(changes, "ab cd", truth, ends, finish_t=2.0)
    assert np.allclose(delays, [0.05, 0.22, 0.15, 0.10]) and not_shown == 0
    # a glyph without pen samples (NaN end) is not counted
    delays, _ = line_delays(changes, "ab cd", truth, np.array([0.10, np.nan, 0.30, 0.40]), finish_t=2.0)
    assert np.allclose(delays, [0.05, 0.15, 0.10])


def test_emission_delay_with_the_real_model_matches_greedys_append_only_text():
    """The plain best path (greedy without its never-empty rule, which may replace a first guess)
    only ever appends, so its character at position j is shown, to stay, the first time the text
    is longer than j: an independent way to the same delays."""
    best_path = StreamingRecognizer(MODEL, decoder="greedy", endpoint=OFFLINE, decoder_options={"never_empty": False})
    lines, _ = delay_ink()
    checked = 0
    for line in lines[:4]:
        changes, final = streamed_texts(best_path, line.points)
        assert all(b.startswith(a) for (_, a), (_, b) in zip(changes, changes[1:]))
        assert final.startswith(changes[-1][1])
        # a text is shown when its burst of 2 is complete: at the time stamp of the burst's last sample
        burst_ends = np.r_[line.points[1::2, 2], line.points[-1, 2]]
        assert all(np.any(burst_ends == t) for t, _ in changes)
        ends = line.glyph_ends()
        delays, not_shown = line_delays(changes, final, line.text, ends, finish_t=99.0)
        expected = []
        glyph_of = np.cumsum([not c.isspace() for c in line.text]) - 1
        for j, i in matched_positions(final, line.text):
            if line.text[i] != " ":
                shown = next((t for t, text in changes if len(text) > j), 99.0)
                expected.append(shown - ends[glyph_of[i]])
        assert len(delays) == len(expected) > 0 and np.allclose(delays, expected)
        assert not_shown == sum(e > 50 for e in expected)
        checked += len(delays)
    assert checked >= 20


def test_emission_delay_follows_the_pen_clock(greedy):
    """The features ignore time stamps, so a pause of 0.5 s inserted into a line's clock changes
    no text, only when things happen: a character whose glyph ends before the pause and that is
    shown after it is 0.5 s later; every other character's delay is unchanged. The pause goes
    inside one character's delay."""
    lines, _ = delay_ink()
    line = lines[1]
    changes, final = streamed_texts(greedy, line.points)
    ends = line.glyph_ends()
    before, _ = line_delays(changes, final, line.text, ends, finish_t=99.0)
    glyph_of = np.cumsum([not c.isspace() for c in line.text]) - 1
    counted = [glyph_of[i] for j, i in matched_positions(final, line.text) if line.text[i] != " "]
    t = line.points[:, 2]
    # the pause goes before an even sample (a burst boundary, so the bursts stay the same) after
    # the glyph's last sample and no later than the last sample of the burst that shows it
    spans = [(int(np.flatnonzero(line.glyphs == g)[-1]), int(np.searchsorted(t, ends[g] + b))) for b, g in zip(before, counted)]
    which = next(k for k, (last, shown) in enumerate(spans) if last + 1 + (last + 1) % 2 <= shown)
    cut = spans[which][0] + 1 + (spans[which][0] + 1) % 2
    t_cut = t[cut]
    assert ends[counted[which]] < t_cut <= ends[counted[which]] + before[which]
    paused = line.points.copy()
    paused[cut:, 2] += 0.5
    after_changes, final_after = streamed_texts(greedy, paused)
    assert final == final_after and [c[1] for c in changes] == [c[1] for c in after_changes]
    after_ends = np.array([np.max(paused[line.glyphs == k, 2]) for k in range(len(ends))])
    after, _ = line_delays(after_changes, final, line.text, after_ends, finish_t=99.5)
    expected = [b + 0.5 * (int(b + ends[g] >= t_cut) - int(ends[g] >= t_cut)) for b, g in zip(before, counted)]
    assert len(after) == len(before) > 0 and np.allclose(after, expected)
    assert after[which] == pytest.approx(before[which] + 0.5)


def test_emission_delay_pools_the_lines(greedy):
    lines, _ = delay_ink()
    e = emission_delay(greedy, lines[:3])
    assert isinstance(e, EmissionDelay) and e.glyphs == sum(len(l.text.replace(" ", "")) for l in lines[:3])
    assert 0 < e.chars <= e.glyphs and e.p50_ms <= e.p90_ms and 0.0 <= e.not_shown_at_pen_up <= 1.0
    everything = []
    for line in lines[:3]:
        changes, final = streamed_texts(greedy, line.points)
        d, _ = line_delays(changes, final, line.text, line.glyph_ends(), float(line.points[-1, 2]) + 1.5)
        everything += d
    assert len(everything) == e.chars and e.p50_ms == pytest.approx(1e3 * np.median(everything))
    assert emission_delay(greedy, []).p50_ms is None


# ---- the report and the command -----------------------------------------------------------------
# the JSON keys tests/edge_install_check.sh and readers of older runs rely on
OLD_KEYS = {
    "model", "decoder", "bench_ink", "pen_samples", "frames", "frames_per_sample", "frames_per_second", "rounds",
    "per_sample_us_chunk1", "per_sample_us_chunk4", "per_sample_us_chunk16", "per_frame_us_chunk1",
    "per_frame_us_chunk4", "per_frame_us_chunk16", "floor_us_per_frame", "step_us_1frame",
    "step_us_1frame_ort_values", "ort_call_overhead_us", "rerun_600_s", "stream_600_s", "ratio_vs_rerun",
    "per_stream_us_1", "per_stream_us_16", "per_stream_us_256", "features_us_per_burst_1", "features_us_per_burst_16",
    "features_us_per_burst_256", "streams_1_over_256", "model_us_per_stream_256", "model_1_over_256", "rtf_200hz",
    "rtf_200hz_greedy", "rtf_200hz_beam", "per_sample_us_beam_chunk2", "rss_mb", "torch_step_us_1frame",
    "torch_parity_max_abs_diff", "torch_note", "ratio_vs_torch", "chunk1_over_floor_per_sample_plus_2_calls",
    "chunk4_over_floor_per_sample", "chunk1_over_floor_per_frame_plus_2_calls", "chunk4_over_floor_per_frame",
    "targets",
}


def _report(torch_us=None):
    delay = EmissionDelay(40.0, 150.0, 0.0, 90, 120)
    return BenchReport(
        model="m.onnx", decoder="beam", decoder_options={"beam_width": 4}, bench_ink="ink", pen_samples=600,
        frames=60, rounds=3, chunks={c: ChunkCost(10.0 * c, 100.0 * c) for c in (1, 4, 16)}, floor_us_per_frame=50.0,
        step_us_1frame=200.0, step_us_1frame_ort_values=None, ort_call_overhead_us=5.0, rerun_600_s=1.0,
        stream_600_s=0.006, ratio_vs_rerun=166.0, streams={n: StreamsCost(100.0 / n, 3.0) for n in (1, 16, 256)},
        streams_1_over_256=8.0, model_us_per_stream_256=20.0, model_1_over_256=9.0,
        decoders={"beam": DecoderFigures(0.008, delay), "greedy": DecoderFigures(0.004, delay)}, delay_ink="24 lines",
        rss_mb=80.0, torch=TorchStep(torch_us, 1e-6 if torch_us else None, "torch not installed"),
        chunk1_over_floor_per_sample_plus_2_calls=0.9, chunk4_over_floor_per_sample=2.5,
        chunk1_over_floor_per_frame_plus_2_calls=0.1, chunk4_over_floor_per_frame=0.3)


def test_the_report_prints_the_old_json_keys_and_the_emission_delay():
    report = _report()
    out = json.loads(json.dumps(report.to_json()))
    assert OLD_KEYS <= set(out)
    assert out["frames_per_sample"] == pytest.approx(0.1) and out["frames_per_second"] == pytest.approx(20.0)
    assert out["per_sample_us_chunk4"] == 40.0 and out["per_stream_us_256"] == pytest.approx(100 / 256)
    assert out["rtf_200hz"] == 0.008 and out["rtf_200hz_greedy"] == 0.004
    assert out["per_sample_us_beam_chunk2"] == pytest.approx(0.008 / 200 * 1e6)
    assert out["ratio_vs_torch"] is None and _report(torch_us=400.0).to_json()["ratio_vs_torch"] == 2.0
    for name in ("greedy", "beam"):
        assert out[f"emission_delay_p50_ms_{name}"] == 40.0 and out[f"emission_delay_p90_ms_{name}"] == 150.0
        assert out[f"not_shown_at_pen_up_{name}"] == 0.0 and out[f"emission_delay_chars_{name}"] == 90
    assert out["emission_delay_glyphs"] == 120 and out["decoder_options"] == {"beam_width": 4}
    assert out["targets"] == {"chunk1 <= floor*frames_per_sample + 2 call overheads": True,
                              "chunk4 <= 2 x floor*frames_per_sample": False,
                              "chunk1 <= floor per frame + 2 call overheads": True,
                              "chunk4 <= 2 x floor per frame": True, "rtf_200hz < 0.01": True,
                              "ratio_vs_rerun >= 100": True, "per_stream_us_1 / per_stream_us_256 >= 5": True}


def test_the_text_report_reads_the_figures():
    from runtime.app.bench import report_text

    lines = []
    report_text(_report(), log=lines.append)
    text = "\n".join(lines)
    assert "torch comparison skipped: torch not installed" in text
    assert "p50 40 ms, p90 150 ms; not shown at pen-up 0.0 % (90 of 120 characters" in text
    assert "[MISSED] chunk4 <= 2 x floor*frames_per_sample: 2.5" in text


def test_bench_takes_the_decoder_flags_of_the_config_tree():
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli_main(["bench", "--decoder", "greedy", "--beam-width", "4"])
    assert code == 2 and "--beam-width only applies to --decoder beam" in err.getvalue()


def test_the_memory_figure_loads_the_same_decoder_with_the_same_options(tmp_path):
    """The fresh process builds the recognizer from the same config: a beam whose LM file does not
    exist fails there (no figure), the same beam with the shipped LM gives one."""
    assert rss_mb(AppConfig(model=MODEL, decoder=DecoderConfig.of("greedy"), endpoint=OFFLINE)) > 0
    missing = str(tmp_path / "no_such_lm.npz")
    assert rss_mb(AppConfig(model=MODEL, decoder=DecoderConfig.of("beam", lm_path=missing), endpoint=OFFLINE)) is None
    assert rss_mb(AppConfig(model=MODEL, decoder=DecoderConfig.of("beam", beam_width=4), endpoint=OFFLINE)) > 0

