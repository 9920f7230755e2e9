"""The word decoder (runtime.word_beam), the word LM reader (runtime.word_lm) and its builder
(training.word_lm): a tiny LM is built here from a few sentences; the user-word test runs the
shipped ONNX model and word LM on a committed UNIPEN sample."""
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from runtime.alphabet import Alphabet
from runtime.lm import CharLanguageModel
from runtime.word_beam import CtcWordBeamDecoder, UserWords
from runtime.word_lm import WordLanguageModel, default_word_lm_path, lm_units, read_arpa, read_word_case
from training.word_lm import build_kneser_ney, count_word_case, write_arpa, write_word_case

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "runtime" / "unipen_lines.npz"

SENTENCES = [
    "the cat sat on the mat .",
    "the cat ate the fish .",
    "a cat sat on a hat .",
    "the dog sat on the log .",
    "my cat sat down , then the cat slept .",
    "the man said that the cat sat there .",
]


def _units(sentences):
    return [lm_units(s) for s in sentences]


@pytest.fixture(scope="module")
def tiny_arpa(tmp_path_factory):
    sents = _units(SENTENCES)
    vocab = sorted({u for s in sents for u in s} | {"cot", "cut"})
    words, grams = build_kneser_ney(sents, vocab, order=3, min_top_count=1)
    path = tmp_path_factory.mktemp("lm") / "tiny.arpa.gz"
    write_arpa(path, words, grams)
    return path


@pytest.fixture(scope="module")
def char_lm():
    return CharLanguageModel()  # the shipped character LM


def _peaked(alphabet, text, frames_per_char=3, confidence=0.9, seed=0, confusions=None):
    """Log-probs that spell ``text`` (blank between characters); ``confusions`` maps a position of
    ``text`` to another character, or ``(character, share)``, that takes ``share`` (default half)
    of the written character's probability there."""
    rng = np.random.default_rng(seed)
    rows = []
    for pos, i in enumerate(alphabet.encode(text)):
        for _ in range(frames_per_char):
            p = rng.dirichlet(np.ones(alphabet.size)) * (1 - confidence)
            if confusions and pos in confusions:
                other, share = confusions[pos] if isinstance(confusions[pos], tuple) else (confusions[pos], 0.5)
                p[i] += confidence * (1 - share)
                p[alphabet.encode(other)[0]] += confidence * share
            else:
                p[i] += confidence
            rows.append(p)
        p = rng.dirichlet(np.ones(alphabet.size)) * (1 - confidence)
        p[0] += confidence
        rows.append(p)
    return np.log(np.array(rows))


def test_lm_units_split_punctuation_and_keep_inner_apostrophes():
    assert lm_units("Mr. Foot's line, however") == ["mr", ".", "foot's", "line", ",", "however"]
    assert lm_units("Mr . Foot ' s") == ["mr", ".", "foot", "'", "s"]
    assert lm_units("'quoted' 1960s") == ["'", "quoted", "'", "1960s"]


def test_kneser_ney_distributions_sum_to_one(tiny_arpa):
    lm = WordLanguageModel(tiny_arpa)
    words, _ = read_arpa(tiny_arpa)
    predicted = [w for w in words if w != "<s>"]
    for context in [(), lm.sentence_start(), (lm.word_id("the"),), (lm.word_id("the"), lm.word_id("cat")),
                    (lm.word_id("fish"), lm.word_id("on"))]:
        total = sum(math.exp(lm.score(context, w)[0]) for w in predicted)
        assert total == pytest.approx(1.0, abs=2e-4), context


def test_word_lm_prefers_seen_continuations_and_scores_unknown_words_as_unk(tiny_arpa):
    lm = WordLanguageModel(tiny_arpa)
    ctx = (lm.word_id("the"),)
    assert lm.score(ctx, "cat")[0] > lm.score(ctx, "cot")[0]
    lp, _, known = lm.score(ctx, "zorblat")
    assert not known and lp == lm.score(ctx, "<unk>")[0]
    assert "cat" in lm and "zorblat" not in lm and "<unk>" not in lm


