"""W3C InkML (https://www.w3.org/TR/InkML/) reader and writer for :class:`~runtime.ink.Ink`.

Reading (:func:`read_inkml`), what callers may rely on:

- **Channels.** Each ``<trace>`` is decoded with its trace format: the ``contextRef`` context
  (its ``traceFormat``, ``traceFormatRef``, ``inkSourceRef``/``inkSource`` or parent
  ``contextRef``), else the latest ``<context>`` that is a direct child of ``<ink>``, else a
  ``<traceFormat>`` that is a direct child of ``<ink>``, else the only ``<traceFormat>`` in the
  file, else the InkML default ``X Y``. Channels may come in any order; ``X`` and ``Y`` are
  required, ``T`` (time) and ``F`` (force, kept as pressure) are used when present, any other
  channel is parsed and ignored. Intermittent channels may be left out of a point.
- **Trace text.** Points are comma-separated, values whitespace-separated or run together by
  their sign (``3-5``). The difference prefixes ``!`` (explicit), ``'`` (first difference) and
  ``"`` (second difference) are decoded, and stick to a channel until changed, as the spec says.
  ``T``/``F`` read as 1/0, ``*`` repeats the channel's previous value, ``?`` (unknown) is only
  accepted in ignored channels. Hexadecimal values raise :class:`InkFormatError`.
- **Time.** ``t`` is seconds since the first point of the returned Ink. A ``T`` channel is
  scaled by its ``units`` (``s``, ``ms``, ``us``; no units means seconds). Without a ``T``
  channel, ``t`` is synthesised exactly as ``../shared/data/imadocsen/*.npz`` does it: 0.01 s per
  point plus one extra 0.01 s between strokes (``t = 0.01 * (point index + stroke index)``),
  an ordering proxy and not real time; ``ink.meta["synthetic_time"]`` is then True.
- **Truth.** ``<annotation type="truth">text</annotation>`` and ImadocSen's
  ``<annotationXML type="Ground truth"><label>text</label></annotationXML>`` are ground truth.
- **Levels.** ``level="document"`` gives one Ink of every pen-down trace outside
  ``<definitions>`` in document order; its text is the truth on ``<ink>``, else the truth of the
  single outermost annotated ``<traceGroup>``, else None. ``level="groups"`` (default) gives one
  Ink per *innermost* annotated ``<traceGroup>`` (its traces and ``<traceView traceDataRef>``
  references, in order) when there are at least two such groups, and the document Ink otherwise;
  traces outside those groups are then not returned. ``type="penUp"`` (hover) traces are skipped.
- **Ids.** The document Ink's id is ``sample_id``, else an ``<annotation type="id">`` on
  ``<ink>``, else the file stem. The k-th group Ink (1-based) is ``<that id>/wKK`` (``w01`` ...),
  the naming of the shared ImadocSen words corpus, unless the group has its own id annotation.
  ``writer`` comes from ``<annotation type="writer">`` (group, else document), else "".
  ``units_per_mm`` from ``<annotation type="units_per_mm">``, else from the X channel's
  ``units`` (mm, cm, m, in, himetric), else NaN.

Writing (:func:`write_inkml`): one Ink is written as a document (traces under ``<ink>``), several
as one ``<traceGroup>`` each; ``traceFormat`` X Y T (T in seconds) plus F when the Ink has
pressure; truth, id, writer and units_per_mm (when known) as ``<annotation>`` elements. Precision:
x, y and pressure are written with 3 decimals, t with 6 (1 microsecond), trailing zeros dropped,
so integer coordinates round-trip exactly.
"""
from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from runtime.ink import Ink, InkFormatError

__all__ = ["read_inkml", "write_inkml", "parse_trace", "InkChannel", "INKML_NAMESPACE",
           "SYNTHETIC_POINT_INTERVAL_S"]

PathLike = Union[str, os.PathLike]

INKML_NAMESPACE = "http://www.w3.org/2003/InkML"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
# The shared ImadocSen corpus synthesised time at an assumed 100 Hz; reading the raw files the same
# way keeps a model's time features identical between the npz and the InkML route.
SYNTHETIC_POINT_INTERVAL_S = 0.01

_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "millisecond": 1e-3,
               "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6}
