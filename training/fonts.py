"""Single-line (centreline) fonts for synthetic handwriting, parsed once and cached.

Two formats are read: Hershey fonts in James Hurt's ``.jhf`` format and SVG 1.1 ``<font>`` files
(the EMS fonts). Every glyph comes out in the same frame, whatever the source:

* y grows **down** (screen convention); the baseline is ``y = 0``; ascenders have negative y;
* lengths are in **x-heights**: the font is scaled so that its lowercase ``x`` is 1.0 tall;
* the pen starts at ``x = 0`` for the glyph's origin and moves on by ``glyph.advance``.

The font files live beside this module in ``training/fonts/`` with their licence files
(``HERSHEY-LICENSE.txt`` for the Hershey data, ``OFL.txt`` for the EMS fonts, ``LICENSES.txt``
says which covers which file).
"""
from __future__ import annotations

import functools
import html
import os
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

FONT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fonts")

__all__ = ["Glyph", "Font", "FontSpec", "FONT_SPECS", "FALLBACK_FONT", "load_font", "font_names", "FONT_DIR"]


@dataclass(frozen=True)
class FontSpec:
    """What the generator needs to know about a shipped font besides its outlines.

    ``connected``: a cursive font whose letters join (the pen stays down between letters of a
    word). ``weight``: how often the generator picks it relative to the others.
    """

    name: str
    file: str
    style: str  # "cursive", "script" or "print"
    connected: bool
    weight: float


# Script and handwriting-like fonts are weighted up; a few print fonts keep block capitals and
# printed digits in the mix. The Hershey "complex" and Times sets are left out: they draw thick
# parts as several parallel strokes, which no pen does.
FONT_SPECS: dict[str, FontSpec] = {s.name: s for s in (
    FontSpec("hershey-cursive", "cursive.jhf", "cursive", True, 3.0),
    FontSpec("hershey-script", "scripts.jhf", "script", True, 2.0),
    FontSpec("hershey-futura", "futural.jhf", "print", False, 1.0),
    FontSpec("ems-allure", "EMSAllure.svg", "cursive", True, 3.0),
    FontSpec("ems-felix", "EMSFelix.svg", "script", False, 2.0),
    FontSpec("ems-elfin", "EMSElfin.svg", "script", False, 1.5),
    FontSpec("ems-readability", "EMSReadability.svg", "print", False, 1.5),
    FontSpec("ems-readability-italic", "EMSReadabilityItalic.svg", "script", False, 1.5),
    FontSpec("ems-nixish", "EMSNixish.svg", "print", False, 1.0),
    FontSpec("ems-nixish-italic", "EMSNixishItalic.svg", "script", False, 1.0),
    FontSpec("ems-tech", "EMSTech.svg", "print", False, 1.0),
)}

#: Used for a character a font lacks; it has every printable ASCII character.
FALLBACK_FONT = "hershey-futura"


@dataclass(frozen=True)
class Glyph:
    """One character: pen-down strokes, each an ``(n, 2)`` float64 array (n >= 2), and the advance."""

    strokes: tuple
    advance: float

    @property
    def is_blank(self) -> bool:
        return not self.strokes


@dataclass(frozen=True)
class Font:
    """A parsed font: ``glyphs`` maps a character to its :class:`Glyph` in x-height units."""

    spec: FontSpec
    glyphs: dict
    space_advance: float

    @property
    def name(self) -> str:
        return self.spec.name

    def glyph(self, char: str) -> Optional[Glyph]:
        return self.glyphs.get(char)


def font_names() -> tuple[str, ...]:
    """Names of the shipped fonts, in a fixed order."""
    return tuple(FONT_SPECS)


@functools.lru_cache(maxsize=None)
def load_font(name: str) -> Font:
    """The font called ``name`` (see :data:`FONT_SPECS`), parsed on first use and then cached."""
    if name not in FONT_SPECS:
        raise ValueError(f"unknown font {name!r}; shipped fonts: {', '.join(FONT_SPECS)}")
    spec = FONT_SPECS[name]
    path = os.path.join(FONT_DIR, spec.file)
    if spec.file.endswith(".jhf"):
        raw, space = _parse_jhf(path)
    else:
        raw, space = _parse_svg_font(path)
    return _normalise(spec, raw, space)


# ---- Hershey .jhf ------------------------------------------------------------------------------

def _parse_jhf(path: str) -> tuple[dict, float]:
    """Glyphs of a .jhf file as ``{char: (strokes, advance)}`` in raw font units, y-down.

    A record is a 5-character id, a 3-character vertex count, then pairs of characters; each
    coordinate is ``ord(c) - ord('R')``; the first pair is the left and right bearing and the
    pair ``" R"`` lifts the pen. The records are the printable ASCII characters in order.
    """
    with open(path, encoding="ascii") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    glyphs = {}
    for code, line in zip(range(32, 127), lines):
        count = int(line[5:8])
        body = line[8:8 + 2 * count]
        left, right = ord(body[0]) - 82, ord(body[1]) - 82
        strokes, current = [], []
        for i in range(2, len(body) - 1, 2):
            pair = body[i:i + 2]
            if pair == " R":
                strokes.append(current)
                current = []
            else:
                current.append((ord(pair[0]) - 82 - left, ord(pair[1]) - 82))
        strokes.append(current)
        arrays = tuple(np.array(s, dtype=np.float64) for s in strokes if len(s) >= 2)
        glyphs[chr(code)] = (arrays, float(right - left))
    return glyphs, glyphs[" "][1]


