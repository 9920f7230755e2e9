"""Error rates: CER and WER as edit distance divided by the reference length.

Corpora write punctuation differently: IAM-OnDB's transcriptions sometimes set it apart
(``support , a``, ``Mr . Foot ' s``), UNIPEN and ImadocSen do not (``support, a``), and the ink
has no gap before a comma either way. :func:`split_punctuation` puts every mark apart on both
sides of a comparison, so a "word error" is a wrong word or a wrong mark, not a convention;
``inkstream eval`` reports those figures beside the raw ones.

Even the raw figures compare :func:`canonical_text`: white space laid out differently (a line
break in a transcription where the reader joins lines with a space) and typographic quotes and
dashes (the ink of ``’`` is the ink of ``'``; the model writes ASCII) are not errors.
"""
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


# typographic marks -> the ASCII marks written the same way
_TYPOGRAPHIC = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u201c": '"',
                              "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u2010": "-", "\u2011": "-",
                              "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "})


def canonical_text(text: str) -> str:
    """``text`` with typographic quotes, apostrophes and dashes as their ASCII marks and every run
    of white space (line breaks included) as one space, none at the ends."""
    return " ".join(text.translate(_TYPOGRAPHIC).split())


def split_punctuation(text: str) -> str:
    """``text`` with every character that is neither a letter, a digit nor white space set apart
    by single spaces: ``"Mr. Foot's line,"`` -> ``"Mr . Foot ' s line ,"``."""
    return " ".join("".join(c if c.isalnum() or c.isspace() else f" {c} " for c in text).split())


class ErrorCounter:
    """Accumulates character and word errors over many (reference, hypothesis) pairs.

    CER = sum of character edit distances / total reference characters; WER the same over
    space-separated words, both of :func:`canonical_text` (unless ``canonical`` is False). Both
    are fractions (0.05 means 5 %). With ``normalise`` (e.g. :func:`split_punctuation`) both
    texts of each pair are normalised first.
    """

    def __init__(self, normalise=None, canonical: bool = True):
        self.normalise = normalise
        self.canonical = canonical  # False: compare the texts as given (line breaks that count)
        self.char_errors = self.chars = self.word_errors = self.words = self.samples = 0

    def add(self, ref: str, hyp: str) -> None:
        if self.canonical:
            ref, hyp = canonical_text(ref), canonical_text(hyp)
        if self.normalise is not None:
            ref, hyp = self.normalise(ref), self.normalise(hyp)
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