_UNITS_PER_MM = {"mm": 1.0, "cm": 0.1, "m": 0.001, "in": 1 / 25.4, "himetric": 100.0}
_TRUTH_TYPES = {"truth", "groundtruth"}

# One token of trace text: a difference prefix, a number (sign included), a special value, or a
# point separator. Anything else is an error.
_TOKEN = re.compile(r"""\s*(?:(?P<prefix>[!'"])|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"""
                    r"""|(?P<special>[TF*?])|(?P<comma>,)|(?P<bad>\S))""")
_PLAIN_TRACE = re.compile(r"[\d\s,.eE+-]*")


@dataclass(frozen=True)
class InkChannel:
    """One channel of a trace format: its name, units, and whether points may omit it."""

    name: str
    units: str = ""
    intermittent: bool = False


_DEFAULT_FORMAT = (InkChannel("X"), InkChannel("Y"))


# ----------------------------------------------------------------------------------------------
# Trace text


def parse_trace(text: str, channels: Sequence[InkChannel], where: str) -> np.ndarray:
    """Decode the text of one ``<trace>`` into an ``(n, len(channels))`` float64 array.

    ``where`` names the file and trace in error messages. Omitted intermittent values repeat
    the channel's previous value (NaN before the first one); ``?`` is NaN.
    """
    n_regular = sum(not c.intermittent for c in channels)
    if _PLAIN_TRACE.fullmatch(text):
        fast = _parse_plain_trace(text, len(channels), n_regular)
        if fast is not None:
            return fast
    return _parse_trace_tokens(text, channels, n_regular, where)


def _parse_plain_trace(text: str, n_channels: int, n_regular: int) -> Optional[np.ndarray]:
    """The common case (plain numbers, every channel given): fast, or None to take the slow path.
    Parsed a megabyte of text at a time, so a huge trace never exists as millions of strings."""
    body = text.strip().rstrip(",")
    if not body:
        return None
    parts, start = [], 0
    while start < len(body):
        end = body.find(",", start + (1 << 20))
        end = len(body) if end < 0 else end
        points = body[start:end].split(",")
        if any(len(p.split()) != n_channels for p in points):
            return None
        try:
            values = np.array(" ".join(points).split(), dtype=np.float64)
        except ValueError:  # e.g. "3-5": values run together by their sign
            return None
        parts.append(values.reshape(len(points), n_channels))
        start = end + 1
    return np.concatenate(parts)


def _parse_trace_tokens(text: str, channels: Sequence[InkChannel], n_regular: int, where: str) -> np.ndarray:
    n_channels = len(channels)
    previous = [math.nan] * n_channels  # value of each channel at the previous point
    velocity = [0.0] * n_channels  # previous first difference, for second-difference decoding
    order = ["!"] * n_channels  # the sticky difference order of each channel
    rows = array("d")  # the values, point after point: 8 bytes each (a list of lists costs ~15x that)
    n_rows = 0
    current: list[float] = []
    pending_prefix: Optional[str] = None

    def finish_point() -> None:
        nonlocal current, n_rows
        if pending_prefix is not None:
            raise InkFormatError(f"{where}: difference prefix {pending_prefix!r} without a value")
        if not current and not n_rows and not text.strip():
            return
        if not n_regular <= len(current) <= n_channels:
            raise InkFormatError(
                f"{where}: point {n_rows + 1} has {len(current)} values, the trace format "
                f"({' '.join(c.name for c in channels)}) needs {n_regular}"
                + ("" if n_regular == n_channels else f" to {n_channels}"))
        for c in range(len(current), n_channels):  # omitted intermittent channels keep their value
            current.append(previous[c])
        for c in range(n_channels):
            if n_rows:
                velocity[c] = current[c] - previous[c]
            previous[c] = current[c]
        rows.extend(current)
        n_rows += 1
        current = []

    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        pos = m.end()
        if m.group("comma"):
            finish_point()
        elif m.group("prefix"):
            pending_prefix = m.group("prefix")
        elif m.group("bad"):
            what = "hexadecimal values are not supported" if m.group("bad") == "#" else f"unexpected {m.group('bad')!r}"
            raise InkFormatError(f"{where}: {what} in trace text at character {m.start('bad')}")
        else:
            c = len(current)
            if c >= n_channels:
                raise InkFormatError(f"{where}: point {n_rows + 1} has more than {n_channels} values "
                                     f"(trace format {' '.join(ch.name for ch in channels)})")
            if pending_prefix is not None:
                order[c] = pending_prefix
                pending_prefix = None
            current.append(_decode_value(m.group("number"), m.group("special"), order[c], previous[c],
                                         velocity[c], bool(n_rows), where, n_rows + 1))
    if current or pending_prefix is not None or not n_rows:  # a trailing comma ends no extra point
        finish_point()
    return np.frombuffer(rows, dtype=np.float64).reshape(n_rows, n_channels).copy()


