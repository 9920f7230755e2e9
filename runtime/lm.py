"""A character n-gram language model for the beam and word decoders: built offline, tiny and numpy-only at run time.

Building (needs ``wordfreq``, which is a *build-time* tool, never a runtime dependency)::

    inkstream lm chars --out runtime/models/charlm.npz     # top 200k English words

The model is trained on English words weighted by their real frequency (``wordfreq``), each word
written as ``" word "``: the space is the word boundary, so the model knows how words start and
end. It is an interpolated Witten-Bell n-gram (default order 6: five characters of history) over the
28 symbols space, apostrophe and ``a``-``z``. Words are independent in the training data, so the
history never reaches back over a space: it is the space plus the current word's last letters.

The file stores, for each kept history (up to ``order - 1`` symbols; rare histories pruned), the
full interpolated distribution over the 28 symbols (``-ln p`` quantised to 1/12 nat, uint8). Looking a history up means taking
its longest stored suffix, which is exactly what the interpolated model gives an unseen history.

At run time :class:`CharLanguageModel` maps this onto a recognizer's alphabet:

* letters: the lowercase symbol's probability, split between lower and upper case (capitals are
  likelier at a word start);
* every other printable character (digits, punctuation) gets a share of a small uniform floor,
  so nothing the model can write is impossible; after punctuation or a digit a space is likely;
* the result is normalised over the alphabet and returned as natural-log probabilities.
"""
from __future__ import annotations

import math
import os
import re
from array import array
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

SYMBOLS = " '" + "abcdefghijklmnopqrstuvwxyz"  # LM symbol i is SYMBOLS[i]; 0 is the word boundary
BOUNDARY = " "
AFTER_OTHER = "#"  # history marker: the last character was a digit or punctuation
LM_FORMAT = "inkstream-charlm-1"
QUANT_STEPS = 12.0  # the file stores -ln p quantised to 1/12 nat
CACHE_SIZE = 4096  # histories whose distributions (and next histories) are kept, per cache generation
_WORD_RE = re.compile(r"[a-z']+")


def default_lm_path() -> Path:
    """The language model shipped inside the package (``runtime/models/charlm.npz``)."""
    return Path(str(resources.files("runtime.models").joinpath("charlm.npz")))


# ---- building (offline) ----------------------------------------------------------------------
def word_counts_from_wordfreq(num_words: int = 200_000, lang: str = "en", tokens: float = 1e7) -> dict:
    """Expected counts of the ``num_words`` most frequent words in ``tokens`` tokens of text.

    Only words made of ``a-z`` and apostrophes are kept. Needs the ``wordfreq`` package.
    """
    import wordfreq  # build-time only

    counts = {}
    for w in wordfreq.top_n_list(lang, num_words):
        if _WORD_RE.fullmatch(w):
            counts[w] = wordfreq.word_frequency(w, lang) * tokens
    return counts


def build_char_lm(word_counts: dict, order: int = 6, min_history_count: float = 10.0) -> dict:
    """Interpolated Witten-Bell character n-gram over ``" word "`` strings.

    Returns the arrays of the LM file: ``histories`` (ASCII bytes), ``neg_log_probs_q`` (uint8, one row of
    len(SYMBOLS) per history) and ``order``. Histories whose (weighted) count is below
    ``min_history_count`` are dropped; lookups then back off to their longest kept suffix.
    """
    if order < 2:
        raise ValueError(f"build_char_lm: order must be >= 2, got {order}")
    sym = {s: i for i, s in enumerate(SYMBOLS)}
    n = len(SYMBOLS)
    # counts[h] = vector of weighted counts of the next symbol after history h (h may be "")
    counts: dict = defaultdict(lambda: np.zeros(n))
    for word, weight in word_counts.items():
        text = BOUNDARY + word + BOUNDARY
        for i in range(1, len(text)):
            s = sym[text[i]]
            for k in range(0, order):
                if i - k < 0:
                    break
                counts[text[i - k:i]][s] += weight
    probs = {"": None}
    uniform = np.full(n, 1.0 / n)

    def interpolated(h: str) -> np.ndarray:
        # P(s|h) = (c(h,s) + N1+(h.) P(s|h')) / (c(h) + N1+(h.)), h' = h without its first symbol
        if h in probs and probs[h] is not None:
            return probs[h]
        lower = uniform if h == "" else interpolated(h[1:])
        c = counts.get(h)
        if c is None:
            return lower
        total = c.sum()
        types = float((c > 0).sum())
        p = (c + types * lower) / (total + types)
        probs[h] = p
        return p

    kept = [h for h, c in counts.items() if h == "" or c.sum() >= min_history_count]
    kept.sort(key=lambda h: (len(h), h))
    table = np.stack([interpolated(h) for h in kept])
    # -ln p in steps of 1/QUANT_STEPS nats as uint8: a quarter of float16's size, error < 0.05 nats
    quantized = np.clip(np.rint(-np.log(table) * QUANT_STEPS), 0, 255).astype(np.uint8)
    return {"histories": np.array(kept, dtype="S"), "neg_log_probs_q": quantized, "order": np.array(order),
            "symbols": np.array(SYMBOLS), "format": np.array(LM_FORMAT)}


