"""The ink data model and the corpus ``.npz`` format.

An :class:`Ink` is a list of strokes; a stroke is an ``(n, 3)`` or ``(n, 4)`` float array of
``x, y, t`` (and ``pressure`` where the source has it). Coordinates are y-down (screen
convention), ``t`` is seconds. ``units_per_mm`` is the device resolution where known, else NaN.

The flat "points" form used everywhere on the hot path is an ``(N, 4)`` float array of
``x, y, t, pen_up_after`` (1.0 on the last point of each stroke), exactly as in the shared corpus
files described in ``../shared/data/README.md``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from firmware_bridge.replay import split_strokes

__all__ = ["Ink", "InkFormatError", "Corpus", "load_corpus", "points_to_strokes", "strokes_to_points"]


class InkFormatError(ValueError):
    """A file or array is not valid ink. The message names the file (where there is one) and the fault."""


def strokes_to_points(strokes: Sequence[np.ndarray]) -> np.ndarray:
    """Flatten strokes into an ``(N, 4)`` float64 array ``x, y, t, pen_up_after``."""
    parts = []
    for s in strokes:
        s = np.asarray(s, dtype=np.float64)
        if len(s) == 0:
            continue
        p = np.zeros((len(s), 4))
        p[:, :3] = s[:, :3]
        p[-1, 3] = 1.0
        parts.append(p)
    return np.concatenate(parts) if parts else np.zeros((0, 4))


def points_to_strokes(points: np.ndarray) -> list[np.ndarray]:
    """Split an ``(N, 4)`` points array into ``(n, 3)`` strokes at ``pen_up_after`` marks.

    A trailing run without a pen-up mark becomes a last stroke of its own.
    """
    return [stroke[:, :3].copy() for stroke in split_strokes(np.asarray(points, dtype=np.float64))]


@dataclass
class Ink:
    """One handwritten sample: strokes of timestamped points plus what is known about it.

    ``strokes[i]`` is ``(n, 3)`` (x, y, t) or ``(n, 4)`` (x, y, t, pressure); y grows down.
    """

    strokes: list
    text: Optional[str] = None
    id: str = ""
    writer: str = ""
    units_per_mm: float = math.nan
    meta: dict = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    @property
    def duration(self) -> float:
        if not self.strokes:
            return 0.0
        return float(self.strokes[-1][-1, 2] - self.strokes[0][0, 2])

    @property
    def has_pressure(self) -> bool:
        return bool(self.strokes) and all(np.asarray(s).shape[1] >= 4 for s in self.strokes)

    def to_points(self) -> np.ndarray:
        """``(N, 4)`` float64 ``x, y, t, pen_up_after``."""
        return strokes_to_points(self.strokes)

    @classmethod
    def from_points(cls, points: np.ndarray, **kw) -> "Ink":
        return cls(strokes=points_to_strokes(points), **kw)

    def bbox(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` over all points."""
        p = self.to_points()
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