def _decode_value(number: Optional[str], special: Optional[str], order: str, previous: float,
                  velocity: float, has_previous: bool, where: str, point_number: int) -> float:
    if special is not None:
        if special in "TF":
            return 1.0 if special == "T" else 0.0
        if special == "?":
            return math.nan
        return previous  # "*": unchanged
    value = float(number)
    if order == "!":
        return value
    if not has_previous:
        raise InkFormatError(f"{where}: point {point_number} is a difference but there is no previous point")
    if order == "'":
        return previous + value
    return previous + velocity + value  # '"': the change of the first difference


# ----------------------------------------------------------------------------------------------
# Reading


def _strip_namespaces(root: ET.Element) -> None:
    """Drop ``{namespace}`` from tags so files with and without the InkML namespace read alike."""
    for elem in root.iter():
        if isinstance(elem.tag, str) and elem.tag.startswith("{"):
            elem.tag = elem.tag.split("}", 1)[1]


def _elem_id(elem: ET.Element) -> Optional[str]:
    return elem.get(_XML_ID) or elem.get("id")


class _InkmlDocument:
    """Id lookups and trace-format resolution for one parsed file."""

    def __init__(self, path: Path, root: ET.Element):
        self.path = path
        self.root = root
        self.by_id = {i: e for e in root.iter() if (i := _elem_id(e))}
        self.parent = {child: parent for parent in root.iter() for child in parent}
        all_formats = list(root.iter("traceFormat"))
        direct = [e for e in root if e.tag == "traceFormat"]
        self.fallback_format = direct[-1] if direct else (all_formats[0] if len(all_formats) == 1 else None)

    def resolve(self, ref: str, expected: str, where: str) -> ET.Element:
        key = ref.strip()
        if key.startswith("#"):
            key = key[1:]
        elem = self.by_id.get(key)
        if elem is None:
            raise InkFormatError(f"{self.path}: {where} refers to {ref!r}, which is not defined in this file")
        if elem.tag != expected and not (expected == "traceData" and elem.tag in ("trace", "traceGroup")):
            raise InkFormatError(f"{self.path}: {where} refers to {ref!r}, a <{elem.tag}>, not a <{expected}>")
        return elem

    def format_of_context(self, ctx: ET.Element, depth: int = 0) -> Optional[ET.Element]:
        if depth > 20:
            raise InkFormatError(f"{self.path}: <context> references loop")
        fmt = ctx.find("traceFormat")
        if fmt is not None:
            return fmt
        if ctx.get("traceFormatRef"):
            return self.resolve(ctx.get("traceFormatRef"), "traceFormat", "<context traceFormatRef>")
        source = ctx.find("inkSource")
        if source is None and ctx.get("inkSourceRef"):
            source = self.resolve(ctx.get("inkSourceRef"), "inkSource", "<context inkSourceRef>")
        if source is not None and source.find("traceFormat") is not None:
            return source.find("traceFormat")
        if ctx.get("contextRef"):
            return self.format_of_context(self.resolve(ctx.get("contextRef"), "context", "<context contextRef>"), depth + 1)
        return None

    def channels(self, fmt: Optional[ET.Element]) -> tuple[InkChannel, ...]:
        if fmt is None:
            return _DEFAULT_FORMAT
        channels = []
        for ch in fmt.iter("channel"):
            name = ch.get("name")
            if not name:
                raise InkFormatError(f"{self.path}: a <channel> has no name")
            intermittent = self.parent.get(ch) is not None and self.parent[ch].tag == "intermittentChannels"
            channels.append(InkChannel(name, ch.get("units", ""), intermittent))
        names = [c.name for c in channels]
        if "X" not in names or "Y" not in names:
            raise InkFormatError(f"{self.path}: trace format {names} lacks an X or Y channel")
        return tuple(channels)


