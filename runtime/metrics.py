"""Error rates: CER and WER as edit distance divided by the reference length."""
from __future__ import annotations

from typing import Sequence


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (unit costs) between two sequences."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


class ErrorCounter:
    """Accumulates character and word errors over many (reference, hypothesis) pairs.

    CER = sum of character edit distances / total reference characters; WER the same over
    space-separated words. Both are fractions (0.05 means 5 %).
    """

    def __init__(self):
        self.char_errors = self.chars = self.word_errors = self.words = self.samples = 0

    def add(self, ref: str, hyp: str) -> None:
        self.samples += 1
        self.char_errors += edit_distance(ref, hyp)
        self.chars += len(ref)
        rw, hw = ref.split(), hyp.split()
        self.word_errors += edit_distance(rw, hw)
        self.words += len(rw)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)