def test_the_builder_is_reproducible(tmp_path, tiny_arpa):
    sents = _units(SENTENCES)
    vocab = sorted({u for s in sents for u in s} | {"cot", "cut"})
    again = tmp_path / "again.arpa.gz"
    write_arpa(again, *build_kneser_ney(sents, vocab, order=3, min_top_count=1))
    assert again.read_bytes() == Path(tiny_arpa).read_bytes()
    with gzip.open(again, "rt") as f:
        assert f.readline().strip() == "\\data\\"


def test_pruning_keeps_the_arpa_prefix_rule(tmp_path):
    sents = _units(SENTENCES * 2 + ["the cat ran .", "a dog ran ."])
    vocab = sorted({u for s in sents for u in s})
    words, grams = build_kneser_ney(sents, vocab, order=3, min_top_count=3, min_bigram_count=3)
    path = tmp_path / "pruned.arpa"
    write_arpa(path, words, grams)
    _, read = read_arpa(path)  # raises if a trigram's words are missing
    bigrams = {tuple(r) for r in grams[1][0].tolist()}
    for u, v, w in grams[2][0].tolist():
        assert (u, v) in bigrams and (v, w) in bigrams
    assert len(read[2][0]) < len(build_kneser_ney(sents, vocab, order=3, min_top_count=1)[1][2][0])


def test_the_word_lm_picks_the_word_the_context_supports(tiny_arpa, char_lm):
    alphabet = Alphabet()
    word = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, word_weight=1.0)
    no_word_lm = CtcWordBeamDecoder(alphabet, lm=char_lm, word_weight=0, char_swap=0)
    # the acoustics favour "cot" ("the cot sat" with the "o" 10 % an "a")
    lp = _peaked(alphabet, "the cot sat", frames_per_char=1, confusions={5: ("a", 0.1)}, seed=1)
    state = no_word_lm.new_state()
    no_word_lm.accept(state, lp)
    assert no_word_lm.result(state)[0] == "the cot sat"
    state = word.new_state()
    word.accept(state, lp)
    assert word.result(state)[0] == "the cat sat"


def test_out_of_vocabulary_words_come_out(tiny_arpa, char_lm):
    alphabet = Alphabet()
    dec = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    for text in ("the zorblat sat", "Kowalczyk 1987", "the cat sat, qwerty!"):
        state = dec.new_state()
        dec.accept(state, _peaked(alphabet, text, seed=2))
        assert dec.result(state)[0] == text


def test_any_chunking_gives_the_same_text_and_emissions(tiny_arpa, char_lm):
    alphabet = Alphabet()
    dec = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, user_words=["mat"])
    lp = _peaked(alphabet, "the cat sat on the mat.", confidence=0.6, seed=3, confusions={9: "e", 20: "o"})
    whole = dec.new_state()
    dec.accept(whole, lp)
    expected = dec.result(whole)
    rng = np.random.default_rng(0)
    for longest in (1, 3, 17):
        state = dec.new_state()
        start = 0
        while start < len(lp):
            n = int(rng.integers(1, longest + 1))
            dec.accept(state, lp[start:start + n])
            dec.result(state)  # reading the result between chunks changes nothing
            start += n
        assert dec.result(state) == expected