@dataclass
class _Trace:
    """A decoded ``<trace>``: x, y, t (NaN when absent), pressure (NaN when absent)."""

    xytf: np.ndarray
    has_time: bool
    has_pressure: bool


def _annotations(elem: ET.Element) -> dict[str, str]:
    """Direct ``<annotation type=...>`` children (and ImadocSen-style ground truth) of ``elem``."""
    found: dict[str, str] = {}
    for child in elem:
        kind = (child.get("type") or "").replace(" ", "").replace("_", "").lower()
        if child.tag == "annotation":
            key = "truth" if kind in _TRUTH_TYPES else (child.get("type") or "")
            found.setdefault(key, (child.text or "").strip())
        elif child.tag == "annotationXML" and kind in _TRUTH_TYPES:
            label = child.find("label")
            found.setdefault("truth", ((label.text if label is not None else "".join(child.itertext())) or "").strip())
    return found


def read_inkml(path: PathLike, level: str = "groups", sample_id: Optional[str] = None) -> list[Ink]:
    """Read an InkML file into Inks (see the module docstring for levels, ids, time and truth).

    Raises :class:`InkFormatError` naming the file on malformed content: not XML, not an
    ``<ink>`` document, undefined references, bad trace text or channel counts, empty ink.
    """
    if level not in ("groups", "document"):
        raise ValueError(f"level must be 'groups' or 'document', got {level!r}")
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InkFormatError(f"{path}: not well-formed XML ({exc})") from exc
    _strip_namespaces(root)
    if root.tag != "ink":
        raise InkFormatError(f"{path}: the root element is <{root.tag}>, not <ink> (not an InkML file)")
    doc = _InkmlDocument(path, root)
    traces = _decode_document_traces(doc)

    doc_notes = _annotations(root)
    base_id = sample_id or doc_notes.get("id") or path.stem
    doc_writer = doc_notes.get("writer", "")
    doc_units = _units_per_mm(doc, doc_notes)

    annotated = [g for g in root.iter("traceGroup") if "truth" in _annotations(g)]
    innermost = [g for g in annotated if not any(d is not g and "truth" in _annotations(d) for d in g.iter("traceGroup"))]

    if level == "groups" and len(innermost) >= 2:
        inks = []
        for k, group in enumerate(innermost, start=1):
            notes = _annotations(group)
            where = f"<traceGroup> {_elem_id(group) or k}"
            parts = [traces[id(t)] for t in _group_trace_elems(doc, group, where) if id(t) in traces]
            inks.append(_build_ink(doc, parts, where, text=notes["truth"], id=notes.get("id") or f"{base_id}/w{k:02d}",
                                   writer=notes.get("writer", doc_writer), units=_units_per_mm(doc, notes, doc_units)))
        return inks

    text = doc_notes.get("truth")
    if text is None:
        outermost = [g for g in annotated if not any(a is not g and g in set(a.iter("traceGroup")) for a in annotated)]
        if len(outermost) == 1:
            text = _annotations(outermost[0])["truth"]
    parts = [traces[id(t)] for t in _document_trace_elems(root) if id(t) in traces]
    return [_build_ink(doc, parts, "document", text=text, id=base_id, writer=doc_writer, units=doc_units)]


def _document_trace_elems(root: ET.Element) -> list[ET.Element]:
    """Every ``<trace>`` outside ``<definitions>``, in document order."""
    out = []

    def walk(elem: ET.Element) -> None:
        for child in elem:
            if child.tag == "definitions":
                continue
            if child.tag == "trace":
                out.append(child)
            else:
                walk(child)

    walk(root)
    return out


