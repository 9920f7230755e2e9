"""``inkstream demo --no-ui``: the emulated tablet on a real pty, read by the bridge's serial
reader thread, recognised as it arrives. Recognised text is checked against offline
recognition of the rows the demo received, never against a fixed string."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from runtime.ink import load_corpus, save_corpus
from runtime.recognizer import StreamingRecognizer
from runtime.app.ui.demo import run_terminal
from runtime.app.sources import DEMO_SAMPLES

REPO = Path(__file__).resolve().parent.parent
TEST_MODEL = os.environ.get("INKSTREAM_TEST_MODEL")  # default: the shipped model


def test_shipped_samples_are_small_and_attributed():
    corpus = load_corpus(DEMO_SAMPLES)
    assert 3 <= len(corpus) and DEMO_SAMPLES.stat().st_size < 200_000
    assert all(text.isprintable() and text for text in corpus.texts)
    attribution = (DEMO_SAMPLES.parent / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "10.5281/zenodo.1195803" in attribution


def test_demo_no_ui_replays_every_sample_through_the_pty(tmp_path):
    subset = tmp_path / "three.npz"
    corpus = load_corpus(DEMO_SAMPLES)
    save_corpus(subset, [corpus[i] for i in range(3)], kind="text")
    recognizer = StreamingRecognizer(TEST_MODEL)
    out = io.StringIO()
    result = run_terminal(str(subset), speed=8.0, out=out, recognizer=recognizer)

    assert result.lines, out.getvalue()
    assert sum(len(line["rows"]) for line in result.lines) == result.rows_received
    if result.bytes_dropped_unread == 0 and result.bytes_corrupted == 0:
        assert result.rows_received == result.rows_expected  # nothing lost on the wire
        assert not result.serial_errors
    else:
        assert result.serial_errors  # whatever was lost, the bridge counted it
    for line in result.lines:  # streaming over the serial path == offline on the same rows
        assert line["text"] == recognizer.recognize(np.array(line["rows"])).text
    printed = out.getvalue()
    assert f"{result.samples_received}/{result.samples_sent} pen samples received" in printed
    finals = printed.splitlines()
    assert all(line["text"] in finals for line in result.lines)  # each final line printed on its own


def test_demo_command_line_exits_after_the_replay(tmp_path):
    subset = tmp_path / "one.npz"
    save_corpus(subset, [load_corpus(DEMO_SAMPLES)[5]], kind="text")
    args = [sys.executable, "-m", "runtime.app.cli", "demo", "--no-ui", "--speed", "10", "--samples", str(subset)]
    if TEST_MODEL:
        args += ["--model", TEST_MODEL]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "emulated tablet on /dev/pts/" in done.stdout
    assert "inkstream demo: done, " in done.stdout and "pen samples received" in done.stdout


def test_the_demo_tells_the_truth_beside_what_it_read():
    """Each sample's truth is printed once all its lines are in, with the running CER; a sample
    read as two lines counts as their join, one read as nothing as an empty hypothesis."""
    from runtime.app.ui.demo import TruthTeller

    out = io.StringIO()
    teller = TruthTeller(["easy exams", "ab", "cd"], [10, 5, 4], out)
    teller.line({"text": "easy", "rows": [[0]] * 6})
    assert out.getvalue() == ""  # 4 of the first sample's rows are still to come
    teller.line({"text": "exams", "rows": [[0]] * 4})
    assert out.getvalue() == "    truth: 'easy exams', read 'easy exams'  (running CER 0.0 % over 1 samples)\n"
    teller.line({"text": "xb", "rows": [[0]] * 5})
    teller.finish()  # "cd" was never read
    lines = out.getvalue().splitlines()
    assert lines[1] == "    truth: 'ab', read 'xb'  (running CER 8.3 % over 2 samples)"
    assert lines[2] == "    truth: 'cd', read ''  (running CER 21.4 % over 3 samples)"
