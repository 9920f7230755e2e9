"""CER and WER of a recognizer, measured through the streaming runtime (``inkstream eval``).

Every sample goes through the same path as on the device: an :class:`InkStream` is fed pen
samples in bursts of ``--burst`` (default 2, what a serial reader at 200 Hz hands over every
10 ms), and the recognizer decodes after every burst; at the end ``input_finished`` and a last
decode. ``--burst 0`` feeds each sample whole (the offline path; the final text is the same).

Where a line ends: a sample whose file says it is one written line (kind ``line``, ``word`` or
``char``) is read as one line; a sample that may wrap over several written lines (kind ``text``:
UNIPEN text, ImadocSen sentences) or whose file does not say (InkML) is cut by the device's
endpoint rules (:class:`runtime.recognizer.EndpointConfig`), as a live pen's would be: when a line
ends the stream is reset and the lines are joined by a space (``endpoints="auto"``, the default).
A model reads a sentence written over three lines as one line badly: on the ImadocSen validation
writers, whose sentences wrap, the word decoder's WER is 29.7 % read whole and 6.3 % cut into
lines. ``endpoints=True`` applies the rules to every sample, ``False`` to none.

CER is character edit distance / reference characters; WER the same over space-separated words
(both fractions). Throughput is pen samples per second of processing (features, model, decoder)
and the real-time factor is processing time / ink duration.
"""
from __future__ import annotations

import itertools
import time
from typing import Optional

import numpy as np

from runtime.metrics import ErrorCounter, split_punctuation
from runtime.recognizer import OFFLINE, EndpointConfig, StreamingRecognizer

ONE_LINE_KINDS = frozenset({"line", "word", "char"})  # sample kinds that are one written line by definition
# time stamps are seconds: a pen samples at 50-200 Hz, so a median step between samples this long
# means another unit (milliseconds), which would make every pen lift look like a long pause
SUSPECT_TIME_STEP_S = 0.25


def time_step_suspect(points: np.ndarray) -> bool:
    """Whether the median step between ``points``' time stamps (column 2) is too long for seconds."""
    steps = np.diff(points[:, 2])
    steps = steps[steps > 0]
    return bool(len(steps)) and float(np.median(steps)) > SUSPECT_TIME_STEP_S


def stream_lines(rec: StreamingRecognizer, points: np.ndarray, burst: int = 2,
                 endpoint: Optional[EndpointConfig] = None) -> list[tuple[str, int]]:
    """``(text, pen samples)`` of every line the endpoint rules (``endpoint``, default the
    recognizer's) cut from ``points``, fed in bursts of ``burst`` pen samples with a decode after
    each (0 = the whole sample at once): :meth:`StreamingRecognizer.recognize_lines`."""
    return [(res.text, res.num_samples) for res in rec.recognize_lines(points, endpoint, burst)]


def sample_endpoint(kind: Optional[str], endpoints, rules: EndpointConfig) -> EndpointConfig:
    """The endpoint rules to read a sample of ``kind`` with: ``rules`` or :data:`OFFLINE` (one
    line), as ``endpoints`` says: True, False, or ``"auto"`` (``rules`` unless ``kind`` is one
    written line by definition, :data:`ONE_LINE_KINDS`)."""
    if endpoints == "auto":
        return OFFLINE if kind is not None and kind.strip().lower() in ONE_LINE_KINDS else rules
    if isinstance(endpoints, bool):
        return rules if endpoints else OFFLINE
    raise ValueError(f"endpoints must be True, False or 'auto', got {endpoints!r}")