def save_lm(path, arrays: dict) -> None:
    np.savez_compressed(path, **arrays)


# ---- run time --------------------------------------------------------------------------------
def _read_lm(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(histories, table, order)`` of an LM file: the histories as a sorted ``bytes`` array and
    their quantised ``-ln p`` rows (uint8) in the same order. ValueError naming the file and the
    missing or bad part."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError on pickled arrays, ...
        raise ValueError(f"{path}: not a readable character LM npz ({exc})") from exc
    if "format" not in arrays or str(arrays["format"]) != LM_FORMAT:
        raise ValueError(f"{path}: not an inkstream character LM (format {LM_FORMAT!r} expected)")
    missing = [k for k in ("symbols", "histories", "neg_log_probs_q", "order") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: character LM lacks the arrays {missing}")
    if str(arrays["symbols"]) != SYMBOLS:
        raise ValueError(f"{path}: LM symbols differ from this runtime's")
    try:
        histories = [h.decode("ascii") for h in arrays["histories"].tolist()]
        order = int(arrays["order"])
    except (AttributeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: LM 'histories' or 'order' is malformed ({exc})") from None
    table = arrays["neg_log_probs_q"]
    if table.ndim != 2 or table.shape != (len(histories), len(SYMBOLS)):
        raise ValueError(f"{path}: LM 'neg_log_probs_q' has shape {table.shape}, expected "
                         f"({len(histories)}, {len(SYMBOLS)})")
    if "" not in histories:  # every lookup backs off to the empty history at last
        raise ValueError(f"{path}: LM lacks the empty history '' that every lookup backs off to")
    if order < 2:
        raise ValueError(f"{path}: LM 'order' must be >= 2, got {order}")
    # kept compact (the table as stored, histories as a sorted byte array for binary search): a
    # dict of 85,000 strings and a float64 table would cost about 30 MB of a small board's memory
    keys = np.asarray(arrays["histories"])
    order_of = np.argsort(keys, kind="stable")
    return keys[order_of], np.ascontiguousarray(table[order_of]), order


class CharLanguageModel:
    """Character LM over a recognizer's alphabet. Holds no per-stream state.

    A *history* is a short string kept per hypothesis; :meth:`advance` updates it with one
    character and :meth:`log_probs` returns ``(alphabet.size,)`` natural-log probabilities of the
    next character (index 0, the CTC blank, is ``-inf``); :meth:`log_prob_row` gives the same
    values as an ``array('d')``, which a decoder indexes faster than numpy. Results are cached per
    history, so the cost per call is a dict lookup once warm. The distributions are kept in two
    generations of at most ``CACHE_SIZE`` histories (the older is dropped when the newer fills; a
    history used again moves up), so memory stays bounded over a long session while the histories
    in use stay cached; the next-history cache is emptied when it reaches ``CACHE_SIZE``.

    ``floor`` is the probability mass spread uniformly over all characters; ``upper_at_start`` and
    ``upper_inside`` are the chances that a letter is a capital at a word start / inside a word.
    """

    def __init__(self, path: Optional[str | os.PathLike] = None, alphabet=None, floor: float = 0.05,
                 upper_at_start: float = 0.12, upper_inside: float = 0.03):
        from runtime.alphabet import Alphabet

        self.path = str(path or default_lm_path())
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"character LM file {self.path} does not exist (give another with lm_path=, "
                                    f"or decode without an LM: lm_weight=0)")
        self._histories, self._table, self.order = _read_lm(self.path)
        if not 0 < floor < 1:
            raise ValueError(f"CharLanguageModel: floor must be in (0, 1), got {floor}")
        self.alphabet = alphabet or Alphabet()
        self.floor = floor
        chars = self.alphabet.chars
        size = self.alphabet.size
        # per alphabet id: which LM symbol carries it (len(SYMBOLS) = none) and its case weights
        self._sym_of_id = np.full(size, len(SYMBOLS), dtype=np.int64)
        self._case_start = np.zeros(size)
        self._case_inside = np.zeros(size)
        for i, ch in enumerate(chars, start=1):
            low = ch.lower()
            if len(low) == 1 and low in SYMBOLS:
                self._sym_of_id[i] = SYMBOLS.index(low)
                if ch.isalpha():
                    up = ch.isupper()
                    self._case_start[i] = upper_at_start if up else 1 - upper_at_start
                    self._case_inside[i] = upper_inside if up else 1 - upper_inside
                else:
                    self._case_start[i] = self._case_inside[i] = 1.0
        self._uniform = np.zeros(size)
        self._uniform[1:] = 1.0 / (size - 1)
        space = np.zeros(len(SYMBOLS))
        space[0] = 1.0
        # after a digit or punctuation: a space, or a new word, or more digits/punctuation (floor)
        self._after_other = 0.6 * space + 0.4 * self._lookup(BOUNDARY)
        self._rows: dict = {}  # history -> log P(next id) as an array('d'): the newer generation
        self._rows_old: dict = {}
        self._advance_cache: dict = {}

    def initial_history(self) -> str:
        return BOUNDARY

    def case_log_factors(self) -> tuple:
        """``(at_start, inside)``: per alphabet id, the natural log of the case factor that the
        model's probability of that character includes at a word start / inside a word (a capital's
        ``upper_at_start`` / ``upper_inside``, a small letter's complement, 0 for other characters)."""
        # characters without a case factor (0 here) are scored by the floor alone: log 1 = 0
        start = np.log(np.where(self._case_start > 0, self._case_start, 1.0))
        inside = np.log(np.where(self._case_inside > 0, self._case_inside, 1.0))
        return start.tolist(), inside.tolist()

    def _lookup(self, history: str) -> np.ndarray:
        """P(next symbol | the longest stored suffix of ``history``) over the LM's symbols."""
        h = history[-(self.order - 1):].encode("ascii")
        keys = self._histories
        while True:  # the empty history is always stored, so this ends
            i = int(np.searchsorted(keys, h))
            if i < len(keys) and keys[i] == h:
                break
            h = h[1:]
        p = np.exp(-self._table[i].astype(np.float64) / QUANT_STEPS)
        return p / p.sum()

    def advance(self, history: str, char_id: int) -> str:
        """The history after character ``char_id`` (an alphabet id) is written."""
        key = (history, char_id)
        out = self._advance_cache.get(key)
        if out is None:
            if len(self._advance_cache) >= CACHE_SIZE:  # bounded memory over a long session
                self._advance_cache.clear()
            ch = self.alphabet.chars[char_id - 1].lower()
            if ch == BOUNDARY:
                out = BOUNDARY
            elif len(ch) == 1 and ch in SYMBOLS:
                base = BOUNDARY if history == AFTER_OTHER else history
                out = (base + ch)[-(self.order - 1):]
            else:
                out = AFTER_OTHER
            self._advance_cache[key] = out
        return out

    def history_of(self, text: str) -> str:
        """The history after writing ``text`` from a line start."""
        h = self.initial_history()
        for i in self.alphabet.encode(text):
            h = self.advance(h, i)
        return h

    def log_prob_row(self, history: str) -> array:
        """Natural-log P(next character | history) over alphabet ids (blank = -inf), as the cached
        ``array('d')`` itself: read it, do not change it."""
        row = self._rows.get(history)
        if row is None:
            row = self._rows_old.get(history)
            if row is None:
                row = array("d", self._compute_log_probs(history).tobytes())
            if len(self._rows) >= CACHE_SIZE:  # bounded memory over a long session
                self._rows_old, self._rows = self._rows, {}
            self._rows[history] = row
        return row

    def log_probs(self, history: str) -> np.ndarray:
        """Natural-log P(next character | history) over alphabet ids (blank = -inf), a read-only
        array over the cached row."""
        return np.frombuffer(memoryview(self.log_prob_row(history)).toreadonly(), dtype=np.float64)

    def _compute_log_probs(self, history: str) -> np.ndarray:
        if history == AFTER_OTHER:
            p_sym, word_start = self._after_other, True
        else:
            p_sym, word_start = self._lookup(history), history.endswith(BOUNDARY)
        p_sym = np.append(p_sym, 0.0)  # index len(SYMBOLS): characters the LM does not model
        case = self._case_start if word_start else self._case_inside
        p = (1 - self.floor) * p_sym[self._sym_of_id] * case + self.floor * self._uniform
        p[1:] /= p[1:].sum()
        with np.errstate(divide="ignore"):
            out = np.log(p)
        out[0] = -np.inf
        return out

    def score(self, text: str) -> float:
        """Natural-log probability of ``text`` written from a line start (for tests and tuning)."""
        h, total = self.initial_history(), 0.0
        for i in self.alphabet.encode(text):
            total += float(self.log_probs(h)[i])
            h = self.advance(h, i)
        return total


def load_lexicon(path) -> frozenset:
    """Words of a lexicon file: one word per line (lowercased; blank lines and ``#`` comments skipped)."""
    words = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            w = line.strip()
            if w and not w.startswith("#"):
                words.add(w.lower())
    return frozenset(words)