def _group_trace_elems(doc: _InkmlDocument, group: ET.Element, where: str, depth: int = 0) -> list[ET.Element]:
    """The traces of a group in order: its own ``<trace>`` descendants and ``<traceView>`` targets."""
    if depth > 20:
        raise InkFormatError(f"{doc.path}: {where}: <traceView> references loop")
    out = []
    for child in group:
        if child.tag == "trace":
            out.append(child)
        elif child.tag == "traceGroup":
            out.extend(_group_trace_elems(doc, child, where, depth))
        elif child.tag == "traceView":
            if child.get("from") or child.get("to"):
                raise InkFormatError(f"{doc.path}: {where}: <traceView> from/to ranges are not supported")
            ref = child.get("traceDataRef")
            if ref:
                target = doc.resolve(ref, "traceData", f"{where} <traceView>")
                out.extend([target] if target.tag == "trace" else _group_trace_elems(doc, target, where, depth + 1))
            else:
                out.extend(_group_trace_elems(doc, child, where, depth + 1))
    return out


def _decode_document_traces(doc: _InkmlDocument) -> dict[int, _Trace]:
    """Decode every pen-down ``<trace>`` once, keyed by ``id(element)``, tracking the current context."""
    decoded: dict[int, _Trace] = {}
    current_format = doc.fallback_format
    format_cache: dict[int, tuple[InkChannel, ...]] = {}

    def channels_for(fmt: Optional[ET.Element]) -> tuple[InkChannel, ...]:
        key = id(fmt)
        if key not in format_cache:
            format_cache[key] = doc.channels(fmt)
        return format_cache[key]

    def decode(trace: ET.Element, number: int) -> None:
        if (trace.get("type") or "penDown") == "penUp":
            return  # hover samples are not ink
        label = f"{doc.path}: <trace> {_elem_id(trace) or number}"
        fmt = current_format
        if trace.get("contextRef"):
            ctx = doc.resolve(trace.get("contextRef"), "context", f"<trace> {_elem_id(trace) or number} contextRef")
            fmt = doc.format_of_context(ctx) or doc.fallback_format
        channels = channels_for(fmt)
        values = parse_trace(trace.text or "", channels, label)
        if len(values) == 0:
            raise InkFormatError(f"{label}: has no points")
        decoded[id(trace)] = _trace_columns(values, channels, label)

    number = 0
    # Top-level <context> elements change the context of the traces after them (InkML 3.3).
    for elem in doc.root.iter():
        if elem.tag == "context" and doc.parent.get(elem) is doc.root:
            current_format = doc.format_of_context(elem) or doc.fallback_format
        elif elem.tag == "trace":
            number += 1
            decode(elem, number)
    return decoded


def _trace_columns(values: np.ndarray, channels: Sequence[InkChannel], label: str) -> _Trace:
    names = [c.name for c in channels]
    out = np.full((len(values), 4), np.nan)
    out[:, 0] = values[:, names.index("X")]
    out[:, 1] = values[:, names.index("Y")]
    has_time = "T" in names
    if has_time:
        t_channel = channels[names.index("T")]
        scale = _TIME_UNITS.get(t_channel.units.strip().lower() or "s")
        if scale is None:
            raise InkFormatError(f"{label}: unknown time units {t_channel.units!r} (use s, ms or us)")
        out[:, 2] = values[:, names.index("T")] * scale
    has_pressure = "F" in names
    if has_pressure:
        out[:, 3] = values[:, names.index("F")]
        has_pressure = bool(np.all(np.isfinite(out[:, 3])))
    if not np.all(np.isfinite(out[:, :2])) or (has_time and not np.all(np.isfinite(out[:, 2]))):
        raise InkFormatError(f"{label}: an X, Y or T value is unknown ('?') or not finite")
    return _Trace(out, has_time, has_pressure)


def _units_per_mm(doc: _InkmlDocument, notes: dict[str, str], default: Optional[float] = None) -> float:
    if "units_per_mm" in notes:
        try:
            return float(notes["units_per_mm"])
        except ValueError:
            raise InkFormatError(f"{doc.path}: units_per_mm annotation {notes['units_per_mm']!r} is not a number") from None
    if default is not None:
        return default
    for ch in doc.root.iter("channel"):
        if ch.get("name") == "X":
            return _UNITS_PER_MM.get((ch.get("units") or "").strip().lower(), math.nan)
    return math.nan


