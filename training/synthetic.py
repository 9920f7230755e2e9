"""Synthetic online handwriting: any text drawn with single-line fonts, as if by many hands.

``SyntheticInk(config, seed).sample(index)`` returns ``(points, text)``: ``points`` is the flat
``(N, 4)`` float64 form of :mod:`runtime.ink` (``x, y, t, pen_up_after``; y grows down; x and y
in device units of ``1 / config.units_per_mm`` mm, rounded to whole units; t in seconds, strictly
increasing). The result depends only on ``(config, seed, index)``, so DataLoader workers that
each take their own indices produce the same data as one process would.

How a sample is made (all geometry in x-heights until the last step):

1. **Text** from real word frequencies (``wordfreq``), with sentence case, Title Case, ALL CAPS,
   numbers (years, prices, times, dates, percentages) and punctuation; rare symbol tokens bring
   the rest of printable ASCII in.
2. **Writer**: a font (cursive and script fonts are weighted up) and one draw of every style
   parameter in :class:`AugmentConfig` (slant, size, aspect, spacing, speed, sampling rate, ...).
3. **Layout**: glyph by glyph, each with its own small scale, slant and offset jitter. In
   connected cursive fonts the pen stays down from one letter to the next within a word, and
   i-dots and t-bars are written after the word, as people do.
4. **Warps**: dense resampling, then a smooth elastic field, baseline drift, slant, aspect and
   rotation, all as array operations.
5. **Time**: the pen slows at corners and tight curves (a 1/3 power law of curvature) and at
   stroke ends; pen-up gaps depend on the jump; the trajectory is read out by a device clock at
   the writer's sampling rate, so in-stroke steps are exactly ``1 / rate`` seconds.

``inkstream synth`` (see :func:`configure`) writes a corpus ``.npz`` and optionally a picture.
"""
from __future__ import annotations

import functools
import math
import re
import string
import time
from dataclasses import dataclass, field, fields
from typing import Iterator, Optional

import numpy as np

from runtime.ink import points_to_strokes
from training.fonts import FALLBACK_FONT, FONT_SPECS, Font, load_font

__all__ = ["AugmentConfig", "SynthConfig", "SyntheticInk", "SyntheticSample", "TextSampler",
           "plot_samples", "configure", "run"]


# ---- configuration -------------------------------------------------------------------------------

def _check_range(owner: str, name: str, value, low=-math.inf, high=math.inf, positive=False) -> None:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise ValueError(f"{owner}.{name} must be a (low, high) tuple, got {value!r}")
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{owner}.{name} must be finite with low <= high, got {value!r}")
    if lo < low or hi > high or (positive and lo <= 0):
        bound = "> 0" if positive else f"within [{low}, {high}]"
        raise ValueError(f"{owner}.{name} must be {bound}, got {value!r}")


