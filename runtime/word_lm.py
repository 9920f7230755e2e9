"""A word n-gram language model in ARPA format, read with numpy only, for the word decoder.

The model file is a standard back-off ARPA file (plain or gzip), as written by ``inkstream lm``
(:mod:`training.word_lm`) and read by KenLM, SRILM and flashlight-text. Its words are *LM units*
(:func:`lm_units`): lowercase runs of letters, digits and inner apostrophes (``don't``, ``1960``),
and every other non-space character on its own (``,`` ``.`` ``-``). The same function splits
the model's output and the training text, so a token written ``possible,`` or IAM-OnDB's
tokenised ``Mr . Foot ' s`` reaches the LM as the units it was trained on whatever the spacing.

At run time the n-grams are kept as sorted ``int64`` keys (word ids packed in 21 bits each)
with ``float32`` log-probabilities and back-off weights: about 16 bytes an n-gram, where Python
dicts of tuples would cost ten times that. Scores are natural logs.
"""
from __future__ import annotations

import gzip
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
SENTENCE_END = frozenset(".!?")  # units after which the next word starts a sentence
_BITS = 21  # bits per word id in a packed key: up to 2M words, trigrams in 63 bits
_LN10 = math.log(10.0)
_UNIT_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")
CACHE_SIZE = 1 << 16


def lm_units(text: str) -> list:
    """The LM units of ``text``: lowercase words (letters, digits, inner apostrophes) and single
    punctuation characters, in order. ``"Foot's,"`` -> ``["foot's", ","]``."""
    return _UNIT_RE.findall(text.lower())


def default_word_lm_path() -> Path:
    """The word LM shipped inside the package (``runtime/models/wordlm.arpa.gz``)."""
    return Path(str(resources.files("runtime.models").joinpath("wordlm.arpa.gz")))


def default_word_case_path() -> Path:
    """The word case table shipped inside the package (``runtime/models/wordcase.tsv.gz``)."""
    return Path(str(resources.files("runtime.models").joinpath("wordcase.tsv.gz")))


def read_word_case(path=None) -> dict:
    """The word case table (``inkstream lm words`` writes it beside the word LM): lowercase word ->
    P(its first letter is a capital | it stands inside a sentence), one ``word<TAB>probability``
    a line, for the words text writes with a capital often ("susan", "monday", "english").
    Blank lines are skipped. ValueError naming the file and line on a malformed one."""
    path = str(path or default_word_case_path())
    if not os.path.exists(path):
        raise FileNotFoundError(f"word case file {path} does not exist")
    table = {}
    with _open_text(path) as f:
        for n, line in enumerate(f, start=1):
            line = line.lstrip("\ufeff") if n == 1 else line  # a byte-order mark
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t")
            try:
                word, p = parts[0], float(parts[1])
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{n}: expected word<TAB>probability, got {line.strip()[:60]!r}") from None
            # the decoder looks a word up by its letters and digits before any apostrophe
            if len(parts) != 2 or not word.isalnum() or word != word.lower() or not 0 < p < 1:
                raise ValueError(f"{path}:{n}: expected a lowercase word (letters and digits) and a probability "
                                 f"in (0, 1), got {line.strip()[:60]!r}")
            if word in table:
                raise ValueError(f"{path}:{n}: {word!r} is listed twice")
            table[word] = p
    return table