def evaluate(rec: StreamingRecognizer, datasets, burst: int = 2, limit: Optional[int] = None, forms=None,
             split: Optional[str] = None, writers=None, on_sample=None, endpoints="auto",
             rules: Optional[EndpointConfig] = None) -> dict:
    """Run every sample of ``datasets`` (paths) through ``rec``; returns the figures as a dict.

    ``endpoints`` (``"auto"``, True, False) says which samples are cut into lines by ``rules``
    (default :class:`EndpointConfig`'s, the device's): see the module docstring. Every data set is
    opened and its filters checked before the first sample is evaluated, so a bad one fails at
    once, not after the others have run."""
    rules = EndpointConfig() if rules is None else rules
    sample_endpoint(None, endpoints, rules)  # a bad value fails before any work
    from runtime.formats.ink_io import iter_corpus_samples  # the readers load only when evaluating

    sources = [iter_corpus_samples(path, forms=forms, split=split, writers=writers) for path in datasets]
    counter, apart = ErrorCounter(), ErrorCounter(split_punctuation)
    pen_samples = 0
    ink_seconds = 0.0
    busy = 0.0
    with_rules = several_lines = time_suspects = 0
    for samples in sources:
        for n, (points, text, sample_id, kind) in enumerate(samples):
            if limit is not None and n >= limit:
                break
            points = np.ascontiguousarray(points, dtype=np.float64)
            endpoint = sample_endpoint(kind, endpoints, rules)
            t0 = time.perf_counter()
            lines = stream_lines(rec, points, burst, endpoint)
            hyp = " ".join(line for line, _ in lines if line)
            busy += time.perf_counter() - t0
            with_rules += endpoint is not OFFLINE
            time_suspects += endpoint is not OFFLINE and time_step_suspect(points)
            several_lines += len(lines) > 1
            counter.add(text, hyp)
            apart.add(text, hyp)
            pen_samples += len(points)
            ink_seconds += float(points[-1, 2] - points[0, 2]) if len(points) else 0.0
            if on_sample is not None:
                on_sample(sample_id, text, hyp)
    return {
        "cer": counter.cer, "wer": counter.wer, "samples": counter.samples, "chars": counter.chars,
        "words": counter.words, "char_errors": counter.char_errors, "word_errors": counter.word_errors,
        # punctuation set apart on both sides (runtime.metrics.split_punctuation)
        "cer_apart": apart.cer, "wer_apart": apart.wer, "words_apart": apart.words,
        # samples read with the endpoint rules, and how many of them they cut into several lines
        "endpoints": endpoints, "samples_with_rules": with_rules, "samples_cut": several_lines,
        # of those, samples whose time stamps do not look like seconds (time_step_suspect)
        "samples_time_suspect": time_suspects,
        "pen_samples": pen_samples, "seconds": busy,
        "samples_per_s": pen_samples / busy if busy > 0 else None,
        "rtf": busy / ink_seconds if ink_seconds > 0 else None,
    }


def evaluate_paragraphs(rec: StreamingRecognizer, path, line_gap_s: float = 2.0, burst: int = 2,
                        limit: Optional[int] = None) -> dict:
    """How the recognizer's endpoint rules cut real paragraphs into lines.

    ``path`` is a corpus whose samples are the lines of forms (``writers`` holds the form id, the
    lines come in writing order and share the form's coordinates, as in IAM-OnDB's npz files).
    Each form's lines are written one after the other, ``line_gap_s`` seconds apart (the corpus
    keeps the pauses inside a line, not between lines), fed in bursts of ``burst`` with the
    recognizer's endpoint rules, and every line end is compared with the true boundaries: a cut
    at a true boundary is exact, any other cut is extra; a line is cut exactly when both its ends
    are cuts and no cut falls inside it. Returns the counts and shares, and the CER of the lines
    the rules cut against the true lines (a missed or extra cut costs characters).
    """
    from runtime.ink import load_corpus

    corpus = load_corpus(path)
    forms: dict = {}
    for i in range(len(corpus)):
        forms.setdefault(str(corpus.writers[i]), []).append(i)
    counter = ErrorCounter(canonical=False)  # lines joined by "\n" on both sides: a wrong cut costs
    boundaries = exact = extra = forms_right = evaluated = lines_total = lines_exact = 0
    for form, lines in forms.items():
        if limit is not None and evaluated >= limit:
            break
        evaluated += 1
        parts, truth_ends, t0 = [], [], 0.0
        for i in lines:
            p = np.array(corpus.points(i), dtype=np.float64)
            p[:, 2] += t0 - p[0, 2]
            t0 = float(p[-1, 2]) + line_gap_s
            parts.append(p)
            truth_ends.append((truth_ends[-1] if truth_ends else 0) + len(p))
        points = np.concatenate(parts)
        lines_read = stream_lines(rec, points, burst)
        texts = [text for text, _ in lines_read]
        cuts = list(itertools.accumulate(n for _, n in lines_read))
        inner_truth, inner_cuts = set(truth_ends[:-1]), {c for c in cuts if c < len(points)}
        boundaries += len(inner_truth)
        exact += len(inner_truth & inner_cuts)
        extra += len(inner_cuts - inner_truth)
        forms_right += inner_truth == inner_cuts
        every_cut = inner_cuts | {0, len(points)}
        for start, end in zip([0] + truth_ends[:-1], truth_ends):  # a line is exact: cut at both ends, not inside
            lines_total += 1
            lines_exact += start in every_cut and end in every_cut and not any(start < c < end for c in every_cut)
        counter.add("\n".join(str(corpus.texts[i]) for i in lines), "\n".join(texts))
    return {"forms": evaluated, "lines": lines_total, "lines_exact": lines_exact,
            "lines_exact_share": lines_exact / lines_total if lines_total else None,
            "boundaries": boundaries, "boundaries_found": exact, "extra_cuts": extra, "forms_right": forms_right,
            "cer": counter.cer, "line_gap_s": line_gap_s}
