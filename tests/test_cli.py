"""The inkstream command line: every subcommand answers --help."""
import subprocess
import sys

import pytest

from runtime.app.cli import SUBCOMMANDS
from conftest import REPO, sigint_as_in_a_terminal


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name):
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", name, "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: inkstream " + name in r.stdout


def test_no_command_prints_help_and_fails():
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "train" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["eval", "no/such/file.npz"], "no/such/file.npz: no such file or folder"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--forms", "README.md"], "--forms"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--model", "README.md"], "README.md: onnxruntime cannot load it"),
    (["eval", "README.md"], "README.md"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--writers", "nobody"], "no writer named 'nobody'"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--writers", ","], "names no writer"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--limit", "0"], "no samples to evaluate"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--line-lm", "no/such/lm.onnx"],
     "line LM no/such/lm.onnx does not exist (build it with `inkstream lm neural`)"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--line-lm", "README.md"], "not a readable ONNX file"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--decoder", "beam", "--line-lm", "README.md"],
     "line_lm_weight is 0"),
])
def test_eval_names_a_bad_input_in_one_line_without_a_traceback(args, message):
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.startswith("inkstream eval: ")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ---- the one config tree (runtime.app.config) every recognising command is built from -------------
RECOGNISING = ("eval", "recognize", "serve", "demo", "bench")


@pytest.mark.parametrize("name", RECOGNISING)
def test_every_recognising_command_takes_the_same_recognizer_flags(name):
    import argparse

    from runtime.app.cli import _load
    from runtime.app.config import DECODER_OPTIONS

    parser = argparse.ArgumentParser()
    _load(name).configure(parser)
    flags = {a for action in parser._actions for a in action.option_strings}
    assert {"--model", "--decoder", "--threads"} <= flags
    assert {o.flag for o in DECODER_OPTIONS} <= flags


def test_config_from_flags_builds_the_recognizer_it_names():
    import argparse

    from runtime.app.config import AppConfig, DecoderConfig, add_recognizer_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_recognizer_arguments(parser)
    config = config_from_args(parser.parse_args(["--decoder", "beam", "--beam-width", "3", "--pause", "0.7"]))
    assert config == AppConfig(decoder=DecoderConfig("beam", (("beam_width", 3),)),
                               endpoint=config.endpoint, threads=1)
    assert config.endpoint.pause_s == 0.7 and config.endpoint.line_break
    rec = config.build_recognizer()
    assert rec.decoder.beam_width == 3 and rec.endpoint.pause_s == 0.7
    with pytest.raises(ValueError, match="--beam-width only applies to --decoder beam"):
        config_from_args(parser.parse_args(["--decoder", "greedy", "--beam-width", "3"]))
    # the second pass: on by default with the word decoder, off with --line-lm-weight 0
    assert config_from_args(parser.parse_args([])).build_recognizer().decoder.line_lm is not None
    off = config_from_args(parser.parse_args(["--line-lm-weight", "0", "--line-lm-nbest", "4"])).build_recognizer()
    assert off.decoder.line_lm is None and off.decoder.line_lm_nbest == 4
    with pytest.raises(ValueError, match="--line-lm-margin only applies to --decoder beam"):
        config_from_args(parser.parse_args(["--decoder", "greedy", "--line-lm-margin", "3"]))
    with pytest.raises(ValueError, match="--pause must be > 0"):
        config_from_args(parser.parse_args(["--pause", "0"]))


@pytest.mark.parametrize("args", [
    ["recognize", "--source", "file:tests/fixtures/runtime/unipen_lines.npz", "--speed", "inf", "--decoder",
     "greedy", "--lexicon-bonus", "1"],
    ["serve", "--source", "serial:/dev/null", "--decoder", "greedy", "--beam-width", "2"],
    ["demo", "--no-ui", "--decoder", "greedy", "--lm-weight", "0.3"],
    ["bench", "--quick", "--decoder", "greedy", "--insertion-bonus", "1"],
])
def test_a_decoder_option_that_does_not_apply_is_refused_the_same_way_everywhere(args):
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "only applies to --decoder beam" in r.stderr and "Traceback" not in r.stderr


def test_recognize_reads_an_emulated_tablet_like_serve():
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "recognize", "--source",
                        "emulator:tests/fixtures/runtime/unipen_lines.npz", "--speed", "20", "--decoder", "greedy"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    finals = [line for line in r.stdout.splitlines() if not line.startswith("~ ")]
    assert finals and "0 serial errors" in r.stderr


def test_eval_of_ink_without_a_transcription_says_so_and_recognize_reads_it(tmp_path):
    ink = tmp_path / "x.inkml"
    ink.write_text("<ink><trace>0 0, 10 10, 20 5</trace></ink>")
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "eval", str(ink)], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "no transcription to score" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "recognize", "--source", f"file:{ink}", "--speed",
                        "inf", "--decoder", "greedy"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "1 lines from 4 pen samples" in r.stderr, r.stderr


def test_ctrl_c_stops_eval_with_one_line():
    import signal
    import time

    data = ["tests/fixtures/runtime/unipen_lines.npz"] * 50  # long enough to be interrupted
    proc = subprocess.Popen([sys.executable, "-m", "runtime.app.cli", "eval", *data, "--verbose"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal)
    try:
        assert proc.stdout.readline()  # evaluating
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == "inkstream eval: interrupted", err


def test_serve_runs_the_page_until_ctrl_c():
    import re
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "runtime.app.cli", "serve", "--source", "browser", "--port", "0",
                             "--decoder", "greedy"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        assert "app.js" in urllib.request.urlopen(url.group(0) + "/", timeout=10).read().decode()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out, err


def test_eval_paragraphs_over_nothing_or_with_filters_that_do_not_apply_is_refused():
    for extra, message in ((["--limit", "0"], "no lines to write"), (["--split", "val"], "--split does not apply"),
                           (["--no-endpoints"], "--no-endpoints does not apply"),
                           (["--endpoints"], "--endpoints does not apply")):
        r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "eval", "tests/fixtures/runtime/unipen_lines.npz",
                            "--paragraphs", "--decoder", "greedy", *extra], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
