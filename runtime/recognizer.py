"""The streaming recognizer: one model, many streams.

Shaped after the streaming speech recognizers people already use (sherpa-onnx): the
:class:`StreamingRecognizer` holds the ONNX session, the alphabet and the decoder and *no
per-input state*; an :class:`InkStream` holds everything per input (feature extractor, frames
waiting for the model, LSTM h and c, decoder state, sample and frame counts). Batching many
streams is stacking their states on the batch axis.

Typical use::

    rec = StreamingRecognizer()                 # the shipped model and the word decoder with its LMs
    s = rec.create_stream()
    s.accept_samples(points)                    # (n, 4) x, y, t, pen_up_after; any chunking
    while rec.is_ready(s):
        rec.decode_stream(s)
    print(rec.get_result(s).text)
    if rec.is_endpoint(s):                      # pen-up pause, end of line, or input finished
        line = rec.end_line(s)                  # final (second pass); the next line starts

Cost per pen sample is constant: features are incremental, the LSTM state is carried, and all
frames that have arrived run in one onnxruntime call (one call per frame for a model that
quantizes per call, such as the int8 default: see ``OnnxModel.step``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from runtime.decoders import CtcGreedyDecoder
from runtime.features import NUM_FEATURES, FeatureExtractor
from runtime.model import OnnxModel

# The word decoder (prefix beam search with the character LM inside words and the word LM at
# word ends): on every validation set fewer character and word errors than the character beam
# (docs/model_card.md), within the real-time budget.
DEFAULT_DECODER = "word"
DECODERS = ("greedy", "beam", "word")  # what make_decoder builds


@dataclass(frozen=True)
class EndpointConfig:
    """When a line is over.

    * ``line_break``: a new stroke starts more than ``newline_dx`` ink scales to the left of where
      the line has reached and ``newline_dy`` scales lower (the writer went to the next line);
    * ``pause_s``: after the pen has been up this long, the next stroke must continue the line (start
      at most ``back_dx`` scales left of where the line has reached, and within ``continue_dy``
      scales of its running mean y) or it starts a new line. A pause alone ends nothing: people
      stop to think mid-line (in 82 % of IAM-OnDB's validation lines the longest pen-up pause is
      over 1.5 s, in 11 % over 5 s);
    * ``long_pause_s``: the pen has been up this long after text was recognised: the writer has
      stopped, the line ends without waiting for the next stroke (0.7 % of those lines hold a
      pause over 30 s);
    * ``max_line_samples``: the line holds this many pen samples (a pen that is never lifted, a
      stuck device): the samples after them start the next line, so what a stream and a viewer
      hold stays bounded. 20,000 is 100 s at 200 Hz; the longest line or sentence of IAM-OnDB and
      ImadocSen-OnDB has 11,653.
    """

    pause_s: float = 1.5
    long_pause_s: float = 30.0
    line_break: bool = True
    newline_dx: float = 6.0
    newline_dy: float = 1.5
    back_dx: float = 6.0
    continue_dy: float = 6.0
    max_line_samples: float = 20_000

    def __post_init__(self):
        if self.pause_s <= 0:
            raise ValueError(f"EndpointConfig.pause_s must be > 0, got {self.pause_s}")
        if self.long_pause_s <= 0:
            raise ValueError(f"EndpointConfig.long_pause_s must be > 0, got {self.long_pause_s}")
        if not self.max_line_samples >= 1:
            raise ValueError(f"EndpointConfig.max_line_samples must be >= 1, got {self.max_line_samples}")


def sample_rows(points, caller: str) -> np.ndarray:
    """``points`` as ``(n, 4)`` float64 rows ``x, y, t, pen_up_after`` (one sample may come as a
    1-D row); ValueError naming ``caller`` for any other shape."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1:
        pts = pts[None, :]
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ValueError(f"{caller} expects (n, 4) x, y, t, pen_up_after; got shape {pts.shape}")
    return pts


def long_pause_starts(points: np.ndarray, pause: float) -> np.ndarray:
    """Indices of the samples of ``(n, 4)`` ``points`` that follow a pen-up pause of at least
    ``pause`` seconds. Such a pause ends a line only when the next sample comes, so a chunk of
    samples that holds one is fed in parts cut there (the live loop, :meth:`StreamingRecognizer.recognize_lines`)."""
    return np.flatnonzero((points[:-1, 3] > 0.5) & (np.diff(points[:, 2]) >= pause)) + 1


