"""CTC decoders that run incrementally: log-probs arrive chunk by chunk, state is carried.

A decoder is stateless itself; its per-stream state lives in an object made by ``new_state()``
and kept by the stream. Every decoder offers:

* ``new_state()`` (the word decoder's also takes ``user_words=`` for one stream: see
  :mod:`runtime.word_beam`)
* ``accept(state, log_probs)``: ``(T, C)`` log-probabilities of the next T frames
* ``result(state) -> (text, emissions)`` where ``emissions`` lists, per character of ``text``,
  the global frame index at which CTC emitted it (the alignment used to map text back to ink)
* ``final_result(state)``: the same once the line has ended and no frame will follow; a beam
  decoder with a line LM rescores its best readings there (:mod:`runtime.neural_lm`)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from runtime.alphabet import Alphabet


@dataclass
class GreedyState:
    prev: int = 0  # label of the previous frame: carried across chunks so repeats are handled right
    frames: int = 0
    ids: list = field(default_factory=list)
    emissions: list = field(default_factory=list)
    text: Optional[str] = None  # decoded ids, kept until the next frames arrive
    # while the best path is all blank: the best single-character path's (gain, label, frame)
    fallback: Optional[tuple] = None


class CtcGreedyDecoder:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    With ``never_empty`` (the default) the reading of ink that produced frames is never empty:
    when the best path is all blank, the best path that holds a character is read instead, which
    is the all-blank path with one frame switched to the character that costs least there against
    blank. A lone stroke ("1", "l", "-") is often all blank on the best path, because the blank
    outweighs its one short peak: on every 4th isolated character of UNIPEN chars ``val`` the best
    path read 274 of 1,993 as nothing (docs/model_card.md). The beam decoders have the same rule as
    their ``empty_penalty``.
    """

    name = "greedy"

    def __init__(self, alphabet: Alphabet, never_empty: bool = True):
        self.alphabet = alphabet
        self.never_empty = bool(never_empty)

    def new_state(self) -> GreedyState:
        return GreedyState(prev=self.alphabet.blank)

    def accept(self, state: GreedyState, log_probs: np.ndarray) -> None:
        # one argmax in numpy, the merge in Python: streaming calls carry a frame or two, where
        # numpy's per-call overhead would cost more than the loop
        lp = np.asarray(log_probs)
        best = lp.argmax(axis=-1).tolist()
        if best:
            state.text = None
        blank, prev, frame = self.alphabet.blank, state.prev, state.frames
        if self.never_empty and not state.ids and best:
            self._track_fallback(state, lp, frame)
        for label in best:
            if label != blank and label != prev:
                state.ids.append(label)
                state.emissions.append(frame)
            prev = label
            frame += 1
        state.prev, state.frames = prev, frame

    def _track_fallback(self, state: GreedyState, lp: np.ndarray, first_frame: int) -> None:
        """Keep the frame and character where switching one all-blank frame costs least."""
        blank = self.alphabet.blank
        gain = lp - lp[:, blank:blank + 1]
        gain[:, blank] = -np.inf
        t, c = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if state.fallback is None or gain[t, c] > state.fallback[0]:
            state.fallback = (float(gain[t, c]), int(c), first_frame + int(t))

    def final_result(self, state: GreedyState):
        return self.result(state)

    def result(self, state: GreedyState):
        if state.text is None:
            state.text = self.alphabet.decode(state.ids)
        if not state.ids and state.fallback is not None:
            _, label, frame = state.fallback
            return self.alphabet.decode([label]), [frame]
        return state.text, list(state.emissions)
