"""CTC decoders: greedy and prefix beam search with the character LM, both incremental."""
import itertools
import math

import numpy as np
import pytest

from runtime.alphabet import Alphabet
from runtime.beam import CtcPrefixBeamDecoder
from runtime.decoders import CtcGreedyDecoder
from runtime.lm import SYMBOLS, CharLanguageModel, build_char_lm, save_lm


def _collapse(path):
    out, prev = [], 0
    for p in path:
        if p != 0 and p != prev:
            out.append(p)
        prev = p
    return tuple(out)


def _peaked(alphabet, text, frames_per_char=3, confidence=0.9, seed=0):
    """Log-probs that spell ``text`` (blank between characters), with some noise."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in alphabet.encode(text):
        ids += [i] * frames_per_char + [0]
    probs = rng.dirichlet(np.ones(alphabet.size), size=len(ids)) * (1 - confidence)
    probs[np.arange(len(ids)), ids] += confidence
    return np.log(probs)


def _feed_in_random_chunks(dec, state, lp, rng, longest):
    start = 0
    while start < len(lp):
        n = int(rng.integers(1, longest + 1))
        dec.accept(state, lp[start:start + n])
        start += n


@pytest.fixture(scope="module")
def lm():
    return CharLanguageModel()  # the shipped LM


def test_beam_without_lm_finds_the_exact_most_probable_labelling():
    alphabet = Alphabet("ab")
    rng = np.random.default_rng(0)
    for _ in range(5):
        lp = np.log(rng.dirichlet(np.ones(3) * 0.7, size=5))
        probs = {}
        for path in itertools.product(range(3), repeat=5):  # every CTC path
            key = _collapse(path)
            probs[key] = probs.get(key, 0.0) + math.exp(sum(lp[t, p] for t, p in enumerate(path)))
        dec = CtcPrefixBeamDecoder(alphabet, beam_width=1000, lm_weight=0, insertion_bonus=0, char_threshold=-1e9,
                                   prune_beam=math.inf)
        state = dec.new_state()
        dec.accept(state, lp)
        for prefix, hyp in state.beams.items():  # prefix probabilities are exact, not approximations
            assert math.isclose(math.exp(np.logaddexp(hyp.pb, hyp.pnb)), probs[prefix], rel_tol=1e-9)
        assert dec.result(state)[0] == alphabet.decode(max(probs, key=probs.get))


def test_beam_chunked_equals_whole(lm):
    alphabet = lm.alphabet
    lp = _peaked(alphabet, "the quick brown fox, 42!", confidence=0.5, seed=3)
    dec = CtcPrefixBeamDecoder(alphabet, beam_width=6, lm_weight=0.8, insertion_bonus=0.5, lm=lm)
    whole = dec.new_state()
    dec.accept(whole, lp)
    rng = np.random.default_rng(1)
    for _ in range(3):
        chunked = dec.new_state()
        _feed_in_random_chunks(dec, chunked, lp, rng, longest=5)
        assert dec.result(chunked) == dec.result(whole)
    text, emissions = dec.result(whole)
    assert len(emissions) == len(text) and emissions == sorted(emissions)


def test_beam_agrees_with_greedy_on_confident_output(lm):
    alphabet = lm.alphabet
    lp = _peaked(alphabet, "Hello World 1990.", confidence=0.97)
    greedy = CtcGreedyDecoder(alphabet)
    gs = greedy.new_state()
    greedy.accept(gs, lp)
    beam = CtcPrefixBeamDecoder(alphabet, lm=lm)
    bs = beam.new_state()
    beam.accept(bs, lp)
    assert greedy.result(gs)[0] == "Hello World 1990."
    assert beam.result(bs) == greedy.result(gs)


def test_language_model_fixes_an_ambiguous_letter(lm):
    alphabet = lm.alphabet
    lp = _peaked(alphabet, "tho house", frames_per_char=1, confidence=0.9)
    # make the 3rd character (one frame) ambiguous between 'o' (slightly favoured) and 'e'
    o, e = alphabet.encode("oe")
    row = 4
    assert lp[row].argmax() == o
    lp[row] = np.log(np.full(alphabet.size, 1e-4))
    lp[row, o], lp[row, e] = np.log(0.5), np.log(0.45)
    no_lm = CtcPrefixBeamDecoder(alphabet, lm_weight=0, insertion_bonus=0)
    with_lm = CtcPrefixBeamDecoder(alphabet, lm=lm, lm_weight=0.5)
    for dec, want in ((no_lm, "tho house"), (with_lm, "the house")):
        st = dec.new_state()
        dec.accept(st, lp)
        assert dec.result(st)[0] == want


def test_lexicon_bonus_prefers_listed_words(tmp_path):
    alphabet = Alphabet("abc ")
    a, b = alphabet.encode("ab")
    lp = _peaked(alphabet, "ab cc", frames_per_char=1, confidence=0.9)
    row = 2
    assert lp[row].argmax() == b
    lp[row] = np.log(np.full(alphabet.size, 1e-4))
    lp[row, b], lp[row, a] = np.log(0.5), np.log(0.45)  # "ab" slightly favoured over "aa"
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("# a word list\naa\n")
    plain = CtcPrefixBeamDecoder(alphabet, lm_weight=0, insertion_bonus=0)
    listed = CtcPrefixBeamDecoder(alphabet, lm_weight=0, insertion_bonus=0, lexicon=str(lexicon), lexicon_bonus=2.0)
    for dec, want in ((plain, "ab cc"), (listed, "aa cc")):
        st = dec.new_state()
        dec.accept(st, lp)
        assert dec.result(st)[0] == want


def test_beam_options_are_checked():
    with pytest.raises(ValueError, match="beam_width"):
        CtcPrefixBeamDecoder(Alphabet(), beam_width=0, lm_weight=0)
    with pytest.raises(ValueError, match="lm_weight"):
        CtcPrefixBeamDecoder(Alphabet(), lm_weight=-1)
    with pytest.raises(ValueError, match="prune_beam"):
        CtcPrefixBeamDecoder(Alphabet(), lm_weight=0, prune_beam=0)
    with pytest.raises(ValueError, match="lexicon_bonus"):
        CtcPrefixBeamDecoder(Alphabet(), lm_weight=0, lexicon_bonus=-1)
    dec = CtcPrefixBeamDecoder(Alphabet("ab"), lm_weight=0)
    state = dec.new_state()
    with pytest.raises(ValueError, match="classes"):  # refused before the beam is touched
        dec.accept(state, np.zeros((1, 5)))
    assert dec.result(state) == ("", [])


def _reference_beam(alphabet, lm, lp, beam_width=8, lm_weight=0.5, insertion_bonus=1.0, char_threshold=-7.0,
                    max_chars=6, made=None):
    """The textbook CTC prefix beam search with an LM, written plainly (no pruning, no caching,
    new dicts every frame): what the fast decoder must compute. ``made`` (a one-item list) counts
    the new prefixes it makes."""
    neg = -math.inf
    beams = {(): (0.0, neg, 0.0, lm.initial_history())}  # prefix -> pb, pnb, LM score, LM history

    def score(prefix, v):
        return np.logaddexp(v[0], v[1]) + v[2] + insertion_bonus * len(prefix)

    for row in lp:
        ranked_chars = sorted((c for c in range(1, alphabet.size) if row[c] >= char_threshold),
                              key=lambda c: -row[c])[:max_chars]
        nxt = {}
        for prefix, (pb, pnb, lms, hist) in beams.items():
            total = np.logaddexp(pb, pnb)
            e = nxt.setdefault(prefix, [neg, neg, lms, hist])
            e[0] = np.logaddexp(e[0], total + row[0])
            last = prefix[-1] if prefix else -1
            if prefix:
                e[1] = np.logaddexp(e[1], pnb + row[last])
            for c in sorted(ranked_chars):
                p = row[c] + (pb if c == last else total)
                if made is not None and prefix + (c,) not in beams and prefix + (c,) not in nxt:
                    made[0] += 1
                ext = nxt.setdefault(prefix + (c,), [neg, neg, lms + lm_weight * lm.log_probs(hist)[c],
                                                     lm.advance(hist, c)])
                ext[1] = np.logaddexp(ext[1], p)
        beams = dict(sorted(nxt.items(), key=lambda kv: score(*kv), reverse=True)[:beam_width])
    return alphabet.decode(max(beams.items(), key=lambda kv: score(*kv))[0])


def _ambiguous(alphabet, seed, frames=30):
    """Log-probs where every other frame is split between three letters: the search and the LM
    decide the text (greedy and the LM-free beam read something else)."""
    rng = np.random.default_rng(seed)
    letters = alphabet.encode("etaoinshrdlu ")
    probs = np.full((frames, alphabet.size), 1e-6)
    for t in range(frames):
        if t % 2:
            probs[t, 0] = 1.0
        else:
            probs[t, rng.choice(letters, size=3, replace=False)] = rng.dirichlet(np.ones(3))
            probs[t, 0] = 0.2
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def test_beam_equals_the_textbook_search(lm):
    """With pruning off, the in-place, lazily-extended search finds what the plain one finds, fed
    whole or in random chunks; with the default pruning too on these inputs. Narrow beams as well:
    there the cut below the beam_width-th best stay decides most extensions."""
    alphabet = lm.alphabet
    rng = np.random.default_rng(7)
    no_lm = CtcPrefixBeamDecoder(alphabet, lm_weight=0)
    for seed in range(6):
        lp = _ambiguous(alphabet, seed)
        want = _reference_beam(alphabet, lm, lp)
        plain = no_lm.new_state()
        no_lm.accept(plain, lp)
        assert no_lm.result(plain)[0] != want  # the LM matters here
        for options in ({"prune_beam": math.inf}, {}):  # the textbook search, then the default pruning
            dec = CtcPrefixBeamDecoder(alphabet, lm=lm, **options)
            assert dec.char_threshold == -7.0 and dec.prune_beam == options.get("prune_beam", 8.0)
            state = dec.new_state()
            _feed_in_random_chunks(dec, state, lp, rng, longest=4)
            assert dec.result(state)[0] == want
        for width in (2, 3, 5):
            dec = CtcPrefixBeamDecoder(alphabet, lm=lm, beam_width=width, prune_beam=math.inf)
            state = dec.new_state()
            _feed_in_random_chunks(dec, state, lp, rng, longest=4)
            assert dec.result(state)[0] == _reference_beam(alphabet, lm, lp, beam_width=width)


def test_lm_caches_stay_bounded(lm, monkeypatch):
    import runtime.lm as lm_module

    monkeypatch.setattr(lm_module, "CACHE_SIZE", 8)
    fresh = CharLanguageModel(alphabet=lm.alphabet)
    dec = CtcPrefixBeamDecoder(lm.alphabet, lm=fresh)
    state = dec.new_state()
    dec.accept(state, _peaked(lm.alphabet, "many different words make many histories", confidence=0.6))
    assert 0 < len(fresh._rows) <= 8 and 0 < len(fresh._rows_old) <= 8  # both generations were used
    assert 0 < len(fresh._advance_cache) <= 8
    assert dec.result(state)[0]  # still decodes
    # a row that dropped out of both generations comes back with the same values
    h = fresh.history_of("the quick")
    want = fresh.log_probs(h).copy()
    # a row found in the older generation moves up to the newer one
    fresh._rows_old, fresh._rows = fresh._rows, {}
    assert fresh.log_prob_row(h) is fresh._rows_old[h] and h in fresh._rows
    for text in ("a", "ab", "abc", "abd", "x y", "zz", "qu", "qua", "quo", "t", "th", "tha", "thu", "ww", "wo", "wa",
                 "ze", "zo", "ju"):
        fresh.log_probs(fresh.history_of(text))
    assert h not in fresh._rows and h not in fresh._rows_old
    assert np.array_equal(fresh.log_probs(h), want)
    with pytest.raises(ValueError):  # the cached row cannot be written through the numpy view
        fresh.log_probs(h).flags.writeable = True


def test_the_cuts_make_fewer_hypotheses_and_keep_the_answer(lm, monkeypatch):
    """The search makes far fewer new prefixes than the textbook one: none below the cut that
    the beam_width best known scores set (exact), and none ``prune_beam`` below the best stay,
    without changing what a clear input decodes to, whole or frame by frame."""
    import runtime.beam as beam_module

    made = [0]

    class Counted(beam_module._Hypothesis):
        __slots__ = ()

        def __init__(self, *args, **kwargs):
            made[0] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(beam_module, "_Hypothesis", Counted)
    alphabet = lm.alphabet
    lp = _peaked(alphabet, "pruning keeps the answer", confidence=0.8, seed=5)
    counts = {}
    for prune in (math.inf, 8.0):
        dec = CtcPrefixBeamDecoder(alphabet, lm=lm, prune_beam=prune)
        whole, frame_by_frame = dec.new_state(), dec.new_state()
        made[0] = 0
        dec.accept(whole, lp)
        counts[prune] = made[0]
        for t in range(len(lp)):
            dec.accept(frame_by_frame, lp[t:t + 1])
        assert dec.result(whole)[0] == "pruning keeps the answer"
        assert dec.result(frame_by_frame) == dec.result(whole)
    textbook = [0]
    assert _reference_beam(alphabet, lm, lp, made=textbook) == "pruning keeps the answer"
    assert counts[8.0] <= counts[math.inf] < 0.25 * textbook[0], (counts, textbook)


def test_greedy_carries_the_previous_label_across_chunks():
    alphabet = Alphabet("ab")
    ids = [1, 1, 0, 1, 2, 2, 0, 0, 2]  # "a a b b" -> "aabb"... collapsed: a, a, b, b
    lp = np.log(np.full((len(ids), 3), 0.01))
    lp[np.arange(len(ids)), ids] = 0.0
    dec = CtcGreedyDecoder(alphabet)
    whole = dec.new_state()
    dec.accept(whole, lp)
    for cut in range(1, len(ids)):
        st = dec.new_state()
        dec.accept(st, lp[:cut])
        dec.accept(st, lp[cut:])
        assert dec.result(st) == dec.result(whole) == ("aabb", [0, 3, 4, 8])


def test_a_lone_character_is_read_mostly_by_the_model_not_the_lm(lm):
    """The LM prefers "I" to "1" at the start of a line; the model prefers "1", by half the LM's
    margin. Read as a line, the LM wins; a one-character reading is chosen again with the LM
    terms at a quarter of their weight, and the model's "1" wins."""
    alphabet = lm.alphabet
    one, eye = alphabet.encode("1")[0], alphabet.encode("I")[0]
    row = lm.log_probs(lm.initial_history())
    lm_margin = 0.5 * (row[eye] - row[one])  # lm_weight 0.5
    assert lm_margin > 1.0
    lp = np.full((3, alphabet.size), -30.0)
    lp[[0, 2], alphabet.blank] = 0.0
    lp[1, alphabet.blank] = -6.0
    lp[1, one] = math.log(0.5)
    lp[1, eye] = math.log(0.5) - lm_margin / 2
    readings = {}
    for scale in (1.0, 0.25, 0.0):
        dec = CtcPrefixBeamDecoder(alphabet, lm=lm, single_char_lm_scale=scale)
        st = dec.new_state()
        dec.accept(st, lp)
        readings[scale] = dec.result(st)
    assert readings[1.0] == ("I", [1])
    assert readings[0.25] == readings[0.0] == ("1", [1])
    # two characters are read as before: the rule is for lone characters
    lp2 = np.concatenate([lp, _peaked(alphabet, "t", confidence=0.99)])
    for scale in (1.0, 0.25):
        dec = CtcPrefixBeamDecoder(alphabet, lm=lm, single_char_lm_scale=scale)
        st = dec.new_state()
        dec.accept(st, lp2)
        assert dec.result(st)[0] == "It"
    with pytest.raises(ValueError, match="single_char_lm_scale"):
        CtcPrefixBeamDecoder(alphabet, lm=lm, single_char_lm_scale=1.5)