def test_the_hypothesis_grows_as_frames_arrive_and_emissions_align(tiny_arpa, char_lm):
    alphabet = Alphabet()
    dec = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    text = "the dog sat on the log"
    lp = _peaked(alphabet, text, frames_per_char=3)
    state = dec.new_state()
    shown = []
    for t in range(len(lp)):
        dec.accept(state, lp[t:t + 1])
        shown.append(dec.result(state)[0])
    assert shown[-1] == text
    assert shown[len(lp) // 2] and text.startswith(shown[len(lp) // 2].rstrip()[:5])
    final, emissions = dec.result(state)
    assert len(emissions) == len(final)
    assert emissions == sorted(emissions)
    # character k is spelled over frames 4k .. 4k+2 (3 frames and a blank each)
    assert all(4 * k <= f <= 4 * k + 2 for k, f in enumerate(emissions))


def test_user_words_boost_a_phrase_per_decoder_and_per_stream(tiny_arpa, char_lm):
    alphabet = Alphabet()
    # "Kalb" written with the "a" looking more like an "o" (30 % a, 70 % o)
    lp = _peaked(alphabet, "the cat Kolb sat", frames_per_char=1, seed=4, confusions={9: ("a", 0.3)})
    plain = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    st = plain.new_state()
    plain.accept(st, lp)
    assert plain.result(st)[0] == "the cat Kolb sat"
    st = plain.new_state(user_words=[("Kalb", 8.0)])  # one stream only
    plain.accept(st, lp)
    assert plain.result(st)[0] == "the cat Kalb sat"
    assert plain.new_state().user_words is None  # the next stream does not inherit it
    boosted = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, user_words=[("Kalb", 8.0)])
    st = boosted.new_state()
    boosted.accept(st, lp)
    assert boosted.result(st)[0] == "the cat Kalb sat"


def test_a_partial_user_word_gives_its_boost_back(tiny_arpa, char_lm):
    alphabet = Alphabet()
    dec = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, user_words=[("catapult", 20.0)])
    lp = _peaked(alphabet, "the cat sat", seed=5)
    st = dec.new_state()
    dec.accept(st, lp)
    assert dec.result(st)[0] == "the cat sat"
    # the boost of "cat" (3/8 of 20) was given back when the word ended: same score as without
    ref = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    st2 = ref.new_state()
    ref.accept(st2, lp)
    h1 = st.beams[tuple(alphabet.encode("the cat sat"))]
    h2 = st2.beams[tuple(alphabet.encode("the cat sat"))]
    assert h1.lm == pytest.approx(h2.lm)


def test_user_words_file(tmp_path):
    f = tmp_path / "words.txt"
    f.write_text("# names\nJennifer\nBad Homburg\t9.5\n\n")
    uw = UserWords(f, default_boost=4.0)
    assert uw.phrases == {"Jennifer": 4.0, "Bad Homburg": 9.5}
    assert uw.per_char["Jen"] == pytest.approx(4.0 / 8)
    f.write_text("Jennifer\tlots\n")
    with pytest.raises(ValueError, match="bad boost"):
        UserWords(f)


def test_the_case_model_keeps_a_word_in_one_case(tiny_arpa, char_lm):
    """A vocabulary word's character-LM score is swapped for the word LM's, which knows no case:
    the case model's term stays, so a capital the ink barely prefers inside a small-letter word,
    a small letter at a sentence start, or one after two capitals, loses, and with the case
    model off it wins."""
    alphabet = Alphabet()
    on = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    off = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, case_weight=0)
    cases = [("the cat sat", "the cAt sat", {5: ("A", 0.6)}),  # "A" slightly likelier than "a"
             ("the cat sat. The dog sat", "the cat sat. the dog sat", {13: ("t", 0.55)}),
             # after two capitals a word goes on in capitals ("LEXIngton" is rare in text), past an
             # apostrophe too
             ("the CAT sat", "the CAt sat", {6: ("t", 0.55)}),
             ("the CAT DON'T sat", "the CAT DON't sat", {12: ("t", 0.55)})]
    for truth, ink_favours, confusions in cases:
        lp = _peaked(alphabet, truth, confusions=confusions, seed=4)
        for dec, expected in ((off, ink_favours), (on, truth)):
            state = dec.new_state()
            dec.accept(state, lp)
            assert dec.result(state)[0] == expected
    # a word written all in capitals stays one
    state = on.new_state()
    on.accept(state, _peaked(alphabet, "the CAT sat", seed=5))
    assert on.result(state)[0] == "the CAT sat"


