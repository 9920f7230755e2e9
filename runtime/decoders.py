"""CTC decoders that run incrementally: log-probs arrive chunk by chunk, state is carried.

A decoder is stateless itself; its per-stream state lives in an object made by ``new_state()``
and kept by the stream. Every decoder offers:

* ``new_state()`` (the word decoder's also takes ``user_words=`` for one stream: see
  :mod:`runtime.word_beam`)
* ``accept(state, log_probs)``: ``(T, C)`` log-probabilities of the next T frames
* ``result(state) -> (text, emissions)`` where ``emissions`` lists, per character of ``text``,
  the global frame index at which CTC emitted it (the alignment used to map text back to ink)
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


class CtcGreedyDecoder:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks."""

    name = "greedy"

    def __init__(self, alphabet: Alphabet):
        self.alphabet = alphabet

    def new_state(self) -> GreedyState:
        return GreedyState(prev=self.alphabet.blank)

    def accept(self, state: GreedyState, log_probs: np.ndarray) -> None:
        # one argmax in numpy, the merge in Python: streaming calls carry a frame or two, where
        # numpy's per-call overhead would cost more than the loop
        best = np.asarray(log_probs).argmax(axis=-1).tolist()
        if best:
            state.text = None
        blank, prev, frame = self.alphabet.blank, state.prev, state.frames
        for label in best:
            if label != blank and label != prev:
                state.ids.append(label)
                state.emissions.append(frame)
            prev = label
            frame += 1
        state.prev, state.frames = prev, frame

    def result(self, state: GreedyState):
        if state.text is None:
            state.text = self.alphabet.decode(state.ids)
        return state.text, list(state.emissions)