def test_greedy_never_reads_ink_as_nothing():
    """A lone stroke whose peak stays under the blank: the best path is empty; the best path
    with a character switches the frame where a character costs least against blank."""
    alphabet = Alphabet("ab")
    lp = np.log(np.array([[0.90, 0.05, 0.05], [0.60, 0.15, 0.25], [0.55, 0.40, 0.05], [0.90, 0.05, 0.05]]))
    assert (lp.argmax(axis=1) == alphabet.blank).all()
    plain = CtcGreedyDecoder(alphabet, never_empty=False)
    st = plain.new_state()
    plain.accept(st, lp)
    assert plain.result(st) == ("", [])
    dec = CtcGreedyDecoder(alphabet)
    assert dec.result(dec.new_state()) == ("", [])  # no frames, no reading
    for cut in range(len(lp) + 1):  # any chunking, the same answer: "a" at frame 2 (0.40 / 0.55)
        st = dec.new_state()
        dec.accept(st, lp[:cut])
        dec.accept(st, lp[cut:])
        assert dec.result(st) == ("a", [2])
    # once the best path holds a character, the rule has nothing to do
    lp[3] = np.log([0.1, 0.1, 0.8])
    st = dec.new_state()
    dec.accept(st, lp)
    assert dec.result(st) == ("b", [3])


