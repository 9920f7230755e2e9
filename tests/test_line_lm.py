"""The line LM (runtime.neural_lm) and the second pass it gives the beam decoders: a tiny LSTM is
trained here by the real command on a few sentences and read through onnxruntime; the last test
runs the shipped model and line LM."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.alphabet import Alphabet
from runtime.beam import CtcPrefixBeamDecoder
from runtime.lm import CharLanguageModel
from runtime.neural_lm import DEFAULT_NEURAL_LM, NeuralLineLM, lm_text

ROOT = Path(__file__).resolve().parent.parent
TEXT = ["the cat sat on the mat.", "my cat sat on a hat.", "the cat ate, then the cat sat.",
        "a dog sat on the log.", "the cat's hat sat on the mat."]


def _lm_command(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "runtime.app.cli", "lm", "neural", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_line_lm(tmp_path_factory):
    pytest.importorskip("torch", reason="training the line LM needs the train extra (torch)")
    tmp = tmp_path_factory.mktemp("linelm")
    text = tmp / "text.txt"
    text.write_text("\n".join(TEXT * 40) + "\n")
    out = tmp / "tiny.onnx"
    r = _lm_command("--text", text, "--out", out, "--run-dir", tmp / "run", "--hidden-size", 48,
                    "--embedding-size", 16, "--window", 24, "--batch-size", 32, "--lr", 1e-2, "--max-steps", 300,
                    "--eval-every", 100, "--val-fraction", 0.1, "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "bits/char" in r.stdout
    return out


def test_the_lm_reads_both_punctuation_conventions_as_running_text():
    assert lm_text("support , a Mr . Foot ' s  car") == "support, a Mr. Foot's car"
    assert lm_text("don ' t ( see ) it ; yes !") == "don't (see) it; yes!"
    assert lm_text("it's ok, 'quoted' here") == "it's ok, 'quoted' here"  # quotes are left alone
    assert lm_text("caf\u00e9 \t x") == "caf x"  # outside the alphabet: dropped


def test_the_trained_lm_prefers_text_like_its_data(tiny_line_lm):
    lm = NeuralLineLM(tiny_line_lm)
    assert lm.meta["hidden_size"] == "48" and lm.meta["data"] == "text.txt"
    good, bad, tokenised, empty = lm.log_prob(["the cat sat on the mat.", "the cot sat on the mat.",
                                               "the cat sat on the mat .", ""])
    assert good > bad + 2.0
    assert good == pytest.approx(tokenised)  # IAM-OnDB's spacing costs nothing
    assert empty == 0.0 and good < 0.0
    # one text scored alone or among others of other lengths: the padding changes nothing but the
    # int8 file's activation range (quantised per call), a thousandth of a nat here
    assert lm.log_prob(["the cat sat on the mat."])[0] == pytest.approx(good, abs=0.02)
    assert lm.meta["weights"] == "int8"


def test_the_second_pass_rescores_the_final_readings_only(tiny_line_lm):
    from tests.test_word_decoder import _peaked

    alphabet = Alphabet()
    char_lm = CharLanguageModel()
    # the ink favours "cot" a little ("o" 55 %, "a" 45 %)
    lp = _peaked(alphabet, "the cot sat", frames_per_char=1, confusions={5: ("a", 0.45)}, seed=1)
    plain = CtcPrefixBeamDecoder(alphabet, beam_width=16, lm=char_lm, lm_weight=0.0)
    rescoring = CtcPrefixBeamDecoder(alphabet, beam_width=16, lm=char_lm, lm_weight=0.0, line_lm_weight=1.0,
                                     line_lm_char_bonus=0.0, line_lm=NeuralLineLM(tiny_line_lm))
    for dec in (plain, rescoring):
        state = dec.new_state()
        dec.accept(state, lp)
        first = dec.result(state)
        assert first[0] == "the cot sat"
        assert dec.nbest(state, 1)[0][1:] == (first[0], first[1])  # nbest ranks as result() does
        texts = [t for _, t, _ in dec.nbest(state, 8)]
        assert "the cat sat" in texts and len(texts) == 8
    assert plain.final_result(state := plain.new_state()) == plain.result(state)
    state = rescoring.new_state()
    rescoring.accept(state, lp)
    assert rescoring.result(state)[0] == "the cot sat"  # the partial result is the first pass
    text, emissions = rescoring.final_result(state)
    assert text == "the cat sat"
    assert len(emissions) == len(text) and emissions == sorted(emissions)
    assert rescoring.final_result(state) == (text, emissions)  # kept until frames arrive
    # a reading further below the best than line_lm_margin is not rescored
    narrow = CtcPrefixBeamDecoder(alphabet, beam_width=16, lm=char_lm, lm_weight=0.0, line_lm_weight=1.0,
                                  line_lm_margin=0.01, line_lm=rescoring.line_lm)
    state2 = narrow.new_state()
    narrow.accept(state2, lp)
    assert narrow.final_result(state2)[0] == "the cot sat"


def test_a_reading_longer_than_the_cap_keeps_the_first_pass(tiny_line_lm, monkeypatch):
    import runtime.beam
    from tests.test_word_decoder import _peaked

    alphabet = Alphabet()
    lp = _peaked(alphabet, "the cot sat", frames_per_char=1, confusions={5: ("a", 0.45)}, seed=1)
    dec = CtcPrefixBeamDecoder(alphabet, beam_width=16, lm=CharLanguageModel(), lm_weight=0.0, line_lm_weight=1.0,
                               line_lm=NeuralLineLM(tiny_line_lm))
    state = dec.new_state()
    dec.accept(state, lp)
    assert dec.final_result(state)[0] == "the cat sat"
    monkeypatch.setattr(runtime.beam, "LINE_LM_MAX_CHARS", 10)  # "the cot sat" has 11
    state = dec.new_state()
    dec.accept(state, lp)
    assert dec.final_result(state)[0] == "the cot sat"


def test_bad_line_lms_and_options_are_refused(tmp_path, tiny_line_lm):
    with pytest.raises(FileNotFoundError, match="lm neural"):
        NeuralLineLM(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError, match="not a readable ONNX"):
        NeuralLineLM(junk)
    from runtime.model import default_model_path

    with pytest.raises(ValueError, match="not an inkstream line LM"):
        NeuralLineLM(default_model_path())  # the handwriting model is ONNX, but not a line LM
    alphabet = Alphabet()
    with pytest.raises(ValueError, match="line_lm_weight"):
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_weight=-1)
    with pytest.raises(ValueError, match="line_lm_nbest"):
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_weight=1, line_lm_nbest=0,
                             line_lm=NeuralLineLM(tiny_line_lm))
    with pytest.raises(ValueError, match="line_lm_weight must be >= 0 and finite"):
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_weight=float("inf"))
    with pytest.raises(ValueError, match="line_lm_char_bonus"):
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_weight=1, line_lm_char_bonus=-1,
                             line_lm=NeuralLineLM(tiny_line_lm))
    with pytest.raises(ValueError, match="line_lm_weight is 0"):  # a file that would be ignored
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_path=tiny_line_lm)
    with pytest.raises(ValueError, match="line_lm_margin"):
        CtcPrefixBeamDecoder(alphabet, lm_weight=0, line_lm_weight=1, line_lm_margin=0,
                             line_lm=NeuralLineLM(tiny_line_lm))
    refused = _lm_command("--text", tmp_path / "iamondb_val.txt", "--out", tmp_path / "x.onnx", timeout=120)
    assert refused.returncode == 2 and "does not exist" in refused.stderr
    text = tmp_path / "iamondb_train.txt"
    text.write_text("the cat sat.\n")
    refused = _lm_command("--text", text, "--out", tmp_path / "x.onnx", timeout=120)
    assert refused.returncode == 2 and "refusing IAM-OnDB text" in refused.stderr


@pytest.mark.skipif(not DEFAULT_NEURAL_LM.exists(), reason="the shipped line LM is not built")
def test_the_default_recognizer_shows_the_first_pass_while_writing_and_the_second_at_the_end():
    """Real ink (a UNIPEN writer the model never saw), the shipped int8 model and LMs: the first
    pass reads "me basement seems to be ok."; the line LM, once the line has ended, makes it
    "The basement ..."; while the pen moves the first pass is shown."""
    from runtime.recognizer import StreamingRecognizer

    d = np.load(ROOT / "tests" / "fixtures" / "runtime" / "unipen_lines.npz")
    i = list(d["texts"]).index("The basement seems to be O.K .")
    pts = d["points"][d["offsets"][i]:d["offsets"][i + 1]]
    first_pass = StreamingRecognizer(decoder_options={"line_lm_weight": 0})
    assert first_pass.decoder.line_lm is None
    assert first_pass.recognize(pts).text == "me basement seems to be ok."
    rec = StreamingRecognizer()
    assert isinstance(rec.decoder.line_lm, NeuralLineLM)
    s = rec.create_stream()
    for a in range(0, len(pts), 7):
        s.accept_samples(pts[a:a + 7])
        rec.decode_stream(s)
        partial = rec.get_result(s)
        assert not partial.is_final
    assert partial.text.startswith("me basement")
    final = rec.end_line(s)  # flush, decode, the final result, and a fresh line
    assert final.is_final and final.text == "The basement seems to be ok."
    assert s.samples == 0 and rec.get_result(s).text == ""
    assert [a.char for a in final.chars] == list(final.text)  # the stroke alignment follows the new text
    assert all(a.strokes for a in final.chars if a.char != " ")
    assert rec.recognize(pts).text == final.text