def _check_scalar(owner: str, name: str, value, low=0.0, high=math.inf) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{owner}.{name} must be a number within [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """How much writers differ. ``(low, high)`` tuples are drawn uniformly once per sample (per
    writer); scalar ``*_jitter`` values are standard deviations drawn per glyph. Lengths are in
    x-heights unless the name says otherwise. Invalid values raise ``ValueError`` naming the field.
    """

    x_height_mm: tuple = (1.5, 4.5)  # overall size
    aspect: tuple = (0.85, 1.2)  # horizontal stretch
    slant_deg: tuple = (-8.0, 25.0)  # positive leans right
    rotation_deg: tuple = (-3.0, 3.0)  # whole line, positive turns clockwise on screen
    glyph_scale_jitter: float = 0.07  # relative
    glyph_slant_jitter_deg: float = 3.0
    glyph_offset_jitter: float = 0.05  # baseline and advance
    baseline_drift: float = 0.25  # amplitude of the slow wander of the baseline
    elastic_warp: float = 0.06  # amplitude of the smooth displacement field
    letter_spacing: tuple = (-0.08, 0.2)  # added to every advance
    word_spacing: tuple = (0.7, 1.6)  # times the font's space width
    pen_speed: tuple = (14.0, 34.0)  # x-heights per second on straight runs
    corner_slowdown: float = 1.0  # 0 keeps the speed constant along strokes
    sample_rate_hz: tuple = (60.0, 200.0)  # the device clock
    pen_up_time_s: tuple = (0.03, 0.12)  # typical pause between strokes
    position_noise_mm: float = 0.01  # sensor noise, standard deviation
    join_probability: tuple = (0.8, 1.0)  # chance per letter pair that a connected font joins

    def __post_init__(self):
        owner = "AugmentConfig"
        _check_range(owner, "x_height_mm", self.x_height_mm, positive=True)
        _check_range(owner, "aspect", self.aspect, positive=True)
        _check_range(owner, "slant_deg", self.slant_deg, -60.0, 60.0)
        _check_range(owner, "rotation_deg", self.rotation_deg, -45.0, 45.0)
        _check_scalar(owner, "glyph_scale_jitter", self.glyph_scale_jitter, 0.0, 0.5)
        _check_scalar(owner, "glyph_slant_jitter_deg", self.glyph_slant_jitter_deg, 0.0, 30.0)
        _check_scalar(owner, "glyph_offset_jitter", self.glyph_offset_jitter, 0.0, 1.0)
        _check_scalar(owner, "baseline_drift", self.baseline_drift, 0.0, 5.0)
        _check_scalar(owner, "elastic_warp", self.elastic_warp, 0.0, 1.0)
        _check_range(owner, "letter_spacing", self.letter_spacing, -1.0, 5.0)
        _check_range(owner, "word_spacing", self.word_spacing, positive=True)
        _check_range(owner, "pen_speed", self.pen_speed, positive=True)
        _check_scalar(owner, "corner_slowdown", self.corner_slowdown, 0.0, 3.0)
        _check_range(owner, "sample_rate_hz", self.sample_rate_hz, positive=True)
        _check_range(owner, "pen_up_time_s", self.pen_up_time_s, 0.0, 10.0)
        _check_scalar(owner, "position_noise_mm", self.position_noise_mm, 0.0, 1.0)
        _check_range(owner, "join_probability", self.join_probability, 0.0, 1.0)


KINDS = ("word", "line", "short", "corpus")


@dataclass(frozen=True)
class SynthConfig:
    """What to write and how: the kind of text, fonts, word statistics and the augmentation.

    ``kind`` is ``"word"`` (one token), ``"line"`` (``words_per_line`` tokens), ``"short"``
    (what people write on a tablet besides lines: an isolated character, a run of capitals or
    letter pairs, a short word, an abbreviation, a number) or ``"corpus"`` (``words_per_line``
    consecutive words of a sentence from ``corpus_files``, real running text). ``fonts`` names
    shipped fonts (see :data:`training.fonts.FONT_SPECS`); empty means all of them, weighted.
    ``frequency_power`` flattens the word distribution: 1.0 samples words at their real
    frequency, smaller values give rarer words more turns.
    """

    kind: str = "line"
    words_per_line: tuple = (4, 10)
    fonts: tuple = ()
    vocabulary_size: int = 50000
    frequency_power: float = 0.75
    number_probability: float = 0.06
    symbol_probability: float = 0.02
    units_per_mm: float = 100.0
    corpus_files: tuple = ()  # gzip text, one sentence per line (kind "corpus")
    # wordfreq's list saved by `inkstream pack` (rank, word, frequency a line), for machines
    # without wordfreq; empty: wordfreq itself. Both give the same words and weights.
    vocabulary_file: str = ""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        owner = "SynthConfig"
        if self.kind not in KINDS:
            raise ValueError(f"{owner}.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "corpus" and not self.corpus_files:
            raise ValueError(f"{owner}.corpus_files: kind 'corpus' needs at least one text file")
        _check_range(owner, "words_per_line", self.words_per_line, 1, 200)
        if not all(isinstance(v, int) for v in self.words_per_line):
            raise ValueError(f"{owner}.words_per_line must hold integers, got {self.words_per_line!r}")
        if not isinstance(self.fonts, tuple) or any(f not in FONT_SPECS for f in self.fonts):
            raise ValueError(f"{owner}.fonts must be a tuple of {sorted(FONT_SPECS)}, got {self.fonts!r}")
        if not (isinstance(self.vocabulary_size, int) and self.vocabulary_size >= 10):
            raise ValueError(f"{owner}.vocabulary_size must be an integer >= 10, got {self.vocabulary_size!r}")
        _check_scalar(owner, "frequency_power", self.frequency_power, 0.0, 2.0)
        _check_scalar(owner, "number_probability", self.number_probability, 0.0, 1.0)
        _check_scalar(owner, "symbol_probability", self.symbol_probability, 0.0, 1.0)
        if self.number_probability + self.symbol_probability > 1.0:
            raise ValueError(f"{owner}.number_probability + symbol_probability must be <= 1")
        _check_scalar(owner, "units_per_mm", self.units_per_mm, 1e-3, 1e6)
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"{owner}.augment must be an AugmentConfig, got {type(self.augment).__name__}")

    @property
    def font_names(self) -> tuple:
        return self.fonts or tuple(FONT_SPECS)


# ---- text ----------------------------------------------------------------------------------------

def ranked_words(size: int, vocabulary_file: str = "") -> list[tuple[str, float]]:
    """``(word, frequency)`` of the ``size`` most frequent English words, most frequent first: from
    ``vocabulary_file`` (as ``inkstream pack`` writes it) or, without one, from wordfreq."""
    if vocabulary_file:
        ranked = []
        with open(vocabulary_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    raise ValueError(f"{vocabulary_file}:{n}: expected rank, word and frequency, got {line!r}")
                if int(parts[0]) < size:
                    ranked.append((parts[1], float(parts[2])))
        if len(ranked) < size:
            raise ValueError(f"{vocabulary_file}: holds {len(ranked)} words, the configuration asks for {size}")
        return ranked
    import wordfreq  # a training-only dependency, imported where it is needed

    frequencies = wordfreq.get_frequency_dict("en")
    return [(w, frequencies.get(w, 0.0)) for w in wordfreq.top_n_list("en", size)]


@functools.lru_cache(maxsize=4)
def _vocabulary(size: int, power: float, vocabulary_file: str = "") -> tuple[tuple, np.ndarray]:
    """The ``size`` most frequent English words (letters and apostrophes only) and their CDF."""
    ranked = [(w, f) for w, f in ranked_words(size, vocabulary_file) if re.fullmatch(r"[a-z]+(?:'[a-z]+)?", w)]
    words = [w for w, _ in ranked]
    weights = np.array([f for _, f in ranked]) ** power
    cdf = np.cumsum(weights)
    return tuple(words), cdf / cdf[-1]


# Tokens that bring in the printable characters ordinary prose rarely uses. Each is a format
# string filled with a random word ({w}) and small numbers ({n}, {m}).
_SYMBOL_TOKENS = (
    "#{n}", "@{w}", "{w}@{w}.com", "R&D", "{w}&{w}", "{n}*{m}", "{n}+{m}", "{n}+{m}={s}", "x={n}",
    "<{w}>", "{n}<{m}", "{m}>{n}", "[{n}]", "[{w}]", "{{{w}}}", "C:\\{w}", "~{n}", "{w}_{w}",
    "`{w}`", "{w}|{w}", "{n}^{m}", "{n}/{m}", "{w}/{w}", "{n}%", "*{w}*", "a/b", "{w}!?", "...",
    "{w}-{w}", "'{w}'", "\"{w}\"", "({n})", "#{w}", "{w}.{w}", "{n}:{m}", "e-mail", "(a)", "~/{w}",
)


class TextSampler:
    """Random English text: words at (flattened) real frequencies, numbers, punctuation, symbols.

    ``line(rng, n)`` and ``word(rng)`` return strings of printable ASCII with single spaces. Over
    a few hundred lines every printable ASCII character occurs (a test checks this).
    """

    def __init__(self, config: SynthConfig):
        self.config = config
        self.words, self._cdf = _vocabulary(config.vocabulary_size, config.frequency_power, config.vocabulary_file)

    def _plain_word(self, rng: np.random.Generator) -> str:
        word = self.words[int(np.searchsorted(self._cdf, rng.random()))]
        if word == "i" or word.startswith("i'"):
            word = "I" + word[1:]
        return word

    def _number(self, rng: np.random.Generator) -> str:
        kind = rng.integers(10)
        if kind == 0:
            return str(rng.integers(1900, 2031))  # a year
        if kind == 1:
            return f"${rng.integers(1, 500)}.{rng.integers(100):02d}"
        if kind == 2:
            return f"{rng.integers(1, 13)}:{rng.integers(60):02d}"
        if kind == 3:
            return f"{rng.integers(1, 29)}/{rng.integers(1, 13)}/{rng.integers(1990, 2031)}"
        if kind == 4:
            return f"{rng.integers(1, 100)}%"
        if kind == 5:
            return f"{rng.integers(0, 100)}.{rng.integers(0, 100)}"
        if kind == 6:
            n = int(rng.integers(1, 32))
            suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            return f"{n}{suffix}"
        if kind == 7:
            return f"{rng.integers(1, 50)}-{rng.integers(50, 100)}"
        digits = int(rng.integers(1, 6))
        return str(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits))

    def _symbol(self, rng: np.random.Generator) -> str:
        template = _SYMBOL_TOKENS[int(rng.integers(len(_SYMBOL_TOKENS)))]
        n, m = int(rng.integers(0, 100)), int(rng.integers(1, 100))
        return template.format(w=self._plain_word(rng), n=n, m=m, s=n + m)

    def _token(self, rng: np.random.Generator) -> tuple[str, bool]:
        """A token and whether it is a word (words take capitalisation and quotes)."""
        u = rng.random()
        if u < self.config.number_probability:
            return self._number(rng), False
        if u < self.config.number_probability + self.config.symbol_probability:
            return self._symbol(rng), False
        return self._plain_word(rng), True

    def word(self, rng: np.random.Generator) -> str:
        """One token: a word in any case, maybe with a trailing punctuation mark, or a number."""
        token, is_word = self._token(rng)
        if is_word:
            case = rng.random()
            if case < 0.25:
                token = token[:1].upper() + token[1:]
            elif case < 0.32:
                token = token.upper()
            if rng.random() < 0.12:
                token += ".,;:!?"[int(rng.integers(6))]
        return token

    def line(self, rng: np.random.Generator, n_words: int) -> str:
        """``n_words`` tokens in sentence case (mostly), Title Case, lower case or ALL CAPS."""
        case = rng.random()
        case = "sentence" if case < 0.62 else "lower" if case < 0.77 else "title" if case < 0.92 else "upper"
        tokens: list[str] = []
        capitalise_next = case == "sentence"
        i = 0
        while i < n_words:
            token, is_word = self._token(rng)
            if is_word:
                if case == "upper" or rng.random() < 0.02:
                    token = token.upper()
                elif capitalise_next or case == "title" or rng.random() < 0.04:
                    token = token[:1].upper() + token[1:]
                if rng.random() < 0.03 and i + 1 < n_words:  # a hyphenated compound
                    token += "-" + self._plain_word(rng)
                if rng.random() < 0.03:
                    quote = '"' if rng.random() < 0.6 else "'"
                    token = quote + token + quote
            capitalise_next = False
            last = i == n_words - 1
            u = rng.random()
            if last:
                if case != "lower" or u < 0.3:
                    token += "." if u < 0.7 else "!" if u < 0.82 else "?" if u < 0.95 else "..."
            elif u < 0.10:
                token += ","
            elif u < 0.14:
                token += "."
                capitalise_next = case == "sentence"
            elif u < 0.155:
                token += ";" if u < 0.148 else ":"
            elif u < 0.165:
                token += "!" if u < 0.16 else "?"
                capitalise_next = case == "sentence"
            elif u < 0.175:
                token = "(" + token + ")"
            tokens.append(token)
            if not last and rng.random() < 0.01:
                tokens.append("-")  # a dash between words
            i += 1
        return " ".join(tokens)


    def short(self, rng: np.random.Generator) -> str:
        """What people write on a tablet besides lines: a single character, capitals or letter
        pairs with spaces ("U V W", "NC Tx Or"), a short word in any case, an abbreviation, a number."""
        kind = rng.random()
        if kind < 0.25:  # one character, letters most often
            u = rng.random()
            pool = string.ascii_uppercase if u < 0.4 else string.ascii_lowercase if u < 0.75 else \
                string.digits if u < 0.9 else string.punctuation
            return pool[int(rng.integers(len(pool)))]
        if kind < 0.45:  # a few letters, pairs or capitals, each on its own
            n = int(rng.integers(2, 7))
            style = rng.random()
            items = []
            for _ in range(n):
                if style < 0.4:
                    items.append(string.ascii_uppercase[int(rng.integers(26))])
                elif style < 0.6:
                    items.append(string.ascii_lowercase[int(rng.integers(26))])
                else:
                    a, b = rng.integers(26, size=2)
                    second = string.ascii_uppercase[b] if rng.random() < 0.5 else string.ascii_lowercase[b]
                    items.append(string.ascii_uppercase[a] + second)
            return " ".join(items)
        if kind < 0.55:  # an abbreviation or acronym
            n = int(rng.integers(2, 5))
            letters = "".join(string.ascii_uppercase[int(i)] for i in rng.integers(26, size=n))
            return letters if rng.random() < 0.7 else ".".join(letters) + "."
        if kind < 0.65:
            return self._number(rng)
        # one to three short words, in any case
        words = []
        for _ in range(int(rng.integers(1, 4))):
            word = self._plain_word(rng)
            while len(word) > 6:
                word = self._plain_word(rng)
            case = rng.random()
            words.append(word.upper() if case < 0.2 else word[:1].upper() + word[1:] if case < 0.5 else word)
        return " ".join(words)


@functools.lru_cache(maxsize=2)
def _corpus_sentences(files: tuple) -> tuple:
    """The lines of gzip text files that hold at least one letter (printable ASCII only)."""
    import gzip

    sentences = []
    for path in files:
        with gzip.open(path, "rt", encoding="ascii", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and any(c.isalpha() for c in line) and all(" " <= c <= "~" for c in line):
                    sentences.append(line)
    if not sentences:
        raise ValueError(f"no text in {files}")
    return tuple(sentences)


def corpus_line(files: tuple, rng: np.random.Generator, n_words: int) -> str:
    """``n_words`` consecutive words of a random sentence of ``files`` (fewer if it is shorter)."""
    sentences = _corpus_sentences(tuple(str(f) for f in files))
    words = sentences[int(rng.integers(len(sentences)))].split()
    start = int(rng.integers(0, max(1, len(words) - n_words + 1)))
    return " ".join(words[start:start + n_words])


# ---- rendering -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticSample:
    """One generated sample and the writer parameters that made it (for pictures and debugging)."""

    points: np.ndarray
    text: str
    font: str
    sample_rate_hz: float
    x_height_mm: float
    # per point, the glyph it belongs to: the index of a non-space character of ``text`` (the
    # k-th one is glyph k). A sample between two glyphs (the pen-down link of joined letters)
    # belongs to the glyph the pen moves to; an i-dot written after its word belongs to the i.
    glyphs: Optional[np.ndarray] = None


def _uniform(rng: np.random.Generator, bounds: tuple) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _exit_stroke(glyph_strokes: tuple) -> int:
    """Index of the stroke that leaves a cursive glyph: the one ending furthest right."""
    return int(np.argmax([s[-1, 0] + 1e-6 * i for i, s in enumerate(glyph_strokes)]))


def _path_length(points: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(points, axis=0).T)))


