"""Reading ink from files: one entry point for every format inkstream understands.

:func:`read_ink_file` turns a path into Inks by its kind:

==============================  ===============================================================
``*.npz``                       a corpus file (``../shared/data/README.md``), via
                                :func:`runtime.ink.load_corpus`; one Ink per sample
``*.inkml``                     W3C InkML, via :func:`runtime.formats.inkml.read_inkml` (default level)
``*.xml``                       one IAM-OnDB ``lineStrokes`` file; its text comes from the
                                form's ascii file when one is found by walking up to the
                                IAM-OnDB root, else it is None
a folder with ``lineStrokes/``  an IAM-OnDB root, via :func:`runtime.formats.iamondb.read_iamondb`
and ``ascii/``
==============================  ===============================================================

:func:`iter_corpus_samples` is the flat, fast view evaluation needs: :class:`CorpusSample`
``(points, text, id, kind)``.
The format modules are re-exported here so callers need one import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional, Union

import numpy as np

from runtime.formats.iamondb import (IamOnDbWarning, find_ascii_for_line, is_iamondb_root, read_csr_lines,
                             read_form_list, read_iamondb, read_iamondb_line)
from runtime.ink import Ink, InkFormatError, load_corpus
from runtime.formats.inkml import read_inkml, write_inkml

__all__ = [
    "read_ink_file",
    "iter_corpus_samples",
    "CorpusSample",
    "read_iamondb",
    "read_iamondb_line",
    "read_inkml",
    "write_inkml",
    "read_form_list",
    "IamOnDbWarning",
    "InkFormatError",
]

PathLike = Union[str, os.PathLike]
FormsArg = Union[None, PathLike, Iterable[str]]


def _text_of_line(xml_path: Path) -> Optional[str]:
    """The CSR line of an IAM-OnDB line file, or None when its ascii file or line is missing."""
    ascii_path = find_ascii_for_line(xml_path)
    if ascii_path is None:
        return None
    csr = read_csr_lines(ascii_path)
    try:
        number = int(xml_path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None
    return csr[number - 1] if 1 <= number <= len(csr) else None


# The largest XML ink file (InkML, IAM-OnDB) read: parsing holds the file's text and tree, then
# 16-32 bytes per value, so memory stays within a few times this whatever the file (a 58 MB
# InkML trace of 4.6 M points peaks at about 0.4 GB).
MAX_INK_FILE_BYTES = 128 * 2**20


def read_ink_file(path: PathLike, forms: FormsArg = None) -> list[Ink]:
    """Read any supported ink file or IAM-OnDB root (see the module docstring).

    ``forms`` (a split list file or ids) only applies to an IAM-OnDB root. Raises
    :class:`InkFormatError` for malformed content and for paths of no known kind,
    FileNotFoundError when the path does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(p)
    if p.is_dir():
        if is_iamondb_root(p):
            return read_iamondb(p, forms=forms)
        raise InkFormatError(f"{p}: a folder that is not an IAM-OnDB root (needs lineStrokes/ and ascii/)")
    suffix = p.suffix.lower()
    if suffix in (".inkml", ".xml") and p.stat().st_size > MAX_INK_FILE_BYTES:
        raise InkFormatError(f"{p}: {p.stat().st_size / 2**20:.0f} MB is over the {MAX_INK_FILE_BYTES // 2**20} MB "
                             f"an ink file may have (reading one holds a few times its size in memory)")
    if suffix == ".npz":
        return list(load_corpus(p))
    if suffix == ".inkml":
        return read_inkml(p)
    if suffix == ".xml":
        return [read_iamondb_line(p, text=_text_of_line(p))]
    raise InkFormatError(f"{p}: unknown ink file type {p.suffix!r} (expected .npz, .inkml, .xml or an IAM-OnDB folder)")


class CorpusSample(NamedTuple):
    """One sample to score: its pen samples, transcription, id and what it holds (``kind``)."""

    points: np.ndarray  # (N, 4) float32: x, y, t, pen_up_after
    text: Optional[str]
    id: str
    # "line", "word" or "char" (one written line by definition), "text" (a sentence or phrase that
    # may wrap over several written lines), or None where the file does not say (InkML)
    kind: Optional[str]


def iter_corpus_samples(path: PathLike, forms: FormsArg = None, split: Optional[str] = None,
                        writers: Optional[Iterable[str]] = None) -> Iterator[CorpusSample]:
    """Yield a :class:`CorpusSample` for every sample of a corpus ``.npz`` or an IAM-OnDB root.

    ``points`` is an ``(N, 4)`` float32 array ``x, y, t, pen_up_after`` (for an npz a view
    into the corpus's array: copy before changing it). ``forms`` filters an IAM-OnDB root by
    form id (a split list file or ids). ``split`` keeps the samples of one split of an npz that
    carries a ``split`` array (UNIPEN); a file without one is a split itself (``iamondb/val.npz``)
    and is read whole. ``writers`` keeps the samples of these writers (a name the file does not
    have is an error, so a typo cannot silently evaluate nothing). Any other path is read with
    :func:`read_ink_file`.

    The file is opened and the filters are checked when this is called, not at the first
    ``next()``: a caller can open every data set first and fail before evaluating any.
    """
    p = Path(path)
    wanted = None if writers is None else set(writers)
    if p.is_file() and p.suffix.lower() == ".npz":
        if forms is not None:
            raise ValueError(f"{p}: forms (--forms) filter an IAM-OnDB root, not a corpus npz")
        corpus = load_corpus(p)
        if split is not None and corpus.field("split") is None:
            split = None
        idx = corpus.select(split)
        if wanted is not None:
            _check_writers(p, wanted, set(corpus.writers.tolist()))
            idx = [i for i in idx if str(corpus.writers[i]) in wanted]
        return (CorpusSample(corpus.points(int(i)), str(corpus.texts[i]), str(corpus.ids[i]), str(corpus.kind[i]))
                for i in idx)
    inks = read_ink_file(p, forms=forms)
    if wanted is not None:
        _check_writers(p, wanted, {ink.writer for ink in inks})
        inks = [ink for ink in inks if ink.writer in wanted]
    untranscribed = [ink.id or f"#{i}" for i, ink in enumerate(inks) if ink.text is None]
    if untranscribed:
        raise ValueError(f"{p}: {len(untranscribed)} of {len(inks)} inks have no transcription to score "
                         f"(the first: {untranscribed[0]}); `inkstream recognize --source file:{p}` reads them")
    return (CorpusSample(ink.to_points().astype(np.float32), ink.text, ink.id, ink.meta.get("kind")) for ink in inks)


def _check_writers(path: Path, wanted: set, present: set) -> None:
    unknown = sorted(wanted - present)
    if unknown:
        raise ValueError(f"{path}: no writer named {unknown[0]!r} (--writers); it has "
                         f"{', '.join(sorted(present)[:8])}{' ...' if len(present) > 8 else ''}")