# never ends a line: whole lines (recognize(), eval, bench), and the reader decides where lines end
OFFLINE = EndpointConfig(pause_s=math.inf, long_pause_s=math.inf, line_break=False, max_line_samples=math.inf)


@dataclass(frozen=True)
class CharAlignment:
    """One recognised character and the ink it came from (from the CTC alignment)."""

    char: str
    frame: int  # global frame index (since the last reset) at which it was emitted
    sample_start: int  # first pen sample (index since the last reset) attributed to it
    sample_end: int  # one past the last
    strokes: tuple  # indices of the strokes (since the last reset) it touches


@dataclass(frozen=True)
class RecognitionResult:
    text: str
    is_final: bool
    chars: tuple = ()
    num_samples: int = 0
    num_frames: int = 0


class InkStream:
    """All per-input state of one pen stream. Create with :meth:`StreamingRecognizer.create_stream`.

    ``endpoint`` is this stream's own :class:`EndpointConfig` (the recognizer's unless overridden),
    so streams never share mutable settings.
    """

    def __init__(self, recognizer: "StreamingRecognizer", endpoint: Optional[EndpointConfig] = None,
                 user_words=None):
        self._rec = recognizer
        self.endpoint = recognizer.endpoint if endpoint is None else endpoint
        self.user_words = user_words  # this stream's own (kept across reset); the word decoder reads them
        self._clear()

    def _clear(self) -> None:
        """Forget the current line (everything but the recognizer and the endpoint config)."""
        rec = self._rec
        self.features = FeatureExtractor(rec.model.feature_config)
        self.h, self.c = rec.model.zero_state(1)
        self.decoder_state = (rec.decoder.new_state() if self.user_words is None
                              else rec.decoder.new_state(user_words=self.user_words))
        self.pending = np.zeros((0, NUM_FEATURES), np.float32)
        self.frame_samples: list = []  # per frame: index of the sample that completed it
        self.alignment: tuple = ()  # CharAlignment of the last result (reused by the next one)
        self.aligned_for: Optional[tuple] = None  # (text, emissions) that alignment is for
        self.stroke_of_sample: list = []  # per sample: stroke index
        self.samples = 0
        self.frames_decoded = 0
        self.finished = False
        self.last_t = None
        self.pen_up_since: Optional[float] = None
        self.held_back: Optional[np.ndarray] = None  # samples of the next line, replayed after reset
        self._stroke = 0
        self._stroke_open = False
        self._max_x = -np.inf

    def accept_samples(self, points) -> None:
        """Feed pen samples ``(n, 4)`` ``x, y, t, pen_up_after`` (one row or many, any chunking).

        Raises RuntimeError after :meth:`input_finished`; ValueError on malformed samples (the
        stream is unchanged then). When a stroke starts a new line (see :class:`EndpointConfig`),
        it and every later sample are held back until :meth:`StreamingRecognizer.reset`.
        """
        if self.finished:
            raise RuntimeError("InkStream.accept_samples called after input_finished(); reset() the stream first")
        pts = sample_rows(points, "accept_samples")
        if len(pts) == 0:
            return
        rows = pts.tolist()
        # one finiteness check per chunk; for the usual one or two samples plain Python is cheaper
        finite = all(map(math.isfinite, rows[0] + rows[-1])) and (
            len(rows) <= 2 or bool(np.isfinite(pts).all()))
        if not finite:  # checked before anything is kept, held-back rows included
            row = int(np.flatnonzero(~np.isfinite(pts).all(axis=1))[0])
            held = 0 if self.held_back is None else len(self.held_back)
            raise ValueError(f"accept_samples: sample {self.samples + held + row} has a non-finite value "
                             f"{pts[row].tolist()}")
        if self.held_back is not None:  # a line break is waiting for reset(): keep the samples for the next line
            self.held_back = np.concatenate([self.held_back, pts])
            return
        room = self.endpoint.max_line_samples - self.samples
        if len(pts) > room:  # the line is full: the rest is the next line's
            self.accept_samples(pts[:int(room)])
            rest = pts[int(room):]
            self.held_back = rest.copy() if self.held_back is None else np.concatenate([self.held_back, rest])
            return
        if not self.endpoint.line_break and not math.isfinite(self.endpoint.pause_s):
            self._accept(rows)
            return
        # the line rules are evaluated at every stroke start with the state as it is there, so
        # any chunking of the input gives the same lines
        a = 0
        for b in range(1, len(rows) + 1):
            if b < len(rows) and rows[b - 1][3] <= 0.5:
                continue  # b is not a stroke start (nor the end of the chunk)
            if (a > 0 or not self._stroke_open) and self._starts_new_line(*rows[a][:3]):
                self.held_back = pts[a:].copy()
                return
            self._accept(rows[a:b])
            a = b

    def _starts_new_line(self, x: float, y: float, t: float) -> bool:
        """Does a stroke starting at ``(x, y)`` at time ``t`` begin a new line: far left of where the
        line has reached and below its running mean of pen-down y (the feature statistics), or, after
        a pause, anywhere but on: to the right of the line (or just behind its end) near its mean y?"""
        scale, mean_y = self.features.scale(), self.features.mean_y()
        if not self.samples or scale <= 0 or mean_y is None:
            return False
        cfg = self.endpoint
        back = self._max_x - x
        if cfg.line_break and back > cfg.newline_dx * scale and y - mean_y > cfg.newline_dy * scale:
            return True
        paused = self.pen_up_since is not None and t - self.pen_up_since >= cfg.pause_s
        return paused and (back > cfg.back_dx * scale or abs(y - mean_y) > cfg.continue_dy * scale)

    def _accept(self, rows: list) -> None:
        """Feed validated rows (Python lists ``x, y, t, pen_up_after``); plain Python on purpose:
        this runs for every pen sample and numpy's per-call overhead would dominate."""
        frames, sources = self.features.accept_rows(rows, True, return_sources=True)
        stroke, max_x, of_sample = self._stroke, self._max_x, self.stroke_of_sample
        for x, _, _, up in rows:
            of_sample.append(stroke)
            if up > 0.5:
                stroke += 1
            if x > max_x:
                max_x = x
        self._stroke, self._max_x = stroke, max_x
        last = rows[-1]
        self._stroke_open = not last[3] > 0.5
        self.samples += len(rows)
        self.last_t = last[2]
        self.pen_up_since = self.last_t if last[3] > 0.5 else None
        self._push(frames, sources)

    def _push(self, frames, sources) -> None:
        if len(frames):
            self.pending = frames if len(self.pending) == 0 else np.concatenate([self.pending, frames])
            self.frame_samples.extend(sources.tolist())

    def input_finished(self) -> None:
        """No more samples: flush the feature pipeline; the result becomes final once decoded."""
        if not self.finished:
            frames, sources = self.features.flush(return_sources=True)
            self._push(frames, sources)
            self.finished = True