def test_the_word_case_table_capitalises_a_name(tiny_arpa, char_lm, tmp_path):
    """The ink barely prefers "s" at the start of "Susan"; the case model alone reads "susan"
    (a word start is small 9 times in 10), the word case table, where text capitalises "susan",
    reads "Susan", at a line's start too; a word it lacks is left to the case model."""
    alphabet = Alphabet()
    table = tmp_path / "case.tsv"
    write_word_case(table, [("susan", 0.94)])
    on = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, word_case_path=table)
    off = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, word_case_weight=0)
    for truth, pos in (("the cat saw Susan", 12), ("Susan sat", 0)):
        lp = _peaked(alphabet, truth, confusions={pos: ("s", 0.55)}, seed=3)
        for dec, expected in ((off, truth[:pos] + "s" + truth[pos + 1:]), (on, truth)):
            state = dec.new_state()
            dec.accept(state, lp)
            assert dec.result(state)[0] == expected
    lp = _peaked(alphabet, "the cat saw Homer", confusions={12: ("h", 0.55)}, seed=3)
    state = on.new_state()
    on.accept(state, lp)
    assert on.result(state)[0] == "the cat saw homer"


@pytest.mark.parametrize("text, problem", [("susan\n", "expected word<TAB>probability"),
                                           ("susan\tmany\n", "expected word<TAB>probability"),
                                           ("Susan\t0.9\n", "lowercase word"), ("susan\t1.0\n", "in \\(0, 1\\)"),
                                           ("susan\t0.9\textra\n", "lowercase word"),
                                           ("new york\t0.9\n", "lowercase word"), ("o'neil\t0.9\n", "lowercase word"),
                                           ("monday\t0.5\n", "listed twice")])
def test_a_bad_word_case_table_is_refused_with_its_line(tmp_path, text, problem):
    path = tmp_path / "case.tsv"
    path.write_text("monday\t0.96\n" + text)
    with pytest.raises(ValueError, match=f"case.tsv:2: .*{problem}"):
        read_word_case(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_word_case(tmp_path / "missing.tsv")


def test_a_word_case_table_with_a_byte_order_mark_and_blank_lines_reads(tmp_path):
    path = tmp_path / "case.tsv"
    path.write_bytes("\ufeffsusan\t0.94\r\n\nmonday\t0.96\n\n".encode("utf-8"))
    assert read_word_case(path) == {"susan": 0.94, "monday": 0.96}


def test_word_case_counts_only_where_a_capital_tells_about_the_word():
    """Not a line's first token, not after a sentence end or a colon; a word is its leading
    letters in any alphabet ("Zoë's" is "zoë"), a token without them is skipped."""
    capitalised, seen = count_word_case(["Then Émile met Zoë's aunt. She said: Yes 42 times",
                                         "naïve Naïve 'quoted' Émile"])
    assert seen == {"émile": 2, "met": 1, "zoë": 1, "aunt": 1, "said": 1, "times": 1, "naïve": 1}
    assert capitalised == {"émile": 2, "zoë": 1, "naïve": 1, "met": 0, "aunt": 0, "said": 0, "times": 0}


def test_a_word_broken_at_the_line_end_keeps_its_hyphen(tiny_arpa, char_lm):
    """A fragment and a hyphen at the end of the line ("the mat sat on the ma-") are read as
    written; the fragment is no word, so without the line-end reading the hyphen is dropped."""
    alphabet = Alphabet()
    lp = _peaked(alphabet, "the cat sat on the ma-", confidence=0.4, seed=8)
    on = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa)
    off = CtcWordBeamDecoder(alphabet, lm=char_lm, word_lm_path=tiny_arpa, line_end_hyphen=None)
    for dec, expected in ((on, "the cat sat on the ma-"), (off, "the cat sat on the maje")):
        state = dec.new_state()
        dec.accept(state, lp)
        assert dec.result(state)[0] == expected
    # a hyphen inside a compound still reads as one
    state = on.new_state()
    on.accept(state, _peaked(alphabet, "the cat-sat on the mat", confidence=0.4, seed=8))
    assert on.result(state)[0] == "the cat-sat on the mat"