def _open_text(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8")


def read_arpa(path) -> tuple:
    """``(words, grams)`` of an ARPA file: ``words`` the unigram strings in file order (their ids),
    ``grams[n-1] = (keys, log10_probs, log10_backoffs)`` sorted by key. ValueError naming the
    file and line on a malformed file."""
    path = str(path)
    counts: dict = {}
    words: list = []
    grams: list = []
    order = 0
    with _open_text(path) as f:
        line = f.readline()
        while line and line.strip() != "\\data\\":
            line = f.readline()
        if not line:
            raise ValueError(f"{path}: not an ARPA file (no \\data\\ section)")
        for line in f:
            line = line.strip()
            if not line:
                break
            m = re.fullmatch(r"ngram (\d+)=(\d+)", line)
            if not m:
                raise ValueError(f"{path}: bad ARPA header line {line!r}")
            counts[int(m.group(1))] = int(m.group(2))
        order = max(counts) if counts else 0
        if order < 1 or sorted(counts) != list(range(1, order + 1)):
            raise ValueError(f"{path}: ARPA header lists n-gram orders {sorted(counts)}")
        if order > 63 // _BITS:
            raise ValueError(f"{path}: order {order} is above the {63 // _BITS} this reader packs")
        ids: dict = {}
        for n in range(1, order + 1):
            line = f.readline()
            while line and not line.strip():
                line = f.readline()
            if line.strip() != f"\\{n}-grams:":
                raise ValueError(f"{path}: expected \\{n}-grams:, got {line.strip()!r}")
            total = counts[n]
            keys = np.empty(total, np.int64)
            probs = np.empty(total, np.float32)
            bows = np.zeros(total, np.float32)
            for i in range(total):
                parts = f.readline().split()
                if len(parts) not in (n + 1, n + 2):
                    raise ValueError(f"{path}: malformed {n}-gram line {i + 1}: {' '.join(parts)!r}")
                probs[i] = float(parts[0])
                if len(parts) == n + 2:
                    bows[i] = float(parts[-1])
                if n == 1:
                    ids[parts[1]] = len(words)
                    words.append(parts[1])
                    keys[i] = ids[parts[1]]
                else:
                    k = 0
                    for w in parts[1:n + 1]:
                        wid = ids.get(w)
                        if wid is None:
                            raise ValueError(f"{path}: {n}-gram word {w!r} is not a unigram")
                        k = (k << _BITS) | wid
                    keys[i] = k
            order_of = np.argsort(keys, kind="stable")
            grams.append((keys[order_of], probs[order_of], bows[order_of]))
    if len(words) >= 1 << _BITS:
        raise ValueError(f"{path}: {len(words)} words, more than this reader packs")
    return words, grams


class WordLanguageModel:
    """Back-off n-gram word LM from an ARPA file. Holds no per-stream state.

    A *context* is a tuple of at most ``order - 1`` word ids (``()`` = no history, as at the start
    of a line, which is usually mid-sentence). :meth:`score` returns ``(ln P(word | context),
    next context)``; a word the model lacks is scored as ``<unk>`` and ``known`` tells which.
    Scores are cached (bounded) per (context, word).
    """

    def __init__(self, path: Optional[str | os.PathLike] = None):
        self.path = str(path or default_word_lm_path())
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"word LM file {self.path} does not exist")
        words, self._grams = read_arpa(self.path)
        self.order = len(self._grams)
        self._ids = {w: i for i, w in enumerate(words)}
        self.vocab_size = len(words)
        if UNK not in self._ids:
            raise ValueError(f"{self.path}: the word LM has no {UNK} unigram (needed for open vocabulary)")
        self.unk = self._ids[UNK]
        self.bos = self._ids.get(BOS)
        self._cache: dict = {}

    def __contains__(self, word: str) -> bool:
        return word in self._ids and word not in (UNK, BOS, EOS)

    def word_id(self, word: str) -> int:
        """Id of a unit (``<unk>`` for one the model lacks)."""
        return self._ids.get(word, self.unk)

    def sentence_start(self) -> tuple:
        """The context after a sentence end (``<s>``; the empty context if the model has none)."""
        return () if self.bos is None else (self.bos,)

    def _find(self, n: int, key: int):
        keys, probs, bows = self._grams[n - 1]
        i = int(np.searchsorted(keys, key))
        if i < len(keys) and keys[i] == key:
            return float(probs[i]), float(bows[i])
        return None

    def _log10_prob(self, context: tuple, wid: int) -> float:
        """Standard back-off: the longest stored n-gram, plus the back-off weights of the longer
        contexts that were skipped."""
        backoff = 0.0
        for start in range(len(context) + 1):
            ctx = context[start:]
            n = len(ctx) + 1
            key = 0
            for w in ctx:
                key = (key << _BITS) | w
            hit = self._find(n, (key << _BITS) | wid)
            if hit is not None:
                return hit[0] + backoff
            if ctx:
                bow = self._find(len(ctx), key)
                if bow is not None:
                    backoff += bow[1]
        return -99.0  # unreachable for ids of this model: every word is a unigram

    def _next_context(self, context: tuple, wid: int) -> tuple:
        """The longest suffix of ``context + (wid,)`` (at most order-1 words) that is stored: a
        shorter context gives the same probabilities, and keeps hypotheses' keys equal."""
        ctx = (context + (wid,))[-(self.order - 1):] if self.order > 1 else ()
        while ctx:
            n = len(ctx)
            key = 0
            for w in ctx:
                key = (key << _BITS) | w
            if self._find(n, key) is not None:
                return ctx
            ctx = ctx[1:]
        return ctx

    def score(self, context: tuple, word: str) -> tuple:
        """``(ln P(word | context), next_context, known)``."""
        wid = self._ids.get(word)
        known = wid is not None and word not in (UNK, BOS, EOS)
        if wid is None:
            wid = self.unk
        key = (context, wid)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= CACHE_SIZE:  # bounded memory over a long session
                self._cache.clear()
            hit = (self._log10_prob(context, wid) * _LN10, self._next_context(context, wid))
            self._cache[key] = hit
        return hit[0], hit[1], known

    def score_text(self, text: str, context: tuple = ()) -> float:
        """ln P of the units of ``text`` from ``context`` (for tests and tuning)."""
        total = 0.0
        for u in lm_units(text):
            lp, context, _ = self.score(context, u)
            total += lp
            if u in SENTENCE_END:
                context = self.sentence_start()
        return total