class StreamingRecognizer:
    """Holds the model and decoder, serves any number of :class:`InkStream` objects.

    ``decoder`` is ``"word"`` (the default: CTC prefix beam search with the shipped character LM
    inside words, the word LM at word ends and user words; ``decoder_options`` go to
    :class:`runtime.word_beam.CtcWordBeamDecoder`), ``"beam"`` (the character LM alone:
    :class:`runtime.beam.CtcPrefixBeamDecoder`) or ``"greedy"`` (best path: the least CPU, no LM).
    """

    def __init__(self, model_path: Optional[str | os.PathLike] = None, decoder: str = DEFAULT_DECODER,
                 endpoint: EndpointConfig = EndpointConfig(), threads: int = 1, spinning: bool = False,
                 decoder_options: Optional[dict] = None):
        self.model = OnnxModel(model_path, threads=threads, spinning=spinning)
        self.alphabet = self.model.alphabet
        self.endpoint = endpoint
        self.decoder = make_decoder(decoder, self.alphabet, **(decoder_options or {}))
        self.decoder_name = decoder

    # ---- streams --------------------------------------------------------------------------
    def create_stream(self, endpoint: Optional[EndpointConfig] = None, user_words=None) -> InkStream:
        """A new stream with its own copy of the endpoint rules (``endpoint`` overrides the recognizer's)
        and, with the word decoder, its own user words (names, terms: a file, phrases, or
        ``(phrase, boost)`` pairs) added to the recognizer's."""
        if user_words is not None and self.decoder_name != "word":
            raise ValueError(f"user words need the word decoder (this recognizer decodes with {self.decoder_name!r})")
        return InkStream(self, endpoint, user_words)

    def is_ready(self, stream: InkStream) -> bool:
        """True when the stream has frames the model has not run yet."""
        return len(stream.pending) > 0

    def decode_stream(self, stream: InkStream) -> None:
        """Run every waiting frame of ``stream`` through the model in one call and decode it."""
        if not len(stream.pending):
            return
        x = stream.pending[None]
        log_probs, stream.h, stream.c = self.model.step(x, stream.h, stream.c)
        stream.pending = stream.pending[:0]
        stream.frames_decoded += x.shape[1]
        self.decoder.accept(stream.decoder_state, log_probs[0])

    def decode_streams(self, streams: Sequence[InkStream]) -> None:
        """Decode many streams with batched onnxruntime calls (states stacked on the batch axis).

        Streams with different numbers of waiting frames are advanced together by the common
        count, then the rest continue, so padding never enters an LSTM state.
        """
        ready = [s for s in streams if len(s.pending)]
        while ready:
            n = min(len(s.pending) for s in ready)
            x = np.stack([s.pending[:n] for s in ready])
            h = np.concatenate([s.h for s in ready], axis=1)
            c = np.concatenate([s.c for s in ready], axis=1)
            log_probs, h, c = self.model.step(x, h, c)
            for k, s in enumerate(ready):
                s.h, s.c = h[:, k:k + 1], c[:, k:k + 1]
                s.pending = s.pending[n:]
                s.frames_decoded += n
                self.decoder.accept(s.decoder_state, log_probs[k])
            ready = [s for s in ready if len(s.pending)]

    # ---- results --------------------------------------------------------------------------
    def get_result(self, stream: InkStream) -> RecognitionResult:
        final = stream.finished and not len(stream.pending)
        # a line that has ended gets the decoder's second pass (the line LM), once
        text, emissions = (self.decoder.final_result if final else self.decoder.result)(stream.decoder_state)
        return RecognitionResult(text, final, self._align(stream, text, emissions), stream.samples,
                                 stream.frames_decoded)

    def _align(self, stream: InkStream, text: str, emissions: list) -> tuple:
        """Map each emitted character to the samples between the previous emission and its own.

        Incremental: the characters whose (char, frame) pair is unchanged since the last call keep
        their alignment (the frames behind them are final), so asking for the result after every
        burst costs the new characters only, not the whole line again.
        """
        if stream.aligned_for == (text, emissions):  # nothing new since the last result
            return stream.alignment
        keep = 0
        for a, ch, f in zip(stream.alignment, text, emissions):
            if a.char != ch or a.frame != f:
                break
            keep += 1
        out = list(stream.alignment[:keep])
        fs = stream.frame_samples
        prev_sample = out[-1].sample_end if out else 0
        for ch, f in zip(text[keep:], emissions[keep:]):
            end = fs[min(f, len(fs) - 1)] + 1 if fs else 0
            start = min(prev_sample, end)
            strokes = tuple(sorted(set(stream.stroke_of_sample[start:end]))) if end > start else ()
            out.append(CharAlignment(ch, int(f), int(start), int(end), strokes))
            prev_sample = end
        stream.aligned_for, stream.alignment = (text, emissions), tuple(out)
        return stream.alignment

    def is_endpoint(self, stream: InkStream, now: Optional[float] = None) -> bool:
        """True when the current line is over: input finished, a line break, or a long pen-up pause.

        ``now`` is the current time on the samples' clock (defaults to the last sample's time);
        a live source passes it so a pause is noticed while no samples arrive.
        """
        if stream.finished or stream.held_back is not None:
            return True
        if stream.pen_up_since is None or not stream.samples:
            return False
        now = stream.last_t if now is None else now
        text, _ = self.decoder.result(stream.decoder_state)
        return bool(text) and now - stream.pen_up_since >= stream.endpoint.long_pause_s

    def reset(self, stream: InkStream, keep_held_back: bool = True) -> None:
        """Start a new line on ``stream``: bounded state for long sessions. Held-back samples of the
        next line (after a detected line break) are fed again, unless ``keep_held_back`` is False
        (the caller discards everything written so far)."""
        held = stream.held_back if keep_held_back else None
        stream._clear()
        if held is not None and len(held):
            stream.accept_samples(held)  # validated when they arrived: cannot raise

    def end_line(self, stream: InkStream) -> RecognitionResult:
        """End ``stream``'s current line: flush its last frames, decode them, take its final
        result (with the decoder's second pass) and start the next line, as :meth:`reset` does.
        What to call when :meth:`is_endpoint` says the line is over."""
        stream.input_finished()
        self.decode_stream(stream)
        result = self.get_result(stream)
        self.reset(stream)
        return result

    # ---- offline convenience ------------------------------------------------------------------
    def recognize(self, points) -> RecognitionResult:
        """Whole sample at once, as one line (same code path as streaming; endpoints are not
        applied). For ink that may hold several written lines (a note, a selection on a page) use
        :meth:`recognize_lines`: the model reads one line at a time."""
        s = self.create_stream(OFFLINE)
        s.accept_samples(points)
        s.input_finished()
        self.decode_stream(s)
        return self.get_result(s)

    def recognize_lines(self, points, endpoint: Optional[EndpointConfig] = None,
                        burst: int = 0) -> list[RecognitionResult]:
        """Ink of any number of written lines: cut into lines by the endpoint rules (``endpoint``,
        default the recognizer's) as the live loop cuts a pen's (a new line started, a long pen-up
        pause on the samples' clock, a full line), each line recognised on a fresh stream state.
        One final result per line that holds samples, in order; their ``num_samples`` add up to
        ``len(points)``, and each alignment's sample and stroke indices count from the start of
        ``points`` (a character's ``frame`` stays its line's). ``burst`` feeds the samples that
        many at a time with a decode after each, as a serial reader would (0 = all at once); the
        lines do not depend on it. ValueError (naming the sample) on malformed input."""
        points = sample_rows(points, "recognize_lines")
        bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
        if len(bad):
            raise ValueError(f"recognize_lines: sample {int(bad[0])} has a non-finite value {points[bad[0]].tolist()}")
        stream = self.create_stream(endpoint)
        results: list[RecognitionResult] = []
        first = 0  # the current line's first sample in `points`
        strokes_before = np.concatenate(([0], np.cumsum(points[:, 3] > 0.5)))  # strokes ended before sample k

        def end_line():
            nonlocal first
            # flushed, the final result taken, and the samples held back for the next line fed again
            res = self.end_line(stream)
            if first:
                strokes = int(strokes_before[first])
                chars = tuple(CharAlignment(c.char, c.frame, c.sample_start + first, c.sample_end + first,
                                            tuple(k + strokes for k in c.strokes)) for c in res.chars)
                res = RecognitionResult(res.text, res.is_final, chars, res.num_samples, res.num_frames)
            results.append(res)
            first += res.num_samples
            self.decode_stream(stream)

        t = points[:, 2]
        pauses = set(long_pause_starts(points, stream.endpoint.long_pause_s).tolist())
        step = len(points) if burst <= 0 else burst
        for start in range(0, len(points), max(step, 1)):
            stop = min(start + step, len(points))
            cuts = [start] + sorted(k for k in pauses if start < k < stop) + [stop]
            for a, b in zip(cuts, cuts[1:]):
                if self.is_endpoint(stream, now=float(t[a])):
                    end_line()
                stream.accept_samples(points[a:b])
                self.decode_stream(stream)
                while self.is_endpoint(stream):  # a chunk may hold several line breaks
                    end_line()
        stream.input_finished()
        self.decode_stream(stream)
        if stream.samples:
            end_line()
        return results


def make_decoder(name: str, alphabet, **options):
    """``greedy``, ``beam`` (prefix beam search with a character language model) or ``word`` (the
    same with a word n-gram LM, open vocabulary and user words: :mod:`runtime.word_beam`)."""
    if name == "greedy":
        if set(options) - {"never_empty"}:
            raise ValueError(f"the greedy decoder takes only never_empty, got {sorted(options)}")
        return CtcGreedyDecoder(alphabet, **options)
    if name == "beam":
        from runtime.beam import CtcPrefixBeamDecoder

        return CtcPrefixBeamDecoder(alphabet, **options)
    if name == "word":
        from runtime.word_beam import CtcWordBeamDecoder

        return CtcWordBeamDecoder(alphabet, **options)
    raise ValueError(f"decoder must be 'greedy', 'beam' or 'word', got {name!r}")
