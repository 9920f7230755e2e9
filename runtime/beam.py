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
them) are tried as extensions, which keeps the cost per frame small and constant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from runtime.alphabet import Alphabet
from runtime.lm import CharLanguageModel, load_lexicon

_NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@dataclass
class _Hypothesis:
    pb: float  # log P(prefix, path ends in blank)
    pnb: float  # log P(prefix, path ends in the prefix's last character)
    lm: float  # lm_weight * log P_lm(prefix) + bonuses (depends on the prefix only)
    history: str  # LM history after the prefix
    word: str  # current (unfinished) word, lowercased, for the lexicon bonus
    emissions: tuple  # global frame index of each character's emission on the best path so far
    emit_score: float = _NEG_INF  # log-probability of the path group the emissions come from


@dataclass
class BeamState:
    """Per-stream state of :class:`CtcPrefixBeamDecoder`."""

    beams: dict = field(default_factory=dict)  # prefix (tuple of ids) -> _Hypothesis
    frames: int = 0


class CtcPrefixBeamDecoder:
    """Prefix beam search over CTC outputs with a character LM and an optional lexicon.

    Options (all keyword; a bad value raises ValueError naming it):

    * ``beam_width`` hypotheses kept after each frame (default 8);
    * ``lm_weight`` scale of the LM log-probability (0 disables the LM; default 0.5);
    * ``insertion_bonus`` added per character, balancing the LM's preference for short text;
    * ``lm_path`` character LM file (default: the shipped ``runtime/models/charlm.npz``);
    * ``lexicon`` a word list file (one word a line) or an iterable of words;
      ``lexicon_bonus`` is added for every completed word found in it;
    * ``char_threshold`` / ``max_chars_per_frame`` the per-frame extension pruning.
    """

    name = "beam"

    def __init__(self, alphabet: Alphabet, beam_width: int = 8, lm_weight: float = 0.5,
                 insertion_bonus: float = 1.0, lm_path=None, lexicon=None, lexicon_bonus: float = 2.0,
                 char_threshold: float = -10.0, max_chars_per_frame: int = 6, lm: Optional[CharLanguageModel] = None):
        if beam_width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        if lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
        if max_chars_per_frame < 1:
            raise ValueError(f"max_chars_per_frame must be >= 1, got {max_chars_per_frame}")
        self.alphabet = alphabet
        self.beam_width = int(beam_width)
        self.lm_weight = float(lm_weight)
        self.insertion_bonus = float(insertion_bonus)
        self.lexicon_bonus = float(lexicon_bonus)
        self.char_threshold = float(char_threshold)
        self.max_chars_per_frame = int(max_chars_per_frame)
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

    # ---- interface ---------------------------------------------------------------------------
    def new_state(self) -> BeamState:
        h0 = self.lm.initial_history() if self.lm is not None else ""
        return BeamState(beams={(): _Hypothesis(0.0, _NEG_INF, 0.0, h0, "", ())})

    def accept(self, state: BeamState, log_probs: np.ndarray) -> None:
        """Advance the beam over ``(T, C)`` log-probabilities of the next T frames."""
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[0] == 0:
            return
        blank = self.alphabet.blank
        # candidate extensions per frame, chosen for the whole chunk at once (numpy), best first
        k = min(self.max_chars_per_frame, lp.shape[1] - 1)
        masked = lp.copy()
        masked[:, blank] = _NEG_INF
        top = np.argpartition(-masked, k - 1, axis=1)[:, :k] if k < masked.shape[1] else np.argsort(-masked, axis=1)
        rows = lp.tolist()
        for t in range(lp.shape[0]):
            row = rows[t]
            cands = sorted(int(c) for c in top[t] if row[c] >= self.char_threshold)
            self._step(state, row, cands, state.frames + t)
        state.frames += lp.shape[0]

    def result(self, state: BeamState):
        """``(text, emissions)`` of the best hypothesis so far (an unfinished last word found in the
        lexicon counts as found)."""
        best = max(state.beams.items(), key=lambda kv: self._final_score(kv[1], len(kv[0])))
        prefix, hyp = best
        return self.alphabet.decode(prefix), list(hyp.emissions)

    # ---- search ------------------------------------------------------------------------------
    def _score(self, hyp: _Hypothesis, length: int) -> float:
        return _logaddexp(hyp.pb, hyp.pnb) + hyp.lm + self.insertion_bonus * length

    def _final_score(self, hyp: _Hypothesis, length: int) -> float:
        bonus = self.lexicon_bonus if hyp.word and hyp.word in self.lexicon else 0.0
        return self._score(hyp, length) + bonus

    def _extend(self, hyp: _Hypothesis, char: int, frame: int) -> _Hypothesis:
        lm_score = hyp.lm
        history = hyp.history
        if self.lm is not None:
            lm_score += self.lm_weight * float(self.lm.log_probs(history)[char])
            history = self.lm.advance(history, char)
        if self._word_char[char]:
            word = hyp.word + self._lower[char]
        else:
            if hyp.word and hyp.word in self.lexicon:
                lm_score += self.lexicon_bonus
            word = ""
        return _Hypothesis(_NEG_INF, _NEG_INF, lm_score, history, word, hyp.emissions + (frame,))  # score set by caller

    def _step(self, state: BeamState, row: list, cands: list, frame: int) -> None:
        blank_lp = row[self.alphabet.blank]
        beams = state.beams
        nxt: dict = {}
        for prefix, hyp in beams.items():
            total = _logaddexp(hyp.pb, hyp.pnb)
            same = nxt.get(prefix)
            if same is None:
                same = nxt[prefix] = _Hypothesis(_NEG_INF, _NEG_INF, hyp.lm, hyp.history, hyp.word, hyp.emissions)
            stay = total + blank_lp
            same.pb = _logaddexp(same.pb, stay)
            last = prefix[-1] if prefix else -1
            if prefix:  # the last character repeated without a blank stays the same prefix
                repeat = hyp.pnb + row[last]
                same.pnb = _logaddexp(same.pnb, repeat)
                stay = max(stay, repeat)
            if stay > same.emit_score:  # staying is likelier than a fresh emission this frame
                same.emissions, same.emit_score = hyp.emissions, stay
            for c in cands:
                p = row[c] + (hyp.pb if c == last else total)  # a repeat needs a blank in between
                if p == _NEG_INF:
                    continue
                ext_prefix = prefix + (c,)
                ext = nxt.get(ext_prefix)
                if ext is None:
                    ext = nxt[ext_prefix] = self._extend(hyp, c, frame)
                ext.pnb = _logaddexp(ext.pnb, p)
                if p > ext.emit_score:  # alignment: the emission frame of the likeliest way in
                    ext.emissions, ext.emit_score = hyp.emissions + (frame,), p
        if len(nxt) > self.beam_width:
            ranked = sorted(nxt.items(), key=lambda kv: self._score(kv[1], len(kv[0])), reverse=True)
            nxt = dict(ranked[:self.beam_width])
        state.beams = nxt