class Corpus:
    """Random access to a corpus ``.npz`` (see ``../shared/data/README.md``), read into memory once.

    ``corpus[i]`` is an :class:`Ink`; ``corpus.points(i)`` the raw ``(n, 4)`` rows. Optional
    per-sample arrays (``split``, ``quality``) are exposed through :meth:`field`.
    """

    REQUIRED = ("points", "offsets", "texts", "ids", "writers", "units_per_mm", "kind")

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            # np.load on an npz is lazy: read every array here, so a bad one (an object array, a
            # corrupt member) is reported with the file name, and close the file
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, ValueError on pickled arrays, ...
            raise InkFormatError(f"{self.path}: not a readable npz corpus ({exc})") from exc
        missing = [k for k in self.REQUIRED if k not in arrays]
        if missing:
            raise InkFormatError(f"{self.path}: corpus npz lacks the arrays {missing}")
        try:
            self._points = np.ascontiguousarray(arrays.pop("points"), dtype=np.float32)
            self.offsets = np.asarray(arrays.pop("offsets"), dtype=np.int64)
            self.units_per_mm = np.asarray(arrays.pop("units_per_mm"), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InkFormatError(f"{self.path}: points, offsets or units_per_mm are not numeric ({exc})") from exc
        self.texts = self._text_array(arrays.pop("texts"), "texts")
        self.ids = self._text_array(arrays.pop("ids"), "ids")
        self.writers = self._text_array(arrays.pop("writers"), "writers")
        self.kind = self._text_array(arrays.pop("kind"), "kind")
        # the optional per-sample arrays (split, quality, ...)
        self._fields = {k: self._text_array(v, k) for k, v in arrays.items()}
        self._validate()

    def _text_array(self, a: np.ndarray, name: str) -> np.ndarray:
        """``a`` with byte strings (an npz written from bytes) decoded as UTF-8: ``str()`` of a
        byte string would read ``b'text'``."""
        if a.dtype.kind != "S":
            return a
        try:
            return np.char.decode(a, "utf-8")
        except UnicodeDecodeError as exc:
            raise InkFormatError(f"{self.path}: {name} holds bytes that are not UTF-8 ({exc})") from exc

    def _validate(self) -> None:
        p, o = self._points, self.offsets
        m = len(o) - 1
        if p.ndim != 2 or p.shape[1] != 4:
            raise InkFormatError(f"{self.path}: points must be (N, 4), got {p.shape}")
        if o.ndim != 1 or m < 0 or o[0] != 0 or o[-1] != len(p) or np.any(np.diff(o) < 0):
            raise InkFormatError(f"{self.path}: offsets must start at 0, never decrease and end at N={len(p)}")
        for name in ("texts", "ids", "writers", "units_per_mm", "kind"):
            a = getattr(self, name)
            if a.ndim != 1 or len(a) != m:
                raise InkFormatError(f"{self.path}: {name} has shape {a.shape}, offsets say {m} rows")
        if not np.all(np.isfinite(p)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(p), axis=1))[0])
            raise InkFormatError(f"{self.path}: point row {bad} is not finite")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def field(self, name: str) -> Optional[np.ndarray]:
        """An optional per-sample array such as ``split`` or ``quality``; None when absent."""
        return self._fields.get(name)

    def points(self, i: int) -> np.ndarray:
        """``(n, 4)`` float32 rows ``x, y, t, pen_up_after`` of sample ``i`` (a view)."""
        return self._points[self.offsets[i]:self.offsets[i + 1]]

    def __getitem__(self, i: int) -> Ink:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return Ink.from_points(
            self.points(i).astype(np.float64),
            text=str(self.texts[i]),
            id=str(self.ids[i]),
            writer=str(self.writers[i]),
            units_per_mm=float(self.units_per_mm[i]),
            meta={"kind": str(self.kind[i])},
        )

    def __iter__(self) -> Iterator[Ink]:
        for i in range(len(self)):
            yield self[i]

    def select(self, split: Optional[str] = None) -> np.ndarray:
        """Indices of the samples in ``split`` (UNIPEN files carry a ``split`` array; others have none)."""
        if split is None:
            return np.arange(len(self))
        s = self.field("split")
        if s is None:
            raise ValueError(f"{self.path}: has no 'split' array; choose the file for the split instead")
        return np.flatnonzero(s == split)


def load_corpus(path: str | os.PathLike) -> Corpus:
    """Open a corpus ``.npz``; raises :class:`InkFormatError` naming the file on bad content."""
    return Corpus(path)


def save_corpus(path: str | os.PathLike, inks: Sequence[Ink], kind: str = "line") -> None:
    """Write inks in the corpus ``.npz`` format (used for small fixtures and user data)."""
    pts = [ink.to_points().astype(np.float32) for ink in inks]
    offsets = np.zeros(len(pts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pts])
    np.savez_compressed(
        path,
        points=np.concatenate(pts) if pts else np.zeros((0, 4), np.float32),
        offsets=offsets,
        texts=np.array([ink.text or "" for ink in inks]),
        ids=np.array([ink.id for ink in inks]),
        writers=np.array([ink.writer for ink in inks]),
        units_per_mm=np.array([ink.units_per_mm for ink in inks], dtype=np.float32),
        kind=np.array([ink.meta.get("kind", kind) for ink in inks]),
    )