def test_shipped_lm_is_a_distribution_over_all_printable_ascii(lm):
    for text in ("", "the qu", "don't", "Hello, ", "1990", "x"):
        lp = lm.log_probs(lm.history_of(text))
        assert lp[0] == -np.inf  # the CTC blank is never a character
        assert np.isfinite(lp[1:]).all()  # every printable character stays possible
        assert math.isclose(np.exp(lp[1:]).sum(), 1.0, rel_tol=1e-9)
    assert lm.log_probs(lm.history_of("the quic"))[lm.alphabet.encode("k")[0]] > math.log(0.5)
    assert lm.score("the house is new") > lm.score("tje hoisu iz nxw") + 10
    assert lm.score("The") > lm.score("tHE")


def test_build_save_and_load_a_small_lm(tmp_path):
    arrays = build_char_lm({"the": 100.0, "then": 20.0, "than": 5.0, "a": 50.0}, order=4, min_history_count=1.0)
    path = tmp_path / "tiny.npz"
    save_lm(path, arrays)
    lm = CharLanguageModel(path)
    assert lm.order == 4 and len(SYMBOLS) == arrays["neg_log_probs_q"].shape[1]
    h = lm.history_of("th")
    e, a = lm.alphabet.encode("ea")
    assert lm.log_probs(h)[e] > lm.log_probs(h)[a]
    with pytest.raises(ValueError, match="not an inkstream character LM"):
        np.savez(tmp_path / "other.npz", x=np.zeros(3))
        CharLanguageModel(tmp_path / "other.npz")


def test_an_lm_file_lacking_a_part_is_refused_naming_file_and_part(tmp_path):
    arrays = build_char_lm({"the": 100.0, "a": 50.0}, order=3, min_history_count=1.0)
    assert arrays["histories"][0] == b""  # sorted by length: the empty history first
    no_root = dict(arrays, histories=arrays["histories"][1:], neg_log_probs_q=arrays["neg_log_probs_q"][1:])
    save_lm(tmp_path / "no_root.npz", no_root)
    with pytest.raises(ValueError, match=r"no_root\.npz.*empty history"):
        CharLanguageModel(tmp_path / "no_root.npz")  # looped forever on its first lookup
    save_lm(tmp_path / "no_order.npz", {k: v for k, v in arrays.items() if k != "order"})
    with pytest.raises(ValueError, match=r"no_order\.npz.*lacks the arrays \['order'\]"):
        CharLanguageModel(tmp_path / "no_order.npz")
    short = dict(arrays, neg_log_probs_q=arrays["neg_log_probs_q"][:, :5])
    save_lm(tmp_path / "short.npz", short)
    with pytest.raises(ValueError, match=r"short\.npz.*neg_log_probs_q"):
        CharLanguageModel(tmp_path / "short.npz")
