"""Reader for the IAM On-Line Handwriting Database (IAM-OnDB) in its own file layout.

An IAM-OnDB root holds ``lineStrokes/**/<form>-NN.xml`` (one text line of ink each) and
``ascii/**/<form>.txt`` (the transcription of a whole form). Line ``NN`` of a form is the
``NN``-th non-empty line of the ``CSR:`` block of the form's ascii file, stripped. Form ids are
the line id without its ``-NN`` suffix (``a01-001w-01`` -> ``a01-001w``, ``d04-081-03`` ->
``d04-081``); the official split lists (``trainset.txt`` ...) are lists of such form ids.

What callers may rely on (this reproduces the rows of ``../shared/data/iamondb/*.npz``):

- one stroke per ``<Stroke>``, points in file order, ``t = time - first time`` in seconds;
- ``id`` = line file stem, ``writer`` = form id, ``units_per_mm`` = NaN (not documented),
  ``text`` = the stripped CSR line (or None when unknown);
- the two time repairs the shared corpus made: ``time="0.0"`` (a missing stamp) is linearly
  interpolated from its neighbours, and small backwards steps are removed with a running maximum.

Policy for lines that cannot be labelled (documented because silent drops bias evaluations):
a line XML whose form has no ascii file, or whose ``NN`` exceeds the CSR line count, is skipped
and reported by one :class:`IamOnDbWarning` per :func:`read_iamondb` call listing the ids; with
``strict=True`` it raises :class:`~runtime.ink.InkFormatError` instead. An ascii file without a
``CSR:`` block is a malformed file and always raises.
"""
from __future__ import annotations

import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from runtime.ink import Ink, InkFormatError

__all__ = [
    "IamOnDbWarning",
    "read_iamondb",
    "read_iamondb_line",
    "read_csr_lines",
    "read_form_list",
    "form_id_of_line",
    "find_ascii_for_line",
    "is_iamondb_root",
]

PathLike = Union[str, os.PathLike]

_LINE_STEM = re.compile(r"^(?P<form>.+)-(?P<num>\d+)$")
# A block header in an ascii file ("OCR:", "CSR:"); the CSR block ends at the next one or at EOF.
_BLOCK_HEADER = re.compile(r"^[A-Z]{3}:\s*$")


class IamOnDbWarning(UserWarning):
    """Lines were skipped because no transcription matches them (see the module docstring)."""


def form_id_of_line(line_id: str) -> str:
    """``a01-001w-01`` -> ``a01-001w``; raises ValueError when the id has no ``-NN`` suffix."""
    m = _LINE_STEM.match(line_id)
    if not m:
        raise ValueError(f"{line_id!r} is not an IAM-OnDB line id (<form>-NN)")
    return m.group("form")


def _line_number(line_id: str) -> int:
    m = _LINE_STEM.match(line_id)
    if not m:
        raise ValueError(f"{line_id!r} is not an IAM-OnDB line id (<form>-NN)")
    return int(m.group("num"))


def is_iamondb_root(path: PathLike) -> bool:
    """True when ``path`` is a folder with ``lineStrokes/`` and ``ascii/`` subfolders."""
    p = Path(path)
    return (p / "lineStrokes").is_dir() and (p / "ascii").is_dir()


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InkFormatError(f"{path}: not well-formed XML ({exc})") from exc


def _float_attr(path: Path, elem: ET.Element, name: str, where: str) -> float:
    raw = elem.get(name)
    if raw is None:
        raise InkFormatError(f"{path}: {where} lacks the attribute {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise InkFormatError(f"{path}: {where} has a non-numeric {name}={raw!r}") from None
    if not np.isfinite(value):
        raise InkFormatError(f"{path}: {where} has a non-finite {name}={raw!r}")
    return value


def _repair_times(times: np.ndarray) -> np.ndarray:
    """Interpolate missing (0.0) stamps from their neighbours, then remove backwards jitter."""
    times = times.copy()
    missing = times == 0.0
    if missing.all():
        raise ValueError("every point has time 0.0")
    if missing.any():
        idx = np.arange(len(times))
        times[missing] = np.interp(idx[missing], idx[~missing], times[~missing])
    return np.maximum.accumulate(times)


def read_iamondb_line(xml_path: PathLike, text: Optional[str] = None) -> Ink:
    """Read one ``lineStrokes`` XML file into an :class:`Ink` with ``(n, 3)`` strokes.

    ``text`` is stored as given (the reader does not look for the ascii file; see
    :func:`runtime.formats.ink_io.read_ink_file` for that). Raises :class:`InkFormatError` naming the
    file when it is not XML, has no ``<Stroke>`` with points, or a ``<Point>`` lacks a numeric
    ``x``, ``y`` or ``time``.
    """
    path = Path(xml_path)
    root = _parse_xml(path)
    stroke_elems = list(root.iter("Stroke"))
    if not stroke_elems:
        raise InkFormatError(f"{path}: no <Stroke> element (empty ink)")
    rows: list[tuple[float, float, float]] = []
    lengths: list[int] = []
    for s_i, stroke in enumerate(stroke_elems):
        points = stroke.findall("Point")
        if not points:
            raise InkFormatError(f"{path}: <Stroke> number {s_i + 1} has no <Point>")
        for p_i, point in enumerate(points):
            where = f"<Point> {p_i + 1} of <Stroke> {s_i + 1}"
            rows.append((_float_attr(path, point, "x", where), _float_attr(path, point, "y", where),
                         _float_attr(path, point, "time", where)))
        lengths.append(len(points))
    xyt = np.array(rows, dtype=np.float64)
    try:
        times = _repair_times(xyt[:, 2])
    except ValueError as exc:
        raise InkFormatError(f"{path}: {exc}") from None
    xyt[:, 2] = times - times[0]
    line_id = path.stem
    try:
        writer = form_id_of_line(line_id)
    except ValueError:
        writer = ""  # a renamed file is still readable ink; it just has no form id
    strokes = np.split(xyt, np.cumsum(lengths)[:-1])
    return Ink(strokes=strokes, text=text, id=line_id, writer=writer, meta={"kind": "line", "source": str(path)})


def read_csr_lines(ascii_path: PathLike) -> list[str]:
    """The non-empty, stripped lines of the ``CSR:`` block of an IAM ascii file (in order).

    Raises :class:`InkFormatError` naming the file when it has no ``CSR:`` block.
    """
    path = Path(ascii_path)
    # IAM ascii files are ISO-8859-1; latin-1 also never fails on stray bytes.
    lines = path.read_text(encoding="latin-1").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "CSR:")
    except StopIteration:
        raise InkFormatError(f"{path}: no 'CSR:' block (not an IAM-OnDB transcription file)") from None
    csr = []
    for line in lines[start + 1:]:
        if _BLOCK_HEADER.match(line):
            break
        if line.strip():
            csr.append(line.strip())
    return csr