def test_the_search_cuts_drop_nothing_the_beam_would_keep(tiny_arpa, char_lm):
    """The bounds that let the search skip an extension before its LM scores (what completing a
    word, the case model and user words can add) are upper bounds: with them taken away (infinite)
    every frame's beam and result are the same."""

    class Uncut(CtcWordBeamDecoder):
        def _prune_gain(self, hyp, state):
            return math.inf

        def _run_gains(self, state):
            return [math.inf] * (self.alphabet.size + 1)

    alphabet = Alphabet()
    text = "The 3D cat-sat. We met Susan O'Neil, ok zorb-"
    lp = _peaked(alphabet, text, confidence=0.5, seed=6,
                 confusions={0: "t", 4: ("d", 0.4), 8: "A", 16: "w", 23: "s", 31: "o", 33: ("n", 0.4)})
    for options in ({}, {"user_words": ["Susan O'Neil", ("3D", 3.0)], "beam_width": 16}, {"case_weight": 1.0},
                    {"line_end_hyphen": -0.5}, {"word_case_weight": 3.0}):  # the shipped case table has "susan"
        cut, uncut = (cls(alphabet, lm=char_lm, word_lm_path=tiny_arpa, **options) for cls in (CtcWordBeamDecoder, Uncut))
        a, b = cut.new_state(), uncut.new_state()
        for t in range(len(lp)):
            cut.accept(a, lp[t:t + 1])
            uncut.accept(b, lp[t:t + 1])
            assert list(a.beams) == list(b.beams), (options, t)
            assert cut.result(a) == uncut.result(b), (options, t)


@pytest.mark.parametrize("option, value", [("word_weight", -1), ("oov_penalty", 1.0), ("char_swap", 2.0),
                                           ("user_word_boost", -1.0), ("beam_width", 0), ("case_weight", -0.5),
                                           ("word_case_weight", -1.0),
                                           ("case_priors", (0.9, 0.1, 0.5, 0.2, 0.0)),
                                           ("case_priors", (0.9, 0.1)), ("line_end_hyphen", 0.5)])
def test_bad_options_name_themselves(tiny_arpa, char_lm, option, value):
    with pytest.raises(ValueError, match=option):
        CtcWordBeamDecoder(Alphabet(), lm=char_lm, word_lm_path=tiny_arpa, **{option: value})


def test_a_missing_or_broken_word_lm_file_is_reported(tmp_path, char_lm):
    with pytest.raises(FileNotFoundError, match="word LM"):
        CtcWordBeamDecoder(Alphabet(), lm=char_lm, word_lm_path=tmp_path / "none.arpa")
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n")
    with pytest.raises(ValueError, match="bad.arpa"):
        WordLanguageModel(bad)


@pytest.mark.skipif(not default_word_lm_path().exists(), reason="the shipped word LM is not built")
def test_a_user_word_fixes_a_name_the_default_decoders_misread():
    """Real ink (a UNIPEN writer the model never saw), the shipped int8 model and LMs: the
    character beam reads "Bad Hombing", the word decoder "Bad Hamburg" (a word it knows), and
    with the user word "Homburg" the name comes out right, per recognizer and per stream."""
    from runtime.recognizer import StreamingRecognizer

    d = np.load(FIXTURE)
    i = list(d["texts"]).index("Bad Homburg")
    pts = d["points"][d["offsets"][i]:d["offsets"][i + 1]]
    assert StreamingRecognizer(decoder="beam").recognize(pts).text != "Bad Homburg"
    word = StreamingRecognizer(decoder="word")
    assert word.recognize(pts).text != "Bad Homburg"
    with_words = StreamingRecognizer(decoder="word", decoder_options={"user_words": ["Homburg"]})
    result = with_words.recognize(pts)
    assert result.text == "Bad Homburg"
    assert [a.char for a in result.chars] == list(result.text)  # the stroke alignment still works
    assert all(a.strokes for a in result.chars if a.char != " ")
    # per stream: the same recognizer without the list, one stream with it, kept across reset
    s = word.create_stream(user_words=[("Bad Homburg", 8.0)])
    for _ in range(2):
        s.accept_samples(pts)
        s.input_finished()
        word.decode_stream(s)
        assert word.get_result(s).text == "Bad Homburg"
        word.reset(s)
    other = word.create_stream()
    other.accept_samples(pts)
    other.input_finished()
    word.decode_stream(other)
    assert word.get_result(other).text != "Bad Homburg"  # another stream's words are its own
    with pytest.raises(ValueError, match="user words need the word decoder"):
        StreamingRecognizer(decoder="beam").create_stream(user_words=["Homburg"])