@functools.lru_cache(maxsize=None)
def _cursive_order(font_name: str, char: str) -> tuple[tuple, tuple]:
    """Strokes of a connected glyph split into (written in place, written after the word).

    In place: the strokes before the exit stroke and the exit stroke itself (last), with strokes
    that nearly touch merged. After the word: short marks (dots, ticks) and anything the font
    draws after the exit stroke.
    """
    strokes = load_font(font_name).glyphs[char].strokes
    exit_index = _exit_stroke(strokes)
    now, later = [], []
    for i, s in enumerate(strokes):
        if i == exit_index:
            continue
        (later if i > exit_index or _path_length(s) < 0.6 else now).append(s)
    # a font may lift the pen where a writer would retrace (the stems of m and n): join strokes
    # that end close to where the next begins
    merged: list = []
    for s in now + [strokes[exit_index]]:
        if merged and np.hypot(*(s[0] - merged[-1][-1])) < SyntheticInk.MAX_JOIN:
            merged[-1] = np.concatenate([merged[-1], s])
        else:
            merged.append(s)
    return tuple(merged), tuple(later)


class SyntheticInk:
    """A reproducible, endless source of synthetic handwriting.

    ``sample(index)`` depends only on ``(config, seed, index)``; iterating yields indices
    0, 1, 2, ... Fonts and the vocabulary are loaded once per process and cached.
    """

    MAX_SEGMENT = 0.08  # x-heights: densify before warping so straight lines bend too
    MIN_STROKE_S = 0.05  # seconds the pen stays down for the shortest mark
    MAX_JOIN = 0.45  # x-heights: longest pen-down link between two letters of a cursive word

    def __init__(self, config: SynthConfig = SynthConfig(), seed: int = 0):
        self.config = config
        self.seed = int(seed)
        self.text_sampler = TextSampler(config)
        names = config.font_names
        self.fonts: tuple[Font, ...] = tuple(load_font(n) for n in names)
        weights = np.array([FONT_SPECS[n].weight for n in names])
        self._font_cdf = np.cumsum(weights) / weights.sum()
        self.fallback = load_font(FALLBACK_FONT)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def sample(self, index: int) -> tuple[np.ndarray, str]:
        """``(points, text)`` for ``index``: points ``(N, 4)`` float64 ``x, y, t, pen_up_after``."""
        info = self.sample_info(index)
        return info.points, info.text

    def sample_info(self, index: int) -> SyntheticSample:
        """Like :meth:`sample`, with the font and writer parameters that were drawn."""
        rng = self._rng(index)
        if self.config.kind == "word":
            text = self.text_sampler.word(rng)
        elif self.config.kind == "short":
            text = self.text_sampler.short(rng)
        elif self.config.kind == "corpus":
            lo, hi = self.config.words_per_line
            text = corpus_line(self.config.corpus_files, rng, int(rng.integers(lo, hi + 1)))
        else:
            lo, hi = self.config.words_per_line
            text = self.text_sampler.line(rng, int(rng.integers(lo, hi + 1)))
        return self._render(text, rng)

    def __iter__(self) -> Iterator[tuple[np.ndarray, str]]:
        index = 0
        while True:
            yield self.sample(index)
            index += 1

    def render(self, text: str, seed: int = 0, font: Optional[str] = None) -> np.ndarray:
        """``text`` (printable ASCII) written by the writer that ``seed`` draws; points as in :meth:`sample`."""
        return self._render(text, np.random.default_rng([self.seed, int(seed), 1]), font).points

    # -- the pipeline --
    def _render(self, text: str, rng: np.random.Generator, font_name: Optional[str] = None) -> SyntheticSample:
        if not text.strip():
            raise ValueError("SyntheticInk: text has no visible character")
        aug = self.config.augment
        if font_name is None:
            font = self.fonts[int(np.searchsorted(self._font_cdf, rng.random()))]
        else:
            font = load_font(font_name)
        pieces, piece_glyph, joined, gap_scale, n_glyphs = self._layout(text, font, rng)

        # per-glyph jitter, applied to every point through its glyph index
        lengths = np.array([len(p) for p in pieces])
        local = np.concatenate(pieces)
        glyph_of_point = np.repeat(piece_glyph, lengths)
        scale = np.exp(rng.normal(0.0, aug.glyph_scale_jitter, n_glyphs))
        shear = np.tan(np.radians(rng.normal(0.0, aug.glyph_slant_jitter_deg, n_glyphs)))
        dy = rng.normal(0.0, aug.glyph_offset_jitter, n_glyphs)
        s, k = scale[glyph_of_point], shear[glyph_of_point]
        # the layout already placed the glyphs; scale and shear each about its own left edge on the baseline
        xy = np.empty_like(local)
        xy[:, 0] = local[:, 0] + (s - 1.0) * self._glyph_relative_x(local, glyph_of_point, n_glyphs) - k * s * local[:, 1]
        xy[:, 1] = s * local[:, 1] + dy[glyph_of_point]

        pen_up = np.zeros(len(xy), dtype=bool)
        ends = np.cumsum(lengths) - 1
        pen_up[ends] = ~joined
        gap = np.zeros(len(xy))
        gap[ends] = gap_scale
        xy, pen_up, gap, dense_origin = _densify(xy, pen_up, gap, self.MAX_SEGMENT)

        xy = self._warp(xy, rng)
        t = self._timing(xy, pen_up, gap, rng)

        # device: size, clock, noise, resolution
        x_height_mm = _uniform(rng, aug.x_height_mm)
        units = x_height_mm * self.config.units_per_mm
        rate = _uniform(rng, aug.sample_rate_hz)
        points, clock_origin = _clock(xy * units, t, pen_up, rate)
        glyphs = glyph_of_point[dense_origin[clock_origin]].astype(np.int32)
        noise = aug.position_noise_mm * self.config.units_per_mm
        if noise > 0:
            points[:, :2] += rng.normal(0.0, noise, (len(points), 2))
        margin = rng.uniform(0.0, 10.0, 2) * self.config.units_per_mm
        points[:, :2] += margin - points[:, :2].min(axis=0)
        points[:, :2] = np.round(points[:, :2])
        return SyntheticSample(points, text, font.name, rate, x_height_mm, glyphs)

    @staticmethod
    def _glyph_relative_x(local, glyph_of_point, n_glyphs) -> np.ndarray:
        # x relative to the left edge of each glyph's ink, so a glyph scales about its own origin
        left = np.full(n_glyphs, np.inf)
        np.minimum.at(left, glyph_of_point, local[:, 0])
        return local[:, 0] - left[glyph_of_point]

    def _layout(self, text: str, font: Font, rng: np.random.Generator):
        """Place glyphs along the line; decide the writing order and where the pen stays down.

        Returns the stroke pieces (in writing order, already shifted to their x position), the
        glyph index of each piece, whether the pen stays down after it, the relative pen-up
        pause after it, and the number of glyphs.
        """
        aug = self.config.augment
        spacing = _uniform(rng, aug.letter_spacing)
        word_space = font.space_advance * _uniform(rng, aug.word_spacing)
        connected = font.spec.connected
        join_p = _uniform(rng, aug.join_probability) if connected else 0.0
        if connected:
            spacing = max(spacing, -0.02)  # overlapping joined letters would run backwards
        pieces, piece_glyph, joined, gaps = [], [], [], []
        deferred: list = []
        x = 0.0
        glyph_index = 0
        previous_char = ""

        def end_word():
            for piece, g in deferred:
                pieces.append(piece)
                piece_glyph.append(g)
                joined.append(False)
                gaps.append(1.0)
            deferred.clear()
            if gaps:
                gaps[-1] = 2.5  # a longer pause between words

        for char in text:
            if char == " ":
                end_word()
                x += word_space * float(np.exp(rng.normal(0.0, 0.15)))
                previous_char = ""
                continue
            glyph_font, glyph = font, font.glyphs.get(char)
            if glyph is None or glyph.is_blank:
                glyph_font, glyph = self.fallback, self.fallback.glyphs.get(char)
            if glyph is None:
                raise ValueError(f"SyntheticInk: no glyph for {char!r} (printable ASCII only)")
            in_script = connected and glyph_font is font and char.isalpha()
            if in_script:
                now, later = _cursive_order(font.name, char)
            else:
                now, later = glyph.strokes, ()
            shift = np.array([x + rng.normal(0.0, aug.glyph_offset_jitter), 0.0])
            if in_script and previous_char.isalpha() and now and rng.random() < join_p:
                # the previous letter's exit stroke runs on into this letter, unless the font
                # starts this letter far away (a join would then cut across the letter)
                reach = np.hypot(*(now[0][0] + shift - pieces[-1][-1]))
                joined[-1] = reach < self.MAX_JOIN
            for piece in now:
                pieces.append(piece + shift)
                piece_glyph.append(glyph_index)
                joined.append(False)
                gaps.append(1.0)
            deferred.extend((piece + shift, glyph_index) for piece in later)
            if not now and later:  # a glyph of marks only: nothing to join from
                previous_char = ""
            else:
                previous_char = char
            x += glyph.advance + spacing
            glyph_index += 1
        end_word()
        return pieces, np.array(piece_glyph), np.array(joined, dtype=bool), np.array(gaps), glyph_index

    def _warp(self, xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Elastic field, baseline drift, slant, aspect and rotation (x-height units in and out)."""
        aug = self.config.augment
        x, y = xy[:, 0], xy[:, 1]
        # a smooth displacement field: a few random plane waves of 1-4 x-heights wavelength
        dx = np.zeros_like(x)
        dy = np.zeros_like(y)
        amplitude = aug.elastic_warp * rng.uniform(0.3, 1.0)
        for _ in range(3):
            angle = rng.uniform(0, 2 * np.pi)
            freq = 2 * np.pi / rng.uniform(1.0, 4.0)
            phase = (x * np.cos(angle) + y * np.sin(angle)) * freq + rng.uniform(0, 2 * np.pi)
            dx += amplitude * rng.normal() * np.sin(phase)
            dy += amplitude * rng.normal() * np.cos(phase)
        # the baseline wanders slowly along the line
        drift = aug.baseline_drift * rng.uniform(0.0, 1.0)
        wavelength = rng.uniform(8.0, 30.0)
        dy += drift * np.sin(2 * np.pi * x / wavelength + rng.uniform(0, 2 * np.pi))
        x, y = x + dx, y + dy
        slant = np.tan(np.radians(_uniform(rng, aug.slant_deg)))
        x = (x - slant * y) * _uniform(rng, aug.aspect)
        angle = np.radians(_uniform(rng, aug.rotation_deg))
        c, s = np.cos(angle), np.sin(angle)
        return np.stack([c * x - s * y, s * x + c * y], axis=1)

    def _timing(self, xy: np.ndarray, pen_up: np.ndarray, gap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Time of every point: speed falls at corners and stroke ends; pauses between strokes."""
        aug = self.config.augment
        n = len(xy)
        delta = np.diff(xy, axis=0)
        ds = np.hypot(delta[:, 0], delta[:, 1])
        down = ~pen_up[:-1]  # segment i joins point i to i+1 with the pen down
        stroke_id = np.concatenate([[0], np.cumsum(pen_up[:-1])])

        # curvature at each vertex from the turning angle; 1/3 power law of speed vs curvature
        turn = np.zeros(n)
        if n > 2:
            a, b = delta[:-1], delta[1:]
            cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
            dot = np.sum(a * b, axis=1)
            inner = down[:-1] & down[1:]
            turn[1:-1] = np.where(inner, np.abs(np.arctan2(cross, dot)), 0.0)
        local_ds = np.maximum(0.5 * (np.concatenate([[0], ds]) + np.concatenate([ds, [0]])), 1e-3)
        curvature = turn / local_ds
        speed = (1.0 + curvature / 2.0) ** (-aug.corner_slowdown / 3.0)
        # the slowing spreads around a corner (edge padding keeps the length for tiny strokes)
        speed = np.convolve(np.pad(speed, 2, mode="edge"), np.ones(5) / 5, mode="valid")
        # the pen accelerates from rest and slows before lifting
        arc = np.concatenate([[0.0], np.cumsum(np.where(down, ds, 0.0))])
        starts = np.flatnonzero(np.concatenate([[True], pen_up[:-1]]))
        ends = np.flatnonzero(pen_up | (np.arange(n) == n - 1))
        from_start = arc - arc[starts][stroke_id]
        to_end = arc[ends][stroke_id] - arc
        speed *= np.clip(0.35 + np.minimum(from_start, to_end) / 0.4, 0.35, 1.0)
        # the writer's rhythm: a slow wander of speed along the path
        speed *= np.exp(0.15 * np.sin(2 * np.pi * arc / rng.uniform(3.0, 10.0) + rng.uniform(0, 2 * np.pi)))
        speed *= _uniform(rng, aug.pen_speed)

        segment_speed = 0.5 * (speed[:-1] + speed[1:])
        pause = _uniform(rng, aug.pen_up_time_s)
        air = ds / (2.0 * speed.max())  # moving in the air is quick but not free
        pauses = pause * gap[:-1] * np.exp(rng.normal(0.0, 0.3, n - 1)) + air
        dt = np.where(down, ds / segment_speed, pauses)
        # even a dot keeps the pen on the paper for a moment, so it gets a few samples
        stroke_of_segment = stroke_id[:-1]
        duration = np.bincount(stroke_of_segment, weights=np.where(down, dt, 0.0), minlength=stroke_id[-1] + 1)
        shortest = self.MIN_STROKE_S * rng.uniform(0.6, 1.4)
        stretch = np.maximum(1.0, shortest / np.maximum(duration, 1e-9))
        dt = np.where(down, dt * stretch[stroke_of_segment], dt)
        dt = np.maximum(dt, 1e-5)  # strictly increasing time, even for repeated points
        return np.concatenate([[0.0], np.cumsum(dt)])


def _densify(xy: np.ndarray, pen_up: np.ndarray, gap: np.ndarray, max_segment: float):
    """Split every pen-down segment longer than ``max_segment`` into equal pieces (vectorised).

    Also returns, per output point, the input point it stands for: itself, or for a point
    inserted inside a segment the segment's end (where the pen is going)."""
    delta = np.diff(xy, axis=0)
    length = np.hypot(delta[:, 0], delta[:, 1])
    pieces = np.where(pen_up[:-1], 1, np.maximum(1, np.ceil(length / max_segment))).astype(np.int64)
    segment = np.repeat(np.arange(len(delta)), pieces)
    first = np.cumsum(pieces) - pieces
    step = np.arange(len(segment)) - np.repeat(first, pieces)
    fraction = step / pieces[segment]
    out = np.empty((len(segment) + 1, 2))
    out[:-1] = xy[segment] + delta[segment] * fraction[:, None]
    out[-1] = xy[-1]
    is_original = step == 0
    out_pen_up = np.zeros(len(out), dtype=bool)
    out_gap = np.zeros(len(out))
    out_pen_up[:-1] = np.where(is_original, pen_up[segment], False)
    out_gap[:-1] = np.where(is_original, gap[segment], 0.0)
    out_pen_up[-1] = True  # the pen always lifts at the end
    out_gap[-1] = gap[-1]
    origin = np.append(segment + (step > 0), len(xy) - 1)
    return out, out_pen_up, out_gap, origin


def _clock(xy: np.ndarray, t: np.ndarray, pen_up: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Read the trajectory out at ``rate`` Hz from each pen-down; ``(N, 4)`` x, y, t, pen_up_after,
    and per sample the trajectory point it stands for (the first at or after its time, within its
    stroke)."""
    starts = np.flatnonzero(np.concatenate([[True], pen_up[:-1]]))
    ends = np.flatnonzero(pen_up)
    counts = np.floor((t[ends] - t[starts]) * rate).astype(np.int64) + 1
    first = np.cumsum(counts) - counts
    step = np.arange(counts.sum()) - np.repeat(first, counts)
    times = np.repeat(t[starts], counts) + step / rate
    out = np.empty((len(times), 4))
    # t is strictly increasing and no clock tick falls between a stroke's end and the next start,
    # so plain interpolation never draws a line through the air
    out[:, 0] = np.interp(times, t, xy[:, 0])
    out[:, 1] = np.interp(times, t, xy[:, 1])
    out[:, 2] = times
    out[:, 3] = 0.0
    out[np.cumsum(counts) - 1, 3] = 1.0
    origin = np.minimum(np.searchsorted(t, times, side="left"), np.repeat(ends, counts))
    return out, origin


# ---- command line --------------------------------------------------------------------------------

def plot_samples(samples: list, path: str, units_per_mm: float = 100.0) -> None:
    """Save a picture of ``samples`` (:class:`SyntheticSample`), one row each, y down, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(samples), 1, figsize=(12, 1.5 * len(samples)), squeeze=False)
    for ax, sample in zip(axes[:, 0], samples):
        pts = sample.points
        for stroke in points_to_strokes(pts):
            ax.plot(stroke[:, 0] / units_per_mm, stroke[:, 1] / units_per_mm, "-", color="#123", lw=1.0,
                    marker="." if len(stroke) == 1 else None, ms=2)
        ax.set_aspect("equal")
        ax.invert_yaxis()  # ink is y-down
        ax.axis("off")
        ax.set_title(f"{sample.text}    [{sample.font}, {sample.sample_rate_hz:.0f} Hz, "
                     f"x-height {sample.x_height_mm:.1f} mm]", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def configure(parser) -> None:
    parser.add_argument("--out", required=True, help="corpus .npz to write")
    parser.add_argument("--count", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=("word", "line"), default="line")
    parser.add_argument("--fonts", default="", help="comma-separated font names (default: all): "
                        + ", ".join(FONT_SPECS))
    parser.add_argument("--png", default=None, metavar="PICTURE", help="also draw the first few samples")
    parser.add_argument("--time", action="store_true",
                        help="also say how fast the generator was against the feature extraction of its samples")


def run(args) -> int:
    from runtime.ink import Ink, save_corpus

    if args.count < 1:
        raise SystemExit("inkstream synth: --count must be >= 1")
    fonts = tuple(f for f in args.fonts.split(",") if f)
    config = SynthConfig(kind=args.kind, fonts=fonts)
    generator = SyntheticInk(config, seed=args.seed)
    inks, shown = [], []
    generator.sample_info(0)  # fonts and the vocabulary load outside the timing
    started = time.perf_counter()
    for i in range(args.count):
        sample = generator.sample_info(i)
        inks.append(Ink.from_points(sample.points, text=sample.text, id=f"synth-{args.seed}-{i}",
                                    writer=f"synth-{sample.font}", units_per_mm=config.units_per_mm,
                                    meta={"kind": args.kind}))
        if len(shown) < 8:
            shown.append(sample)
    generate_s = time.perf_counter() - started  # includes building the Ink objects: small
    save_corpus(args.out, inks, kind=args.kind)
    print(f"wrote {len(inks)} {args.kind} samples ({sum(i.num_points for i in inks)} points) to {args.out}")
    if args.png:
        plot_samples(shown, args.png, config.units_per_mm)
        print(f"drew {len(shown)} samples to {args.png}")
    if args.time:
        from runtime.features import extract

        started = time.perf_counter()
        frames = sum(len(extract(ink.to_points())) for ink in inks)
        extract_s = time.perf_counter() - started
        points = sum(ink.num_points for ink in inks)
        print(f"generator: {args.count / generate_s:.1f} samples/s, {points / generate_s:.0f} points/s; features of "
              f"the same samples: {args.count / extract_s:.1f} samples/s ({frames / args.count:.0f} frames each); "
              f"generator time / feature time = {generate_s / extract_s:.2f}")
    return 0
