"""Streaming word-level CTC decoding: prefix beam search with a character LM inside words, a word
n-gram LM when a word completes, and user words ("hotwords") with a boost.

Same interface as :class:`runtime.beam.CtcPrefixBeamDecoder` (``new_state / accept / result``),
whose search it extends: the beam is carried in the per-stream state, any chunking of the frames
gives the same result, the best hypothesis (unfinished last word included) can be read after any
frame, and the per-character emission frames are kept for the stroke alignment.

A hypothesis is ranked by

    log(P_b + P_nb) + lm_weight * log P_char(characters) + insertion_bonus * len(prefix)
      + sum over completed LM units u:  word_weight * ln P_word(u | two units before) + word_bonus
                                        - char_swap * lm_weight * log P_char(u's letters)  (u in vocabulary)
                                        + oov_penalty                                     (u not in it)
      + case_weight * sum over letters in words: ln P(capital or not | where it stands)
      + word_case_weight * ln P(first letter's case | the word) / P(that case | a word start)   (word case table)
      + user-word boosts

(the case model's term stands in for the character LM's own case factor and is not swapped out,
see ``case_weight``; a punctuation mark the word LM knows is scored by it alone: its
character-LM score, a share of a uniform floor, is taken back; ``word_start_cost`` moves part of
a word's cost to its start).

A *word* completes when a character that cannot continue it (space, punctuation) is added to a
run of letters, digits and apostrophes; the run and the punctuation mark are split into LM units
by :func:`runtime.word_lm.lm_units`, so ``word,`` and IAM-OnDB's ``word ,`` meet the LM alike.
Inside a word the character LM scores the letters, so a word the word LM lacks (a name, a
number, a typo) can still win: it is scored as ``<unk>`` in its context plus ``oov_penalty``,
and its spelling keeps the character LM's score (open vocabulary). With ``char_swap`` 1 a
vocabulary word's character-LM score is replaced by the word LM's, the usual open-vocabulary
class model; smaller values keep part of it. A line starts with no word context (IAM-OnDB lines
start mid-sentence); after ``.``, ``!`` or ``?`` the context is ``<s>``.

User words (``user_words``: a file, one entry a line, ``phrase`` or ``phrase<TAB>boost``, or an
iterable of phrases or ``(phrase, boost)`` pairs) are matched as written (case included) from a
word start, character by character, as sherpa-onnx matches hotwords: each matched character earns
``boost / len(phrase)``, a phrase that stops matching gives back what it earned since its last
complete match, so only whole phrases keep their boost; a phrase counts as complete when a word
boundary (or the end of input) follows it. The words of the phrases, whatever their case, pay no
word-LM cost and no ``oov_penalty`` when they complete. The recognizer's list applies to every
stream; ``new_state(user_words=)`` adds a list for one stream.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple, Optional

from runtime.beam import BeamState, CtcPrefixBeamDecoder, _score
from runtime.word_lm import SENTENCE_END, WordLanguageModel, lm_units, read_word_case

_NEG_INF = float("-inf")


class CasePriors(NamedTuple):
    """P(a letter is a capital) where it stands in a word and a sentence."""

    sentence_start: float  # a word's first letter after ".", "!" or "?"
    word_start: float  # another word's first letter
    line_start: float  # the first letter of a line, which may or may not start a sentence
    after_capital: float  # a letter inside a word, after a single capital ("Th", "McD")
    after_small: float  # a letter inside a word, after a small letter (or a digit or apostrophe)
    after_capitals: float  # a letter inside a word, after two or more capitals in a row ("LEX")


# Counted on the word LM's text (the first 200,000 lines of gutenberg and of masc): 0.93 at a
# sentence start, 0.093 at another word start, 0.066 after a single capital ("Th"), 0.0002 after a
# small letter, 0.991 after two or more capitals ("THE": a word in capitals stays in capitals;
# one "after a capital" figure, 0.18, let "LEXIngton" and "THE" cost about the same).
# A line's start is left even: IAM-OnDB's lines mostly start mid-sentence, UNIPEN's and
# ImadocSen's start sentences.
TEXT_CASE_PRIORS = CasePriors(0.93, 0.093, 0.5, 0.066, 0.0002, 0.991)

# ln P(a line ends in a word broken by a hyphen): 127 of IAM-OnDB train's 5,363 lines do.
LINE_END_HYPHEN = math.log(127 / 5363)


class _Hyp:
    """One prefix in the beam (see :class:`runtime.beam._Hypothesis`), plus the word state:
    ``wctx`` the word-LM context, ``run`` the unfinished word (lowercase), ``run_lm`` its
    weighted character-LM score less the case factors (what the word LM's score replaces),
    ``hot`` the user-word match ``(prefix, earned, kept)`` or None, ``char`` the prefix's last
    character. ``history`` (the character LM's) is filled in only for hypotheses that survive
    pruning."""

    __slots__ = ("pb", "pnb", "lm", "history", "wctx", "run", "run_lm", "hot", "emissions", "emit_score",
                 "parent", "char", "lm_row", "rank", "fixed", "gain", "after", "tail", "caps", "wcase")

    def __init__(self, pb, pnb, lm, history, wctx, run, run_lm, hot, emissions, emit_score=_NEG_INF,
                 parent=None, char=0, after=0.0, tail=0.0, caps=0, wcase=0):
        self.pb = pb
        self.pnb = pnb
        self.lm = lm
        self.history = history
        self.wctx = wctx
        self.run = run
        self.run_lm = run_lm
        self.hot = hot
        self.emissions = emissions
        self.emit_score = emit_score
        self.parent = parent
        self.char = char
        self.lm_row = None
        self.rank = None
        self.fixed = self.gain = None  # see runtime.beam._Hypothesis
        # a word ended by a hyphen has two readings, charged at the better: `after` (<= 0) is
        # owed if another character follows, `tail` (<= 0) if the line ends there
        self.after = after
        self.tail = tail
        # capitals in a row at the end of the unfinished word, an apostrophe between them kept
        # ("DON'"): the case model's state
        self.caps = caps
        # how the unfinished word started, for the word case table: 0 nothing to add (a sentence
        # start, a digit), 1 / 2 a small / capital letter inside a line, 3 / 4 the same at its start
        self.wcase = wcase


class UserWords:
    """Compiled user words: every prefix of every phrase (as written, spaces normalised) -> boost
    per character, and the complete phrases -> their boost."""

    def __init__(self, entries=(), default_boost: float = 6.0):
        self.per_char: dict = {}
        self.phrases: dict = {}
        for phrase, boost in _parse_user_words(entries, default_boost):
            p = " ".join(phrase.split())
            if not p:
                continue
            step = boost / len(p)
            for i in range(1, len(p) + 1):
                if self.per_char.get(p[:i], _NEG_INF) < step:
                    self.per_char[p[:i]] = step
            self.phrases[p] = max(boost, self.phrases.get(p, _NEG_INF))
        # the words of the phrases are vocabulary words for the word LM's purposes
        self.units = frozenset(u for p in self.phrases for u in lm_units(p))
        self.max_step = max(self.per_char.values(), default=0.0)

    def merged(self, other: "UserWords") -> "UserWords":
        out = UserWords()
        for src in (self, other):
            for k, v in src.per_char.items():
                out.per_char[k] = max(v, out.per_char.get(k, _NEG_INF))
            for k, v in src.phrases.items():
                out.phrases[k] = max(v, out.phrases.get(k, _NEG_INF))
        out.units = self.units | other.units
        out.max_step = max(out.per_char.values(), default=0.0)
        return out

    def __bool__(self) -> bool:
        return bool(self.phrases)


def _parse_user_words(entries, default_boost: float):
    if entries is None:
        return
    if isinstance(entries, (str, bytes)) or hasattr(entries, "__fspath__"):
        path = os.fspath(entries)
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f]
        entries = []
        for ln in lines:
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
            if "\t" in ln:
                phrase, boost = ln.rsplit("\t", 1)
                try:
                    entries.append((phrase, float(boost)))
                except ValueError:
                    raise ValueError(f"user words file {path}: bad boost {boost!r} in line {ln!r}") from None
            else:
                entries.append(ln)
    for e in entries:
        if isinstance(e, str):
            yield e, float(default_boost)
        else:
            phrase, boost = e
            if not boost >= 0:
                raise ValueError(f"user word {phrase!r}: boost must be >= 0, got {boost}")
            yield str(phrase), float(boost)


@dataclass
class WordBeamState(BeamState):
    """Per-stream state of :class:`CtcWordBeamDecoder`: the beam and the stream's user words."""

    user_words: Optional[UserWords] = None
    run_gains: Optional[list] = None  # the decoder's _run_gains() for this stream's user words


class CtcWordBeamDecoder(CtcPrefixBeamDecoder):
    """Prefix beam search with a character LM inside words and a word n-gram LM between them.

    Options (keyword; a bad value raises ValueError naming it), beyond those of
    :class:`runtime.beam.CtcPrefixBeamDecoder` (``beam_width``, ``lm_weight``, ``insertion_bonus``,
    ``lm_path``, ``char_threshold``, ``max_chars_per_frame``, ``prune_beam``):

    * ``word_lm_path`` ARPA file (default: the shipped ``runtime/models/wordlm.arpa.gz``);
    * ``word_weight`` scale of the word LM's natural-log probability;
    * ``oov_penalty`` added for each completed unit outside the word LM's vocabulary;
    * ``char_swap`` share of a vocabulary word's character-LM score replaced by the word LM's;
    * ``word_bonus`` added per completed LM unit (balances the word LM's cost per word);
    * ``word_start_cost`` charged when a word starts and given back when it completes: an
      estimate of the word LM's cost paid in advance, so that a hypothesis that has started a
      new word is not ranked below one still inside a long (often out-of-vocabulary) word;
    * ``user_words`` (see the module docstring) and ``user_word_boost``, the boost of entries
      that give none;
    * ``case_weight`` scale of the case model, and ``case_priors`` its probabilities
      (:class:`CasePriors`; default :data:`TEXT_CASE_PRIORS`). The character LM knows only that
      capitals are likelier at a word start, and its score of a vocabulary word's letters is
      swapped for the word LM's, which knows no case: without a case model "GerMan" and "German"
      cost the same. The case model scores each letter of a word as a capital or not from where
      it stands (a sentence start, another word start, a line start, after a single capital,
      after two or more, after a small letter) and keeps that score through the swap. 0 turns
      it off; so does ``lm_weight`` 0 (no character LM, no case factor to replace). Chosen on the validation
      sets (docs/model_card.md);
    * ``word_case_weight`` (with the case model; 0 turns it off): a word of the word case table
      (``word_case_path``, default the shipped ``runtime/models/wordcase.tsv.gz``,
      :func:`runtime.word_lm.read_word_case`) that completes after starting inside a line or at
      its start gains this weight times the log-ratio of its own odds of that first letter's
      case to the word-start prior's: "susan" and "monday" lean to capitals, as text writes
      them. A sentence start is left alone (a capital whatever the word). 0.6 chosen on the
      validation sets (docs/model_card.md): 1.0 read the cased sets a little better and the
      lowercase ImadocSen half a point worse;
    * ``line_end_hyphen``: ln P(a line ends in a word broken across lines, "represen-"), default
      :data:`LINE_END_HYPHEN`; None turns it off. A word a hyphen ends is charged the better of
      two readings, the first part of a compound (the word LM's scores) and a broken word (the
      fragment keeps its character-LM score, the hyphen costs this prior), and the difference
      when the next character, or the end of the line, tells which.

    The second pass (the base class's ``line_lm_*`` options) is on here: ``line_lm_weight`` 0.3,
    ``line_lm_nbest`` 8, ``line_lm_margin`` 2, ``line_lm_char_bonus`` 1.5, chosen on the validation sets
    (runtime/models/linelm.md): when a line ends, :meth:`final_result` rescores its best readings
    with the shipped line LM.

    ``empty_penalty`` (the base class's, default -10): on UNIPEN chars ``val`` (every 4th of its
    isolated characters) the empty reading won 709 of 1,993 times without it (CER 48.9 %), 120
    times at -5, never from -8 on (CER 34.3 %); IAM-OnDB ``val`` lines did not change.
    """

    name = "word"

    # beam_width 128 / prune_beam 20: each widening (16/12 -> 32/16 -> 48/16 -> 64/20 -> 96/20 ->
    # 128/20) won on the validation sets (docs/model_card.md); 128/20 keeps the real-time factor
    # of a 200 Hz pen under 0.01 on the 2-core bench machine in its fast mode (docs/benchmarks.md)
    def __init__(self, alphabet, beam_width: int = 128, lm_weight: float = 0.5, insertion_bonus: float = 1.0,
                 lm_path=None, word_lm_path=None, word_weight: float = 0.7, oov_penalty: float = -2.0,
                 char_swap: float = 1.0, word_bonus: float = 1.0, word_start_cost: float = 0.0, user_words=None,
                 user_word_boost: float = 6.0, char_threshold: float = -7.0, max_chars_per_frame: int = 6,
                 prune_beam: float = 20.0, empty_penalty: float = -10.0, single_char_lm_scale: float = 0.25,
                 case_weight: float = 0.3, case_priors: CasePriors = TEXT_CASE_PRIORS,
                 line_end_hyphen: Optional[float] = LINE_END_HYPHEN, word_case_weight: float = 0.6,
                 word_case_path=None, lm=None,
                 word_lm: Optional[WordLanguageModel] = None, line_lm_weight: float = 0.3, line_lm_nbest: int = 8,
                 line_lm_margin: float = 2.0, line_lm_char_bonus: float = 1.5, line_lm_path=None, line_lm=None):
        super().__init__(alphabet, beam_width=beam_width, lm_weight=lm_weight, insertion_bonus=insertion_bonus,
                         lm_path=lm_path, char_threshold=char_threshold, max_chars_per_frame=max_chars_per_frame,
                         prune_beam=prune_beam, empty_penalty=empty_penalty,
                         single_char_lm_scale=single_char_lm_scale, lm=lm, line_lm_weight=line_lm_weight,
                         line_lm_nbest=line_lm_nbest, line_lm_margin=line_lm_margin,
                         line_lm_char_bonus=line_lm_char_bonus, line_lm_path=line_lm_path, line_lm=line_lm)
        if word_weight < 0:
            raise ValueError(f"word_weight must be >= 0, got {word_weight}")
        if oov_penalty > 0:
            raise ValueError(f"oov_penalty must be <= 0, got {oov_penalty}")
        if not 0 <= char_swap <= 1:
            raise ValueError(f"char_swap must be in [0, 1], got {char_swap}")
        if word_start_cost > 0:
            raise ValueError(f"word_start_cost must be <= 0, got {word_start_cost}")
        if not user_word_boost >= 0:
            raise ValueError(f"user_word_boost must be >= 0, got {user_word_boost}")
        if line_end_hyphen is not None and not line_end_hyphen <= 0:
            raise ValueError(f"line_end_hyphen must be a log-probability (<= 0) or None, got {line_end_hyphen}")
        if not case_weight >= 0:
            raise ValueError(f"case_weight must be >= 0, got {case_weight}")
        if not 0 <= word_case_weight < math.inf:
            raise ValueError(f"word_case_weight must be >= 0 and finite, got {word_case_weight}")
        if len(case_priors) != len(CasePriors._fields) or not all(0 < p < 1 for p in case_priors):
            raise ValueError(f"case_priors must be {len(CasePriors._fields)} probabilities in (0, 1) "
                             f"({', '.join(CasePriors._fields)}), got {case_priors!r}")
        self.word_weight = float(word_weight)
        self.oov_penalty = float(oov_penalty)
        self.char_swap = float(char_swap)
        self.word_bonus = float(word_bonus)
        self.word_start_cost = float(word_start_cost)
        self.user_word_boost = float(user_word_boost)
        if word_lm is not None:
            self.word_lm = word_lm
        elif word_weight > 0:
            self.word_lm = WordLanguageModel(word_lm_path)
        else:
            self.word_lm = None
        self.user_words = UserWords(user_words, user_word_boost)
        chars = alphabet.chars
        # characters that continue a word run: letters, digits, apostrophes (the LM units' letters)
        self._run_char = [False] + [c.isalnum() or c == "'" for c in chars]
        self._lower = [""] + [c.lower() for c in chars]
        self._chars = [""] + list(chars)
        self._space = [False] + [c.isspace() for c in chars]
        self._ends_word = [not r for r in self._run_char]  # what completes a word and earns its LM score
        self._complete_cache: dict = {}  # (run, word context, punctuation) -> _word_score(...)
        self.case_weight = float(case_weight)
        priors = CasePriors(*case_priors)
        self._init_case_model(priors)
        self.word_case_weight = float(word_case_weight)
        self._init_word_case(priors, word_case_path)
        self.line_end_hyphen = None if line_end_hyphen is None else float(line_end_hyphen)
        self._hyphen = alphabet.encode("-")[0] if "-" in alphabet.chars else -1
        self._apostrophe = alphabet.encode("'")[0] if "'" in alphabet.chars else -1

    def _init_case_model(self, priors: CasePriors) -> None:
        """Tables of the case model (see the class docstring): per alphabet id, the character
        LM's weighted case factor that a letter's score gives up, and per position the weighted
        ``(ln P(capital), ln P(small letter))`` that it gets instead."""
        chars = self.alphabet.chars
        n = len(chars) + 1
        self._letter = [False] + [c.isalpha() for c in chars]
        self._capital = [False] + [c.isalpha() and c.isupper() for c in chars]
        self._digit = [False] + [c.isdigit() for c in chars]
        self._case_on = self.lm is not None and self.case_weight > 0
        # the most the case model adds over the character LM's factor, per alphabet id and at all
        # (pruning bounds)
        self._case_gains = [0.0] * n
        self._case_gain = 0.0
        self._sentence_ctx = self.word_lm.sentence_start() if self.word_lm is not None else None
        if not self._case_on:
            return
        start, inside = self.lm.case_log_factors()
        self._lm_case_start = [self.lm_weight * v for v in start]
        self._lm_case_inside = [self.lm_weight * v for v in inside]
        w = self.case_weight

        def logs(p):
            return w * math.log(p), w * math.log1p(-p)

        self._case_sentence, self._case_word, self._case_line = (
            logs(priors.sentence_start), logs(priors.word_start), logs(priors.line_start))
        self._case_after_capital, self._case_after_small = logs(priors.after_capital), logs(priors.after_small)
        self._case_after_capitals = logs(priors.after_capitals)
        # a word's first letter gives up the LM's start factor; a later one the inside factor, or
        # the start factor after a digit (the LM's history then restarts: runtime.lm.AFTER_OTHER)
        starts = (self._case_sentence, self._case_word, self._case_line)
        insides = (self._case_after_capital, self._case_after_small, self._case_after_capitals)
        pairs = [(probs, self._lm_case_start) for probs in starts + insides]
        pairs += [(probs, self._lm_case_inside) for probs in insides]
        self._case_gains = [max(0.0, max(probs[0 if self._capital[i] else 1] - lm_case[i] for probs, lm_case in pairs))
                            if self._letter[i] else 0.0 for i in range(n)]
        self._case_gain = max(self._case_gains)

    def _init_word_case(self, priors: CasePriors, path) -> None:
        """Per word of the case table, the weighted log-ratio of its own capital probability to
        the case model's at a word start and at a line start, indexed by ``_Hyp.wcase``."""
        self._word_case: dict = {}
        if not (self._case_on and self.word_case_weight > 0):
            return
        w, p0, q0 = self.word_case_weight, priors.word_start, priors.line_start
        # a line starts a sentence (a capital whatever the word) or goes on with one: the share
        # of sentence starts that makes the line-start prior what it is for a word at p0
        s = max(0.0, (q0 - p0) / (1 - p0))
        for word, p in read_word_case(path).items():
            q = s + (1 - s) * p
            adj = (0.0, w * (math.log1p(-p) - math.log1p(-p0)), w * (math.log(p) - math.log(p0)),
                   w * (math.log1p(-q) - math.log1p(-q0)), w * (math.log(q) - math.log(q0)))
            self._word_case[word] = adj

    def _word_case_score(self, run: str, wcase: int) -> float:
        """What the word case table adds when ``run`` completes, having started as ``wcase`` says."""
        adj = self._word_case.get(run.split("'", 1)[0])
        return adj[wcase] if adj is not None else 0.0

    # ---- interface ---------------------------------------------------------------------------
    def new_state(self, user_words=None) -> WordBeamState:
        """A fresh stream state; ``user_words`` (same forms as the option) add to the decoder's."""
        uw = self.user_words
        if user_words is not None:
            uw = uw.merged(UserWords(user_words, self.user_word_boost))
        h0 = self.lm.initial_history() if self.lm is not None else ""
        root = _Hyp(0.0, _NEG_INF, 0.0, h0, (), "", 0.0, None, None)
        uw = uw if uw else None
        gains = self._case_gains if uw is None else [g + uw.max_step for g in self._case_gains]
        return WordBeamState(beams={(): root}, user_words=uw, run_gains=gains)

    def _owed(self, hyp, state) -> float:
        """What the final result adds to the beam score: the unfinished last word scored as if it
        were complete (with the word LM and user words)."""
        return self._finish(hyp, state.user_words) + hyp.tail

    # ---- word scores -------------------------------------------------------------------------
    def _complete(self, run: str, run_lm: float, wctx: tuple, punct: str, user: Optional[UserWords],
                  wcase: int = 0):
        """``(score, context)`` for completing ``run`` (and the punctuation mark ``punct``, "" for a
        space) from word context ``wctx``; ``wcase`` says how the word started (``_Hyp.wcase``),
        for the word case table's term."""
        if user is None:  # the common case, cached: the same word ends in many hypotheses and frames
            key = (run, wctx, punct)
            hit = self._complete_cache.get(key)
            if hit is None:
                if len(self._complete_cache) >= 1 << 15:  # bounded memory over a long session
                    self._complete_cache.clear()
                hit = self._complete_cache[key] = self._word_score(run, wctx, punct, None)
        else:
            hit = self._word_score(run, wctx, punct, user)
        total, wctx, swap = hit
        if swap:
            total -= self.char_swap * run_lm
        if wcase:
            total += self._word_case_score(run, wcase)
        return total, wctx

    def _word_score(self, run: str, wctx: tuple, punct: str, user: Optional[UserWords]):
        """``(score, context, swap)``: :meth:`_complete` before the character-LM swap, and whether
        the swap applies (every word unit is in the vocabulary)."""
        units = lm_units(run) if run else []
        if punct:
            units.append(punct.lower())
        if not units or self.word_lm is None:
            return (-self.word_start_cost if run else 0.0), wctx, False
        wlm, ww = self.word_lm, self.word_weight
        total = 0.0
        swap = True
        for u in units:
            lp, wctx, known = wlm.score(wctx, u)
            total += ww * lp + self.word_bonus
            if not known:
                if user is not None and u in user.units:
                    total -= ww * lp  # a user word: no OOV cost, its boost carries it
                else:
                    total += self.oov_penalty
                if u[0].isalnum():
                    swap = False
            if u in SENTENCE_END:
                wctx = wlm.sentence_start()
        if run:
            total -= self.word_start_cost  # charged in advance when the word started
        return total, wctx, swap and bool(run)

    def _finish(self, h: _Hyp, user: Optional[UserWords]) -> float:
        """Score still owed by a hypothesis whose last word is unfinished: its word-LM score, and
        the user-word credit it would give back."""
        score = 0.0
        if h.run:
            score += self._complete(h.run, h.run_lm, h.wctx, "", user, h.wcase)[0]
        if h.hot is not None:
            prefix, earned, kept = h.hot
            if prefix not in user.phrases:  # the end of input is a word boundary
                score += kept - earned
        return score

    # ---- search ------------------------------------------------------------------------------
    def _materialise(self, hyp: _Hyp) -> None:
        parent = hyp.parent
        hyp.history = self.lm.advance(parent.history, hyp.char) if self.lm is not None else parent.history
        hyp.parent = None

    def _extend(self, hyp: _Hyp, c: int, char_lp: float, user: Optional[UserWords]):
        """``(lm score, wctx, run, run_lm, hot, after, tail, caps, wcase)`` of ``hyp`` extended by
        character ``c`` (see :class:`_Hyp`); ``char_lp`` is the weighted character-LM log-probability of ``c``."""
        lm_score = hyp.lm + char_lp + hyp.after
        ch = self._lower[c]
        after = tail = 0.0
        caps = wcase = 0
        if self._run_char[c]:
            wcase = hyp.wcase if hyp.run else 0
            if self._case_on and self._letter[c]:
                # the case model's term replaces the character LM's case factor and, unlike the
                # rest of the letter's score, stays when the word LM's score is swapped in
                if hyp.run:
                    prev = hyp.char  # the word's last character so far
                    # the character LM's own factor: its history restarts after a digit
                    lm_case = (self._lm_case_start if self._digit[prev] else self._lm_case_inside)[c]
                    # "DON'T": an apostrophe keeps a word's run of capitals (caps), "O'neil" not
                    probs = (self._case_after_capitals if hyp.caps > 1 else
                             self._case_after_capital if self._capital[prev] else self._case_after_small)
                else:
                    lm_case = self._lm_case_start[c]
                    if hyp.emissions is None:  # only the root has no emissions
                        probs, wcase = self._case_line, 3 + self._capital[c]
                    elif hyp.wctx == self._sentence_ctx:
                        probs = self._case_sentence
                    else:
                        probs, wcase = self._case_word, 1 + self._capital[c]
                char_lp -= lm_case
                lm_score += (probs[0] if self._capital[c] else probs[1]) - lm_case
            run_lm = hyp.run_lm + min(char_lp, 0.0)
            if not hyp.run:
                lm_score += self.word_start_cost
            run, wctx = hyp.run + ch, hyp.wctx
            if self._capital[c]:
                caps = hyp.caps + 1 if hyp.run else 1
            elif c == self._apostrophe:
                caps = hyp.caps
        else:
            punct = "" if self._space[c] else ch
            delta, wctx = self._complete(hyp.run, hyp.run_lm, hyp.wctx, punct, user, hyp.wcase)
            if punct and self.word_lm is not None and punct in self.word_lm:
                delta -= char_lp  # the word LM models a punctuation mark in context: its score replaces the floor's
            if c == self._hyphen and hyp.run and self.line_end_hyphen is not None:
                # a word broken across lines ("represen-"), or the first part of a compound
                # ("week-end"): the better of the two now, the difference when the next
                # character (or the line's end) tells which
                broken = self.line_end_hyphen - char_lp  # the prior replaces the hyphen's own LM score
                best = max(delta, broken)
                after, tail = delta - best, broken - best
                delta = best
            lm_score += delta
            run, run_lm = "", 0.0
        hot = None
        if user is not None:
            ch = self._chars[c]  # user words match as written: "Susan" boosts "Susan", not "susan"
            is_run = self._run_char[c]
            h = hyp.hot
            if h is not None:
                prefix, earned, kept = h
                if not is_run and prefix in user.phrases:
                    kept = earned  # a phrase followed by a word boundary is complete: it keeps its boost
                cand = prefix + ch
                step = user.per_char.get(cand)
                if step is not None:
                    lm_score += step
                    hot = (cand, earned + step, kept)
                else:  # the match stops: give back what was earned since the last complete phrase
                    lm_score += kept - earned
            if hot is None and is_run and not hyp.run:  # a word starts: try a new match
                step = user.per_char.get(ch)
                if step is not None:
                    lm_score += step
                    hot = (ch, step, 0.0)
        return lm_score, wctx, run, run_lm, hot, after, tail, caps, wcase

    # ---- the beam search's step (runtime.beam) with this decoder's scores --------------------
    def _prune_gain(self, hyp, state) -> float:
        """The most any extension can gain from the LMs over its parent's score: a user-word step,
        the case model's term, or a completed word whose swapped-out character scores were low."""
        return ((self.char_swap * -hyp.run_lm - self.word_start_cost if hyp.run else 0.0)
                + 2 * max(self.word_bonus, 0.0) + self._case_gain
                # the word an extension can complete is hyp's own: its case-table term, exactly
                + (max(0.0, self._word_case_score(hyp.run, hyp.wcase)) if hyp.wcase else 0.0)
                + (state.user_words.max_step if state.user_words is not None else 0.0))

    def _run_gains(self, state) -> list:
        """Per alphabet id, the most a letter, digit or apostrophe can gain over its character-LM
        score: the case model's term over the LM's case factor, and a user-word step (a word
        start's cost is <= 0)."""
        return state.run_gains

    def _extension_score(self, hyp, c: int, char_lp: float, state, gain: float):
        lm_score, *extra = self._extend(hyp, c, char_lp, state.user_words)
        return lm_score, extra

    def _make_extension(self, p: float, lm_score: float, hyp, c: int, emissions, extra):
        wctx, run, run_lm, hot, after, tail, caps, wcase = extra
        return _Hyp(_NEG_INF, p, lm_score, None, wctx, run, run_lm, hot, emissions, p, hyp, c, after, tail, caps,
                    wcase)
