"""``inkstream recognize`` end to end: the real emulator on a real pty, pyserial and the reader
thread, the real ONNX model. The live text must equal offline recognition of the same ink as the
device sends it (scaled and rounded into device units). Waits are bounded loops that fail when
data never comes; ``--max-seconds`` is only a safety net so a broken run cannot hang the suite."""
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.emulator import INKSTREAM_AREA, ISDV4_AREA
from firmware_bridge.replay import fit_to_device
from runtime.ink import load_corpus
from runtime.recognize import LineOutput
from runtime.recognizer import StreamingRecognizer

ROOT = Path(__file__).resolve().parents[1]
WORDS = ROOT / "tests" / "fixtures" / "train" / "unipen_words_48.npz"
TINY = ROOT / "tests" / "fixtures" / "bridge" / "tiny_corpus.npz"
MODEL = os.environ.get("INKSTREAM_TEST_MODEL") or None  # the shipped model unless named
WAIT = 20.0  # seconds before a wait gives up (the run failed), not a timing assertion


def _cli(*args):
    return [sys.executable, "-m", "runtime.cli", *args]


def _recognize_cmd(spec, *extra):
    return _cli("recognize", "--source", spec, "--max-seconds", str(2 * WAIT), *extra,
                *(["--model", MODEL] if MODEL else []))


def _inks(path, n):
    corpus = load_corpus(path)
    return [(corpus.points(i).astype(np.float64), float(corpus.units_per_mm[i])) for i in range(n)]


def _offline(points):
    return StreamingRecognizer(MODEL).recognize(points).text


def _as_device_sends(points, units_per_mm, area):
    """The ink as the emulator reports it: coordinates scaled and rounded into device units."""
    out = points.copy()
    out[:, :2] = fit_to_device(points, units_per_mm, area)
    return out


def _live(protocol, scheme, *emulate_args):
    """Emulator (one word) on a pty, recognizer on the other end; SIGINT once a final line came.
    Returns (records, recognizer stderr, recognizer exit code, emulator stderr)."""
    emulator = subprocess.Popen(_cli("emulate", "--protocol", protocol, "--speed", "20", "--limit", "1",
                                     *emulate_args, str(WORDS)),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    recognizer = None
    try:
        path = emulator.stdout.readline().strip()
        assert path.startswith("/dev/"), emulator.stderr.read()
        recognizer = subprocess.Popen(_recognize_cmd(f"{scheme}:{path}", "--json"), cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        records = []
        for line in recognizer.stdout:  # ends at EOF if the safety net stopped the run
            records.append(json.loads(line))
            if records[-1]["final"]:
                break
        assert emulator.wait(timeout=WAIT) == 0
        recognizer.send_signal(signal.SIGINT)
        out, err = recognizer.communicate(timeout=WAIT)
        records += [json.loads(line) for line in out.splitlines()]
        return records, err, recognizer.returncode, emulator.stderr.read()
    finally:
        for proc in (recognizer, emulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def _sent(emulator_err):
    return int(re.search(r"sent (\d+) samples", emulator_err).group(1))


@pytest.mark.parametrize("protocol,scheme,area", [("inkstream", "serial", INKSTREAM_AREA), ("isdv4", "isdv4", ISDV4_AREA)])
def test_live_text_over_a_pty_equals_offline_recognition_of_the_same_ink(protocol, scheme, area):
    (points, upm), = _inks(WORDS, 1)
    records, err, code, emulator_err = _live(protocol, scheme)
    assert code == 0, err
    finals = [r for r in records if r["final"]]
    assert [r["text"] for r in finals] == [_offline(_as_device_sends(points, upm, area))], err
    # every pen sample arrived, every row went into the one line, and nothing was counted as bad
    assert finals[0]["samples"] == _sent(emulator_err) and finals[0]["rows"] == len(points)
    assert finals[0]["serial_errors"] == 0
    assert all(not r["final"] for r in records[:-1]) and all(r["line"] == 0 for r in records)
    assert f"{scheme}:" in err and "connected" in err and "disconnected" in err  # state changes on stderr


def test_noise_is_counted_and_recognition_keeps_going():
    records, err, code, emulator_err = _live("inkstream", "serial", "--noise", "0.005", "--seed", "3")
    assert code == 0, err
    assert int(re.search(r"(\d+) corrupted", emulator_err).group(1)) > 0
    finals = [r for r in records if r["final"]]
    assert finals and finals[-1]["serial_errors"] > 0 and 0 < finals[-1]["samples"] <= _sent(emulator_err)
    assert re.search(r"from \d+ pen samples, [1-9]\d* serial errors", err)


def test_file_source_gives_one_final_line_per_ink_and_ends_by_itself():
    inks = _inks(TINY, 2)
    proc = subprocess.run(_recognize_cmd(f"file:{TINY}", "--json", "--speed", "inf"),
                          cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr
    finals = [r for r in map(json.loads, proc.stdout.splitlines()) if r["final"]]
    assert [r["text"] for r in finals] == [_offline(p) for p, _ in inks]
    assert [r["rows"] for r in finals] == [len(p) for p, _ in inks]
    assert [r["line"] for r in finals] == [0, 1]


def test_plain_output_prints_partial_hypotheses_and_final_lines():
    proc = subprocess.run(_recognize_cmd(f"file:{TINY}", "--speed", "50"),
                          cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [l for l in lines if not l.startswith("~ ")] == [_offline(p) for p, _ in _inks(TINY, 2)]
    assert "2 lines from 185 pen samples, 0 serial errors" in proc.stderr


def test_terminal_output_rewrites_one_line():
    out = io.StringIO()
    screen = LineOutput(out, tty=True)
    screen.partial("ab", {})
    screen.partial("abc", {})
    screen.final("abcd", {})
    assert out.getvalue() == "\r\x1b[Kab\r\x1b[Kabc\r\x1b[Kabcd\n"


def test_a_bad_source_spec_is_refused_with_a_message():
    proc = subprocess.run(_recognize_cmd("tcp:localhost"), cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 2 and "unknown kind 'tcp'" in proc.stderr and proc.stdout == ""
