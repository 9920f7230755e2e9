"""CTC prefix beam search with a character language model, run incrementally.

Same interface as :class:`runtime.decoders.CtcGreedyDecoder` (``new_state / accept / result``):
log-probabilities arrive chunk by chunk and the beam is carried in the per-stream state, so any
chunking of the same frames gives the same result as one call over all of them.

Each hypothesis (a prefix of characters) keeps two acoustic log-probabilities, ending in blank
(``pb``) and ending in its last character (``pnb``), as in the standard CTC prefix search, plus
its language-model score, which depends on the prefix only. Hypotheses are ranked by

    log(P_b + P_nb) + lm_weight * log P_lm(prefix) + insertion_bonus * len(prefix)
                    + lexicon_bonus * (completed words found in the lexicon)

Per frame only characters with ``log p >= char_threshold`` (at most ``max_chars_per_frame`` of
them) are tried as extensions, and a new prefix scoring more than ``prune_beam`` below the best
prefix that stays, nor one below the ``beam_width``-th best score known so far in the frame
(stays and prefixes already made: the frame's cut would drop it), is made at all: on a blank frame (about half of them) nothing new is made, so the cost per
frame is small and constant. (Measured on 300 IAM-OnDB validation lines, frame by frame:
the defaults, ``char_threshold`` -7 and ``prune_beam`` 8, make 3.1 new hypotheses per frame, where
-10 and no ``prune_beam`` make 14.9; on those lines, 300 UNIPEN and 100 ImadocSen validation
samples they give the same error counts as -10 and 10, the previous defaults, in 20-25 % less time.)
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from runtime.alphabet import Alphabet
from runtime.lm import CharLanguageModel, load_lexicon

_NEG_INF = float("-inf")
# the second pass skips longer readings: the line LM was trained on 128-character windows, and its
# cost grows with the length (a whole page read offline as one line)
LINE_LM_MAX_CHARS = 1000


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


class _Hypothesis:
    """One prefix in the beam. A plain class with ``__slots__``: dozens are made per frame.

    ``history`` and ``word`` of an extension made this frame are filled in only if it survives
    pruning (``parent`` and ``char`` say how); ``lm_row`` caches the LM's next-character
    log-probabilities for ``history`` once the hypothesis is extended from.
    """

    __slots__ = ("pb", "pnb", "lm", "history", "word", "emissions", "emit_score", "parent", "char", "lm_row",
                 "rank", "fixed", "gain")

    def __init__(self, pb, pnb, lm, history, word, emissions, emit_score=_NEG_INF, parent=None, char=0,
                 lm_row=None):
        self.pb = pb  # log P(prefix, path ends in blank)
        self.pnb = pnb  # log P(prefix, path ends in the prefix's last character)
        self.lm = lm  # lm_weight * log P_lm(prefix) + bonuses (depends on the prefix only)
        self.history = history  # LM history after the prefix (None until materialised)
        self.word = word  # current (unfinished) word, lowercased, for the lexicon bonus
        # emission frame of each character on the best path so far, as a linked list
        # ``(frame, earlier)`` (None when empty): extending it is O(1), not a tuple copy
        self.emissions = emissions
        self.emit_score = emit_score  # log-probability of the path group the emissions come from
        self.parent = parent
        self.char = char
        self.lm_row = lm_row
        self.rank = None  # its _score() this frame, where known (a search step's cache)
        # what depends on the prefix alone, kept once computed: the final score less log(P_b + P_nb)
        # (result() asks after every frame for every hypothesis) and _prune_gain()
        self.fixed = self.gain = None


def _score(prefix: tuple, hyp: _Hypothesis, insertion_bonus: float) -> float:
    """The rank of a hypothesis in the beam (the module docstring's formula without the lexicon
    bonus of an unfinished word, which only the final result counts)."""
    return _logaddexp(hyp.pb, hyp.pnb) + hyp.lm + insertion_bonus * len(prefix)


def _add_path(ext: _Hypothesis, p: float, emissions) -> None:
    """Add a path of log-probability ``p`` that ends in ``ext``'s last character, emitted at the
    frame that heads ``emissions``; the likeliest way in decides the alignment."""
    ext.pnb = _logaddexp(ext.pnb, p)
    ext.rank = None  # its score changed
    if p > ext.emit_score:
        ext.emissions, ext.emit_score = emissions, p


def _rank_of(item) -> float:
    return item[1].rank


def _emission_list(node) -> list:
    out = []
    while node is not None:
        out.append(node[0])
        node = node[1]
    out.reverse()
    return out


@dataclass
class BeamState:
    """Per-stream state of :class:`CtcPrefixBeamDecoder`."""

    beams: dict = field(default_factory=dict)  # prefix (tuple of ids) -> _Hypothesis
    frames: int = 0
    best: Optional[tuple] = None  # (text, emissions tuple) of the last result(), until frames arrive
    final: Optional[tuple] = None  # the same for final_result()


class CtcPrefixBeamDecoder:
    """Prefix beam search over CTC outputs with a character LM and an optional lexicon.

    Options (all keyword; a bad value raises ValueError naming it):

    * ``beam_width`` hypotheses kept after each frame (default 8);
    * ``lm_weight`` scale of the LM log-probability (0 disables the LM; default 0.5);
    * ``insertion_bonus`` added per character, balancing the LM's preference for short text;
    * ``lm_path`` character LM file (default: the shipped ``runtime/models/charlm.npz``);
    * ``lexicon`` a word list file (one word a line) or an iterable of words;
      ``lexicon_bonus`` is added for every completed word found in it;
    * ``char_threshold`` / ``max_chars_per_frame`` / ``prune_beam`` the per-frame extension
      pruning (``prune_beam=math.inf`` turns the last off);
    * ``empty_penalty`` added to the empty reading when the result is chosen: ink was written, so
      "nothing" must not win just because it pays no LM cost (a lone "7" costs the word LM about
      6 nats, more than a crisp CTC peak wins over the all-blank path);
    * ``single_char_lm_scale`` (0 to 1): when the reading chosen is one character, it is chosen
      again among the one-character hypotheses with the LM terms at this share of their weight.
      The LMs know words, not lone characters, and pull a lone "1" to "I" or a "0" to "o":
      on UNIPEN chars ``val`` (every 4th sample, stage-8 model) the word decoder's CER is 35.0 %
      at 1 (no re-choice), 29.7 % at 0, 30.5 % at 0.25, where UNIPEN words ``val`` (277 of its
      2,931 words are one character) also gains a little (25.86 -> 25.83 % WER; 26.13 % at 0);
    * ``line_lm_weight`` scale of the line LM (:mod:`runtime.neural_lm`) in :meth:`final_result`:
      when a line has ended, its ``line_lm_nbest`` best readings, of those at most
      ``line_lm_margin`` below the best score, are rescored with this weight times the line LM's
      log-probability plus ``line_lm_char_bonus`` per character (the LM has no end of line, so
      without it every character costs and shorter readings gain) (0, this decoder's default,
      turns it off and loads nothing);
      ``line_lm_path`` the ONNX file (default: the shipped ``runtime/models/linelm.onnx``), or
      ``line_lm`` a loaded :class:`runtime.neural_lm.NeuralLineLM` to share.
    """

    name = "beam"

    def __init__(self, alphabet: Alphabet, beam_width: int = 8, lm_weight: float = 0.5,
                 insertion_bonus: float = 1.0, lm_path=None, lexicon=None, lexicon_bonus: float = 2.0,
                 char_threshold: float = -7.0, max_chars_per_frame: int = 6, prune_beam: float = 8.0,
                 empty_penalty: float = -10.0, single_char_lm_scale: float = 0.25,
                 lm: Optional[CharLanguageModel] = None, line_lm_weight: float = 0.0, line_lm_nbest: int = 8,
                 line_lm_margin: float = 2.0, line_lm_char_bonus: float = 1.5, line_lm_path=None, line_lm=None):
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        if lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
        if max_chars_per_frame < 1:
            raise ValueError(f"max_chars_per_frame must be >= 1, got {max_chars_per_frame}")
        if not prune_beam > 0:
            raise ValueError(f"prune_beam must be > 0, got {prune_beam}")
        if lexicon_bonus < 0:
            raise ValueError(f"lexicon_bonus must be >= 0, got {lexicon_bonus}")
        if empty_penalty > 0:
            raise ValueError(f"empty_penalty must be <= 0, got {empty_penalty}")
        self.empty_penalty = float(empty_penalty)
        if not 0 <= single_char_lm_scale <= 1:
            raise ValueError(f"single_char_lm_scale must be in [0, 1], got {single_char_lm_scale}")
        self.single_char_lm_scale = float(single_char_lm_scale)
        self.alphabet = alphabet
        self.beam_width = int(beam_width)
        self.lm_weight = float(lm_weight)
        self.insertion_bonus = float(insertion_bonus)
        self.lexicon_bonus = float(lexicon_bonus)
        self.char_threshold = float(char_threshold)
        self.max_chars_per_frame = int(max_chars_per_frame)
        self.prune_beam = float(prune_beam)
        self.lm = lm if lm is not None else (CharLanguageModel(lm_path, alphabet) if lm_weight > 0 else None)
        if lexicon is None:
            self.lexicon = frozenset()
        elif isinstance(lexicon, (str, bytes)) or hasattr(lexicon, "__fspath__"):
            self.lexicon = load_lexicon(lexicon)
        else:
            self.lexicon = frozenset(w.lower() for w in lexicon)
        chars = alphabet.chars
        # characters that end a word (space, punctuation, digits); letters and apostrophes continue it
        self._word_char = [False] + [c.isalpha() or c == "'" for c in chars]
        self._lower = [""] + [c.lower() for c in chars]
        # characters whose extension may earn `_prune_gain` (a completed word's bonus); the others
        # are bounded by `_run_gains`
        self._ends_word = [not w for w in self._word_char]
        self._no_gains = [0.0] * (len(chars) + 1)
        self._init_line_lm(line_lm_weight, line_lm_nbest, line_lm_margin, line_lm_char_bonus, line_lm_path, line_lm)

    def _init_line_lm(self, weight: float, nbest: int, margin: float, char_bonus: float, path, line_lm) -> None:
        if not 0 <= weight < math.inf:
            raise ValueError(f"line_lm_weight must be >= 0 and finite, got {weight}")
        if nbest < 1:
            raise ValueError(f"line_lm_nbest must be >= 1, got {nbest}")
        if not 0 < margin < math.inf:
            raise ValueError(f"line_lm_margin must be > 0 and finite, got {margin}")
        if not 0 <= char_bonus < math.inf:
            raise ValueError(f"line_lm_char_bonus must be >= 0 and finite, got {char_bonus}")
        if weight == 0 and (path is not None or line_lm is not None):
            raise ValueError("a line LM was given but line_lm_weight is 0: give the weight too (0.3 is the "
                             "word decoder's)")
        self.line_lm_weight, self.line_lm_nbest, self.line_lm_margin = float(weight), int(nbest), float(margin)
        self.line_lm_char_bonus = float(char_bonus)
        if line_lm is None and weight > 0:
            from runtime.neural_lm import NeuralLineLM

            line_lm = NeuralLineLM(path)
        self.line_lm = line_lm if weight > 0 else None

    # ---- interface ---------------------------------------------------------------------------
    def new_state(self) -> BeamState:
        h0 = self.lm.initial_history() if self.lm is not None else ""
        return BeamState(beams={(): _Hypothesis(0.0, _NEG_INF, 0.0, h0, "", None)})

    def accept(self, state: BeamState, log_probs: np.ndarray) -> None:
        """Advance the beam over ``(T, C)`` log-probabilities of the next T frames."""
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[0] == 0:
            return
        if lp.shape[1] != self.alphabet.size:  # checked first: _step updates the beam in place
            raise ValueError(f"log-probabilities have {lp.shape[1]} classes, the alphabet {self.alphabet.size}")
        state.best = state.final = None
        # candidate extensions: the characters at or above char_threshold, the likeliest
        # max_chars_per_frame of them, tried in id order
        above = lp >= self.char_threshold
        above[:, self.alphabet.blank] = False
        if lp.shape[0] == 1:  # the streaming case: one frame per call
            cands = [np.flatnonzero(above[0]).tolist()]
        else:
            cands = [[] for _ in range(lp.shape[0])]
            frames_idx, chars_idx = np.nonzero(above)
            for t, c in zip(frames_idx.tolist(), chars_idx.tolist()):
                cands[t].append(c)
        rows = lp.tolist()
        k = self.max_chars_per_frame
        for t, row in enumerate(rows):
            cs = cands[t]
            if len(cs) > k:
                cs = sorted(sorted(cs, key=row.__getitem__, reverse=True)[:k])
            self._step(state, row, cs, state.frames + t)
        state.frames += lp.shape[0]

    def result(self, state: BeamState):
        """``(text, emissions)`` of the best hypothesis so far (an unfinished last word found in the
        lexicon counts as found). Kept until more frames arrive: a live loop asks after every burst
        of pen samples, and most bursts complete no frame."""
        if state.best is None:
            best_score, prefix, hyp = _NEG_INF, None, None
            # _final_score() inlined: asked after every frame, for every hypothesis
            for p, h in state.beams.items():
                pb, pnb = h.pb, h.pnb
                score = pb if pb > pnb else pnb
                if score != _NEG_INF:
                    score += math.log1p(math.exp(-abs(pb - pnb)))
                score += h.fixed if h.fixed is not None else self._fixed(p, h, state)
                if not p:
                    score += self.empty_penalty
                if prefix is None or score > best_score:
                    best_score, prefix, hyp = score, p, h
            if len(prefix) == 1 and self.single_char_lm_scale != 1.0:
                prefix, hyp = self._single_char(state)
            state.best = (self.alphabet.decode(prefix), tuple(_emission_list(hyp.emissions)))
        return state.best[0], list(state.best[1])

    def nbest(self, state: BeamState, n: int) -> list:
        """The ``n`` best readings by the score :meth:`result` ranks them by, best first:
        ``[(score, text, emissions), ...]``."""
        scored = []
        for p, h in state.beams.items():
            score = self._final_score(p, h, state) + (0.0 if p else self.empty_penalty)
            if score != _NEG_INF:
                scored.append((score, p, h))
        top = heapq.nlargest(n, scored, key=lambda item: item[0])
        return [(score, self.alphabet.decode(p), _emission_list(h.emissions)) for score, p, h in top]

    def final_result(self, state: BeamState):
        """``(text, emissions)`` of a line that has ended: :meth:`result`, or with a line LM the
        best of the ``line_lm_nbest`` best readings within ``line_lm_margin`` of the best score once
        each has gained ``line_lm_weight`` times its line-LM score (the LM runs once per line, so
        the margin is what bounds its cost). The empty reading is never a candidate; when a
        one-character reading wins, the single-character rule chooses which character (as in
        :meth:`result`). A reading longer than :data:`LINE_LM_MAX_CHARS` keeps the first pass."""
        if self.line_lm is None:
            return self.result(state)
        if state.final is None:
            text, emissions = self.result(state)
            if 1 < len(text) <= LINE_LM_MAX_CHARS:
                ranked = self.nbest(state, self.line_lm_nbest)
                cands = [c for c in ranked if c[0] >= ranked[0][0] - self.line_lm_margin and c[1].strip()]
                if cands:
                    lm = self.line_lm.log_prob([t for _, t, _ in cands], self.line_lm_char_bonus)
                    k = int(np.argmax([score + self.line_lm_weight * v for (score, _, _), v in zip(cands, lm)]))
                    text, emissions = cands[k][1], cands[k][2]
                    if len(text) == 1 and self.single_char_lm_scale != 1.0:
                        prefix, hyp = self._single_char(state)
                        text, emissions = self.alphabet.decode(prefix), _emission_list(hyp.emissions)
            state.final = (text, tuple(emissions))
        return state.final[0], list(state.final[1])

    def _single_char(self, state: BeamState):
        """The one-character hypothesis with the best score when the LM terms count at
        ``single_char_lm_scale`` of their weight (see the class docstring)."""
        scale, best = self.single_char_lm_scale, None
        for p, h in state.beams.items():
            if len(p) == 1:
                model = _logaddexp(h.pb, h.pnb)
                score = model + scale * (self._final_score(p, h, state) - model)
                if best is None or score > best[0]:
                    best = (score, p, h)
        return best[1], best[2]

    # ---- search ------------------------------------------------------------------------------
    def _materialise(self, hyp: _Hypothesis) -> None:
        """Fill in the LM history and current word of an extension that survived pruning."""
        parent, char = hyp.parent, hyp.char
        hyp.history = self.lm.advance(parent.history, char) if self.lm is not None else parent.history
        hyp.word = parent.word + self._lower[char] if self._word_char[char] else ""
        hyp.parent = None

    # ---- what a subclass scores differently (the word decoder) ---------------------------------
    def _final_score(self, prefix: tuple, hyp, state) -> float:
        """The rank of ``hyp`` when the result is chosen: its beam score plus :meth:`_owed`
        (:meth:`result` computes the same inline; a subclass changes :meth:`_owed`)."""
        return _logaddexp(hyp.pb, hyp.pnb) + self._fixed(prefix, hyp, state)

    def _fixed(self, prefix: tuple, hyp, state) -> float:
        """The final score less ``log(P_b + P_nb)``: it depends on the prefix alone, so it is kept
        on the hypothesis once computed."""
        if hyp.fixed is None:
            hyp.fixed = hyp.lm + self.insertion_bonus * len(prefix) + self._owed(hyp, state)
        return hyp.fixed

    def _lexicon_bonus_of(self, hyp) -> float:
        """The lexicon bonus that ``hyp``'s current word earns when it ends (0 if it is no lexicon word)."""
        return self.lexicon_bonus if hyp.word and hyp.word in self.lexicon else 0.0

    def _owed(self, hyp, state) -> float:
        """What the final result adds to ``hyp``'s beam score: the bonus of an unfinished last word."""
        return self._lexicon_bonus_of(hyp)

    def _prune_gain(self, hyp, state) -> float:
        """The most the LM terms can add to an extension of ``hyp`` beyond its parent's score and
        the character's own log-probability: the bonus of the word the extension may complete."""
        return self._lexicon_bonus_of(hyp)

    def _run_gains(self, state) -> list:
        """Per alphabet id, the most the LM terms can add to an extension by that character when
        it does not end a word (``_ends_word``), beyond its parent's LM score and the character
        LM's weighted score of the character: none here."""
        return self._no_gains

    def _extension_score(self, hyp, c: int, char_lp: float, state, gain: float):
        """``(lm_score, extra)`` of ``hyp`` extended by ``c`` (``char_lp``: the weighted character
        LM log-probability); ``extra`` goes to :meth:`_make_extension` if the extension is made."""
        lm_score = hyp.lm + char_lp
        if gain and not self._word_char[c]:
            lm_score += gain  # the word just completed is in the lexicon
        return lm_score, None

    def _make_extension(self, p: float, lm_score: float, hyp, c: int, emissions, extra):
        """The new hypothesis ``hyp`` + ``c`` (its history is filled in if it survives the cut)."""
        return _Hypothesis(_NEG_INF, p, lm_score, None, None, emissions, p, hyp, c)

    def _step(self, state, row: list, cands: list, frame: int) -> None:
        blank_lp = row[self.alphabet.blank]
        lm_weight, lm, bonus = self.lm_weight, self.lm, self.insertion_bonus
        beams = state.beams
        if not cands:  # most frames: every prefix stays, none is made, so there is nothing to cut
            for prefix, hyp in beams.items():
                pb, pnb = hyp.pb, hyp.pnb
                stay = pb if pb > pnb else pnb  # _logaddexp(pb, pnb), inlined: the hottest loop
                if stay != _NEG_INF:
                    stay += math.log1p(math.exp(-abs(pb - pnb)))
                stay += blank_lp
                repeat = pnb + row[prefix[-1]] if prefix else _NEG_INF
                hyp.pb, hyp.pnb = stay, repeat
                hyp.emit_score = stay if stay > repeat else repeat
            return
        parents = list(beams.items())
        old = []  # (pb, total, emissions) of every prefix before this frame, for its extensions
        stay_scores = []
        # pass 1: every prefix stays (a blank, or its last character repeated); updated in place
        # because each prefix is kept by exactly one hypothesis
        for prefix, hyp in parents:
            pb, pnb = hyp.pb, hyp.pnb
            total = pb if pb > pnb else pnb  # _logaddexp(pb, pnb), inlined
            if total != _NEG_INF:
                total += math.log1p(math.exp(-abs(pb - pnb)))
            old.append((pb, total, hyp.emissions))
            stay = total + blank_lp
            # the last character repeated without a blank stays the same prefix
            repeat = pnb + row[prefix[-1]] if prefix else _NEG_INF
            hyp.pb, hyp.pnb = stay, repeat
            if stay > repeat:
                hyp.emit_score = score = stay
            else:
                hyp.emit_score = score = repeat
            if score != _NEG_INF:  # _logaddexp(stay, repeat), inlined
                score += math.log1p(math.exp(-abs(stay - repeat)))
            hyp.rank = score = score + hyp.lm + bonus * len(prefix)  # _score()
            stay_scores.append(score)
        # pass 2: extensions; a new prefix more than `prune_beam` below the best stay is not made,
        # nor one below the beam_width-th best stay: that many prefixes already outrank it (a
        # stay's score only grows this frame, by paths from extensions), so the cut at the end
        # would drop it anyway; made, it would cost its LM lookups and a place in the sort
        # The second bound rises as prefixes are made: a min-heap holds the beam_width best scores
        # known so far (stays and new prefixes; a score only grows this frame, so each is a lower
        # bound and the heap's least is one of the cut's), and every prefix made pushes out its least.
        floor = max(stay_scores) - self.prune_beam
        width = self.beam_width
        top = None
        if len(stay_scores) == width:  # a full beam (never more): its worst stay is that one
            top = stay_scores
            heapq.heapify(top)
            floor = max(floor, top[0])
        best_char = max(row[c] for c in cands)
        run_gains = self._run_gains(state)
        ends_word = self._ends_word
        children = cand_set = None
        for (prefix, hyp), (pb, total, emissions) in zip(parents, old):
            length_bonus = bonus * (len(prefix) + 1)
            gain = hyp.gain
            if gain is None:
                gain = hyp.gain = self._prune_gain(hyp, state)
            # no new prefix from this one can score more than this (LM log-probabilities are
            # <= 0, `gain` bounds what the LM terms add): a prefix far below the best makes none
            # and costs no LM lookups; its paths into prefixes already in the beam still count
            last = prefix[-1] if prefix else -1
            if total + best_char + hyp.lm + length_bonus + gain < floor - 1e-9:
                if children is None:  # which prefixes of the beam extend which, made once a frame
                    children = {}
                    for q, _ in parents:
                        if q:
                            children.setdefault(q[:-1], []).append(q[-1])
                    cand_set = set(cands)
                for c in children.get(prefix, ()):
                    if c in cand_set:
                        p = row[c] + (pb if c == last else total)
                        if p != _NEG_INF:
                            _add_path(beams[prefix + (c,)], p, (frame, emissions))
                continue
            lm_row = None
            for c in cands:
                p = row[c] + (pb if c == last else total)  # a repeat needs a blank in between
                if p == _NEG_INF:
                    continue
                ext_prefix = prefix + (c,)
                ext = beams.get(ext_prefix)
                if ext is None:
                    if ends_word[c]:
                        bound = gain
                    else:  # a character inside a word completes none: a tighter bound
                        bound = run_gains[c]
                    if p + hyp.lm + length_bonus + bound < floor:
                        continue  # below the cut whatever the LMs say
                    char_lp = 0.0
                    if lm is not None:
                        if lm_row is None:
                            lm_row = hyp.lm_row
                            if lm_row is None:
                                lm_row = hyp.lm_row = lm.log_prob_row(hyp.history)
                        char_lp = lm_weight * lm_row[c]
                        if not ends_word[c] and p + hyp.lm + char_lp + length_bonus + bound < floor - 1e-9:
                            continue  # inside a word the LM terms add at most run_gains[c] to char_lp
                    lm_score, extra = self._extension_score(hyp, c, char_lp, state, gain)
                    if p + lm_score + length_bonus < floor:
                        continue
                    ext = beams[ext_prefix] = self._make_extension(p, lm_score, hyp, c, (frame, emissions), extra)
                    ext.rank = rank = p + lm_score + length_bonus  # == _score(ext_prefix, ext, bonus)
                    if top is not None:
                        heapq.heapreplace(top, rank)  # rank >= floor >= top[0]
                        if top[0] > floor:
                            floor = top[0]
                    elif len(beams) == width:  # the beam just filled: the bound starts here
                        top = [_score(q, h, bonus) if h.rank is None else h.rank for q, h in beams.items()]
                        heapq.heapify(top)
                        if top[0] > floor:
                            floor = top[0]
                    continue
                _add_path(ext, p, (frame, emissions))
        if len(beams) > self.beam_width:
            for prefix, hyp in beams.items():
                if hyp.rank is None:
                    hyp.rank = _score(prefix, hyp, bonus)
            ranked = sorted(beams.items(), key=_rank_of, reverse=True)
            state.beams = beams = dict(ranked[:self.beam_width])
        for hyp in beams.values():
            if hyp.parent is not None:
                self._materialise(hyp)