def read_form_list(path_or_ids: Union[PathLike, Iterable[str]]) -> set[str]:
    """Form ids from a split list file (one id per line, blanks and surrounding spaces ignored)
    or from an iterable of ids."""
    if isinstance(path_or_ids, (str, os.PathLike)):
        text = Path(path_or_ids).read_text(encoding="latin-1")
        return {line.strip() for line in text.splitlines() if line.strip()}
    return {str(i).strip() for i in path_or_ids if str(i).strip()}


def find_ascii_for_line(xml_path: PathLike) -> Optional[Path]:
    """The ascii file of a ``lineStrokes`` XML, found by walking up to the IAM-OnDB root.

    Looks first at the mirrored location (``lineStrokes/a01/a01-001/x.xml`` ->
    ``ascii/a01/a01-001/<form>.txt``), then anywhere under ``ascii/``. None when not found.
    """
    path = Path(xml_path).resolve()
    try:
        form = form_id_of_line(path.stem)
    except ValueError:
        return None
    for ancestor in path.parents:
        if ancestor.name == "lineStrokes":
            ascii_root = ancestor.parent / "ascii"
            mirrored = ascii_root / path.parent.relative_to(ancestor) / f"{form}.txt"
            if mirrored.is_file():
                return mirrored
            return next(iter(sorted(ascii_root.rglob(f"{form}.txt"))), None) if ascii_root.is_dir() else None
    return None


def read_iamondb(
    root: PathLike,
    forms: Union[None, PathLike, Iterable[str]] = None,
    strict: bool = False,
) -> list[Ink]:
    """Every labelled line under an IAM-OnDB ``root``, sorted by id.

    ``forms`` restricts the result to those form ids (a split list file such as ``trainset.txt``
    or an iterable of ids). Unlabelled lines follow the policy in the module docstring.
    """
    root = Path(root)
    if not is_iamondb_root(root):
        raise InkFormatError(f"{root}: not an IAM-OnDB root (needs lineStrokes/ and ascii/ folders)")
    wanted = None if forms is None else read_form_list(forms)
    ascii_by_form = {p.stem: p for p in sorted((root / "ascii").rglob("*.txt"))}
    csr_cache: dict[str, list[str]] = {}
    inks, unlabelled = [], []
    for xml_path in sorted((root / "lineStrokes").rglob("*.xml"), key=lambda p: p.stem):
        try:
            form, number = form_id_of_line(xml_path.stem), _line_number(xml_path.stem)
        except ValueError:
            unlabelled.append(xml_path.stem)
            continue
        if wanted is not None and form not in wanted:
            continue
        if form not in csr_cache:
            ascii_path = ascii_by_form.get(form)
            csr_cache[form] = read_csr_lines(ascii_path) if ascii_path else []
        csr = csr_cache[form]
        if not 1 <= number <= len(csr):
            unlabelled.append(xml_path.stem)
            continue
        inks.append(read_iamondb_line(xml_path, text=csr[number - 1]))
    if unlabelled:
        message = (f"{root}: {len(unlabelled)} line file(s) have no matching CSR line and were skipped: "
                   + ", ".join(unlabelled[:10]) + (" ..." if len(unlabelled) > 10 else ""))
        if strict:
            raise InkFormatError(message)
        warnings.warn(message, IamOnDbWarning, stacklevel=2)
    return inks