# ---- SVG fonts ---------------------------------------------------------------------------------

_GLYPH_TAG = re.compile(r"<glyph\b([^>]*)/?>", re.S)
_ATTR = re.compile(r'([\w:-]+)\s*=\s*"([^"]*)"')
_PATH_TOKEN = re.compile(r"[MmLlCcZzHhVv]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _parse_svg_font(path: str) -> tuple[dict, float]:
    """Glyphs of an SVG font as ``{char: (strokes, advance)}`` in font units, flipped to y-down."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    font_tag = re.search(r"<font\b([^>]*)>", text)
    default_advance = float(dict(_ATTR.findall(font_tag.group(1))).get("horiz-adv-x", 500))
    glyphs = {}
    for match in _GLYPH_TAG.finditer(text):
        attrs = dict(_ATTR.findall(match.group(1)))
        char = html.unescape(attrs.get("unicode", ""))
        if len(char) != 1 or not (32 <= ord(char) < 127):
            continue  # only printable ASCII is needed; ligatures and accented letters are skipped
        advance = float(attrs.get("horiz-adv-x", default_advance))
        strokes = tuple(s * np.array([1.0, -1.0]) for s in _svg_path_strokes(attrs.get("d", "")))
        glyphs[char] = (strokes, advance)
    space = glyphs[" "][1] if " " in glyphs else default_advance
    return glyphs, space


def _flatten_cubic(p0, p1, p2, p3) -> np.ndarray:
    """Points along a cubic Bézier (excluding ``p0``), denser for longer control polygons."""
    p = np.array([p0, p1, p2, p3], dtype=np.float64)
    control_length = np.sum(np.hypot(*np.diff(p, axis=0).T))
    n = int(np.clip(np.ceil(control_length / 20.0), 3, 24))  # ~20 font units (2% em) per piece
    t = np.linspace(0.0, 1.0, n + 1)[1:, None]
    u = 1.0 - t
    return u ** 3 * p[0] + 3 * u * u * t * p[1] + 3 * u * t * t * p[2] + t ** 3 * p[3]


def _svg_path_strokes(d: str) -> list[np.ndarray]:
    """Open polylines of an SVG path (M, L, H, V, C, Z, absolute or relative), y-up as in the file."""
    tokens = _PATH_TOKEN.findall(d)
    strokes: list[list] = []
    current: list = []
    pos = np.zeros(2)
    start = np.zeros(2)
    command = None
    i = 0

    def take(k):
        nonlocal i
        values = [float(v) for v in tokens[i:i + k]]
        if len(values) != k or any(v.isalpha() for v in tokens[i:i + k]):
            raise ValueError(f"malformed SVG path near token {i}: {d[:60]!r}")
        i += k
        return values

    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
        if command is None:
            raise ValueError(f"SVG path does not start with a command: {d[:60]!r}")
        relative = command.islower()
        origin = pos if relative else np.zeros(2)
        op = command.upper()
        if op == "Z":
            if current:
                current.append(start.copy())
            pos = start.copy()
            command = None
            continue
        if op == "M":
            if len(current) >= 2:
                strokes.append(current)
            pos = origin + take(2)
            start = pos.copy()
            current = [pos.copy()]
            command = "l" if relative else "L"  # further pairs after M are line-tos
        elif op == "L":
            pos = origin + take(2)
            current.append(pos.copy())
        elif op == "H":
            pos = np.array([(pos[0] if relative else 0.0) + take(1)[0], pos[1]])
            current.append(pos.copy())
        elif op == "V":
            pos = np.array([pos[0], (pos[1] if relative else 0.0) + take(1)[0]])
            current.append(pos.copy())
        elif op == "C":
            c = take(6)
            p1, p2, p3 = origin + c[0:2], origin + c[2:4], origin + c[4:6]
            current.extend(_flatten_cubic(pos, p1, p2, p3))
            pos = p3.copy()
    if len(current) >= 2:
        strokes.append(current)
    return [np.array(s, dtype=np.float64) for s in strokes]


# ---- normalisation -----------------------------------------------------------------------------

def _clean_stroke(points: np.ndarray) -> Optional[np.ndarray]:
    # zero-length segments would give zero time steps when the pen speed is applied
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(points, axis=0)) > 1e-9, axis=1)
    points = points[keep]
    if len(points) == 1:  # a dot: give it a tiny extent so the pen still touches the paper
        points = np.vstack([points, points + [0.02, 0.02]])
    return points


def _normalise(spec: FontSpec, raw: dict, space: float) -> Font:
    """Scale to x-height units with the baseline at y = 0, measured on the font's own ``x``."""
    x_strokes = raw["x"][0]
    ys = np.concatenate([s[:, 1] for s in x_strokes])
    # the 'x' of a script font may carry entry/exit flicks below its body; the bulk of its ink
    # spans baseline to x-height, so use robust percentiles rather than the extremes
    baseline, top = np.percentile(ys, 97), np.percentile(ys, 3)
    unit = baseline - top
    glyphs = {}
    for char, (strokes, advance) in raw.items():
        cleaned = []
        for s in strokes:
            s = (s - [0.0, baseline]) / unit
            s = _clean_stroke(s)
            if s is not None:
                cleaned.append(s)
        glyphs[char] = Glyph(tuple(cleaned), advance / unit)
    return Font(spec, glyphs, space / unit)