def _build_ink(doc: _InkmlDocument, parts: list[_Trace], where: str, *, text: Optional[str], id: str,
               writer: str, units: float) -> Ink:
    if not parts:
        raise InkFormatError(f"{doc.path}: {where} has no pen-down traces (empty ink)")
    has_time = all(p.has_time for p in parts)
    if any(p.has_time for p in parts) and not has_time:
        raise InkFormatError(f"{doc.path}: {where} mixes traces with and without a T channel")
    has_pressure = all(p.has_pressure for p in parts)
    columns = 4 if has_pressure else 3
    strokes = [p.xytf[:, :columns].copy() for p in parts]
    if has_time:
        t0 = strokes[0][0, 2]
        for s in strokes:
            s[:, 2] -= t0
    else:
        start = 0
        for k, s in enumerate(strokes):
            s[:, 2] = (np.arange(start, start + len(s)) + k) * SYNTHETIC_POINT_INTERVAL_S
            start += len(s)
    return Ink(strokes=strokes, text=text, id=id, writer=writer, units_per_mm=units,
               meta={"source": str(doc.path), "synthetic_time": not has_time})


# ----------------------------------------------------------------------------------------------
# Writing


def _fmt(value: float, decimals: int) -> str:
    s = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _trace_text(stroke: np.ndarray, with_pressure: bool) -> str:
    stroke = np.asarray(stroke, dtype=np.float64)
    points = []
    for row in stroke:
        values = [_fmt(row[0], 3), _fmt(row[1], 3), _fmt(row[2], 6)]
        if with_pressure:
            values.append(_fmt(row[3], 3))
        points.append(" ".join(values))
    return ", ".join(points)


def _add_annotations(parent: ET.Element, ink: Ink) -> None:
    if ink.text is not None:
        ET.SubElement(parent, "annotation", type="truth").text = ink.text
    if ink.id:
        ET.SubElement(parent, "annotation", type="id").text = ink.id
    if ink.writer:
        ET.SubElement(parent, "annotation", type="writer").text = ink.writer
    if not math.isnan(ink.units_per_mm):
        ET.SubElement(parent, "annotation", type="units_per_mm").text = repr(float(ink.units_per_mm))


def _add_traces(parent: ET.Element, ink: Ink) -> None:
    pressure = ink.has_pressure
    for stroke in ink.strokes:
        if len(stroke) == 0:
            continue
        trace = ET.SubElement(parent, "trace", contextRef="#ctx_xytf" if pressure else "#ctx_xyt")
        trace.text = _trace_text(stroke, pressure)


def write_inkml(path: PathLike, inks_or_ink: Union[Ink, Sequence[Ink]]) -> None:
    """Write one Ink (as the document) or several (one ``<traceGroup>`` each) to an InkML file.

    :func:`read_inkml` gives back the same points (to the precision in the module docstring),
    texts, ids, writers and ``units_per_mm``; ``t`` comes back shifted to start at 0.
    """
    inks = [inks_or_ink] if isinstance(inks_or_ink, Ink) else list(inks_or_ink)
    if not inks:
        raise ValueError("write_inkml needs at least one Ink")
    for ink in inks:
        if ink.num_points == 0:
            raise ValueError(f"Ink {ink.id!r} has no points; InkML cannot hold empty ink")
    root = ET.Element("ink", xmlns=INKML_NAMESPACE)
    definitions = ET.SubElement(root, "definitions")
    for ctx_id, with_pressure in (("ctx_xyt", False), ("ctx_xytf", True)):
        if any(ink.has_pressure == with_pressure for ink in inks):
            ctx = ET.SubElement(definitions, "context", {_XML_ID: ctx_id})
            fmt = ET.SubElement(ctx, "traceFormat")
            ET.SubElement(fmt, "channel", name="X", type="decimal")
            ET.SubElement(fmt, "channel", name="Y", type="decimal")
            ET.SubElement(fmt, "channel", name="T", type="decimal", units="s")
            if with_pressure:
                ET.SubElement(fmt, "channel", name="F", type="decimal")
    if len(inks) == 1:
        _add_annotations(root, inks[0])
        _add_traces(root, inks[0])
    else:
        for ink in inks:
            group = ET.SubElement(root, "traceGroup")
            _add_annotations(group, ink)
            _add_traces(group, ink)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