@pytest.mark.skipif(not default_word_lm_path().exists(), reason="the shipped word LM is not built")
def test_user_words_from_the_command_line(tmp_path):
    """``--words FILE`` on the command line: the name the default decoder misreads comes out right."""
    import subprocess
    import sys

    from runtime.ink import load_corpus, save_corpus

    corpus = load_corpus(FIXTURE)
    ink = corpus[[str(t) for t in corpus.texts].index("Bad Homburg")]
    save_corpus(tmp_path / "name.npz", [ink], kind="text")
    words = tmp_path / "words.txt"
    words.write_text("Homburg\n")
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "runtime.app.cli", "recognize", "--source", f"file:{tmp_path / 'name.npz'}",
           "--speed", "inf"]
    plain = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    named = subprocess.run(cmd + ["--words", str(words)], cwd=root, capture_output=True, text=True, timeout=120)
    assert plain.returncode == named.returncode == 0, (plain.stderr, named.stderr)
    finals = lambda out: [line for line in out.splitlines() if not line.startswith("~ ")]
    assert finals(plain.stdout) != ["Bad Homburg"] and finals(named.stdout) == ["Bad Homburg"]


def test_the_lm_command_builds_a_word_lm_the_decoder_reads(tmp_path):
    pytest.importorskip("wordfreq", reason="building the word LM needs the train extra (wordfreq)")
    import subprocess
    import sys

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat.\nthe dog sat on the log, and the cat ran.\n" * 3
                    + "We saw Susan and the cat. Then the cat saw Susan.\n" * 2)
    out, case_out = tmp_path / "lm.arpa.gz", tmp_path / "wordcase.tsv.gz"  # the table goes beside the LM
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "lm", "words", "--text", str(text), "--out", str(out),
                        "--vocab", "20", "--min-top-count", "1", "--min-bigram-count", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lm = WordLanguageModel(out)
    assert "cat" in lm and "zebra" not in lm
    # "Susan" inside sentences 4 times of 4; "We" and "Then" start a line or a sentence: not counted
    assert read_word_case(case_out) == {"susan": pytest.approx((4 + 0.093) / 5, abs=1e-3)}
    refused = subprocess.run([sys.executable, "-m", "runtime.app.cli", "lm", "words", "--text",
                              str(tmp_path / "iamondb_val.txt"), "--out", str(out)], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2


@pytest.mark.skipif(not default_word_lm_path().exists(), reason="the shipped word LM is not built")
@pytest.mark.parametrize("decoder", ["beam", "word"])
def test_a_lone_digit_is_not_read_as_nothing(char_lm, decoder):
    """One clearly written "7" and blanks around it: the LMs price a lone digit above what the
    model's peak wins over the all-blank path, so without ``empty_penalty`` the empty reading
    wins; with the default it is "7"."""
    from runtime.beam import CtcPrefixBeamDecoder

    alphabet = char_lm.alphabet
    p = np.full((9, alphabet.size), 1e-6)
    p[:, alphabet.blank] = 1.0
    p[4, alphabet.blank], p[4, alphabet.encode("7")[0]] = 0.2, 0.8
    lp = np.log(p / p.sum(axis=1, keepdims=True))

    def read(**options):
        cls = CtcWordBeamDecoder if decoder == "word" else CtcPrefixBeamDecoder
        dec = cls(alphabet, lm=char_lm, **options)
        state = dec.new_state()
        dec.accept(state, lp)
        return dec.result(state)[0]

    assert read(empty_penalty=0.0) == ""  # the failure the penalty is for
    assert read() == "7"
