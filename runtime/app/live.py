"""Live recognition of one pen source: samples in, lines out.

:class:`LiveRecognition` is the loop both ``inkstream recognize`` (terminal) and the web UI's
session run, so their behaviour cannot drift. Each :meth:`~LiveRecognition.poll` reads what the
source delivered, turns pen samples into ``x, y, t, pen_up_after`` rows
(:class:`StrokeRowAssembler`), feeds one :class:`InkStream`, decodes, and ends the line at an
endpoint:

* a long pen-up pause (``EndpointConfig.long_pause_s``; a short one ends a line only when the
  next stroke does not continue it, see :class:`runtime.recognizer.EndpointConfig`), measured
  on the source's clock: the newest sample's ``t`` (hover samples
  count, they make no rows), plus the wall time since it arrived times ``clock_speed`` while
  nothing arrives;
* a line break (the writer went back left and down);
* the source's time going backwards (a reconnected device, a reloaded page start their clock over);
* a device restart (the source's ``session_breaks``: the host's decoder rebases the restarted
  device's clock so time stays continuous, so neither the clock rule nor a pause sees the
  restart; a marker placed in order among the samples does);
* a lost connection, the end of the source, or :meth:`~LiveRecognition.end_line`.

Callers learn what happened through callbacks, called on the polling thread:
``on_partial(rows)`` after ``rows`` (an ``(n, 4)`` array) went into the current line and were
decoded; ``on_final(result, num_samples)`` when a line ended (its first ``num_samples`` rows were
the line; later rows belong to the next line and come again in an ``on_partial`` right after);
``on_event(event)`` for each connection change of a serial source.
"""
from __future__ import annotations

import queue
import time
from typing import Callable, Optional

import numpy as np

from firmware_bridge.reader import DISCONNECTED, STALLED, STOPPED, ReaderEvent
from firmware_bridge.samples import ErrorCounters, PenSample, StrokeRowAssembler
from firmware_bridge.sources import PenSource
from runtime.recognizer import RecognitionResult, StreamingRecognizer, long_pause_starts

__all__ = ["LiveRecognition", "serial_error_count", "error_counts"]


def serial_error_count(errors: ErrorCounters) -> int:
    """Everything a decoder skipped or found missing: bad frames, lost frames, stray bytes."""
    return errors.total_bad_frames() + errors.lost + errors.stray_bytes


def error_counts(errors: ErrorCounters) -> dict:
    """The non-zero counters by name (``extra`` ones included)."""
    counts = {k: v for k, v in errors.__dict__.items() if k != "extra" and v}
    counts.update({k: v for k, v in errors.extra.items() if v})
    return counts


def _ignore(*_args) -> None:
    pass


class LiveRecognition:
    """One pen source, one stream (see the module docstring). Not thread-safe: one thread polls.

    ``clock_speed``: how much faster than the wall clock the source's time runs (a replay or an
    emulator at ``--speed X``; a real pen: 1); too low only makes pauses end later.
    """

    def __init__(self, source: PenSource, recognizer: StreamingRecognizer, clock_speed: float = 1.0,
                 on_partial: Callable[[np.ndarray], None] = _ignore,
                 on_final: Callable[[RecognitionResult, int], None] = _ignore,
                 on_event: Callable[[ReaderEvent], None] = _ignore):
        if not clock_speed > 0:
            raise ValueError(f"clock_speed must be > 0, got {clock_speed}")
        self.source = source
        self.recognizer = recognizer
        self.clock_speed = clock_speed
        self.on_partial, self.on_final, self.on_event = on_partial, on_final, on_event
        self.stream = recognizer.create_stream()
        self.assembler = StrokeRowAssembler()
        self.samples_received = 0
        self.rows_received = 0
        self.lines = 0
        self.decode_seconds = 0.0  # wall time spent decoding, and ink time decoded: the RTF
        self.ink_seconds = 0.0
        self.arrived_wall = time.time()  # wall clock when the newest samples were read
        self._source_t: Optional[float] = None  # the newest sample's t, rows or not
        self._session_breaks = source.session_breaks  # device restarts already handled
        self._arrival = time.monotonic()  # when that sample was read
        self._unreported: list = []  # row chunks fed to the stream but not yet reported (on_partial)
        self._unreported_since: Optional[float] = None  # when the oldest of them reached the host
        self.report_delay_s = 0.0  # of the last report: from the oldest sample's arrival to its text

    # ---- the loop body ---------------------------------------------------------------------
    def poll(self, timeout: float, decode: bool = True) -> list[PenSample]:
        """Wait up to ``timeout`` for samples, recognise them, handle connection changes, and end
        the line when the pen has paused long enough. Returns the samples read.

        ``decode=False`` leaves the new frames of the current line waiting in the stream, so a
        caller serving many writers can run them through the model together
        (:meth:`StreamingRecognizer.decode_streams`) and then :meth:`flush`; a line that ends is
        always decoded and reported at once."""
        quiet_since = None
        samples = self._read(timeout)
        if not samples:  # a read may come back empty late (a busy machine): is anything due now?
            quiet_since = time.monotonic()
            samples = self._read(0)
        self._drain_events()
        # Nothing was due at quiet_since, so the source's clock then is at least the estimate and
        # below the next sample's time: the pause is never overestimated, whatever the load.
        self.check_pause(None if samples else quiet_since)
        if decode:
            self.flush()
        return samples

    def flush(self) -> None:
        """Decode what went into the current line since the last report and report it
        (``on_partial``), once for all of it."""
        if not self._unreported:
            return
        rows = self._unreported[0] if len(self._unreported) == 1 else np.concatenate(self._unreported)
        self._unreported = []
        self._decode()
        if self._unreported_since is not None:
            self.report_delay_s = time.monotonic() - self._unreported_since
            self._unreported_since = None
        self.on_partial(rows)

    def accept(self, samples: list[PenSample], arrived: Optional[float] = None, decode: bool = True) -> None:
        """Recognise ``samples`` (read at monotonic time ``arrived``, default now); ``decode`` as
        in :meth:`poll`."""
        self._accept(samples, arrived)
        if decode:
            self.flush()

    def _accept(self, samples: list[PenSample], arrived: Optional[float] = None,
                queued: Optional[float] = None) -> None:
        """``queued``: when the samples reached the host, if before they were read (the
        recognition latency counts from there)."""
        if not samples:
            return
        self._arrival = time.monotonic() if arrived is None else arrived
        if self._unreported_since is None:
            self._unreported_since = self._arrival if queued is None else queued
        self.arrived_wall = time.time()
        self.samples_received += len(samples)
        start, last = 0, self._source_t
        for i, s in enumerate(samples):
            if last is not None and s.t < last:  # the source's clock started over
                self._take(samples[start:i])
                self.end_line()
                start = i
            last = s.t
        self._take(samples[start:])
        self._source_t = last

    def check_pause(self, wall: Optional[float] = None) -> None:
        """End the line if the pen has been up for the endpoint pause at monotonic time ``wall``
        (default: when the newest sample arrived, i.e. judge by its ``t`` alone)."""
        stream = self.stream
        if not stream.samples or stream.pen_up_since is None or self._source_t is None:
            return
        elapsed = 0.0 if wall is None else max(0.0, wall - self._arrival)
        if self.recognizer.is_endpoint(stream, now=self._source_t + elapsed * self.clock_speed):
            self.finish()

    def end_line(self) -> None:
        """No more samples for this line (source ended or lost, clock restarted, we stop): close an
        open stroke and end every line still open."""
        rows = self.assembler.pen_lifted()
        if rows:
            self._feed(np.asarray(rows, dtype=np.float64))
        while self.stream.samples or self.stream.held_back is not None:
            self.finish()

    def finish(self) -> None:
        """End the current line now (``on_final``) and start the next one."""
        self.flush()  # what the line holds is reported before the line ends
        stream = self.stream
        if not stream.samples and stream.held_back is None:
            return
        held = stream.held_back
        stream.input_finished()
        self._decode()
        self.on_final(self.recognizer.get_result(stream), stream.samples)
        self.lines += 1
        self.recognizer.reset(stream)  # feeds back rows held for the next line, if any
        if held is not None and len(held):
            self._unreported.append(held)
            if stream.held_back is not None:  # the held rows hold another line break
                self.finish()

    def clear(self) -> None:
        """Forget the current line, held-back rows and an open stroke; no ``on_final``."""
        self.assembler = StrokeRowAssembler()
        self._unreported, self._unreported_since = [], None
        self.recognizer.reset(self.stream, keep_held_back=False)

    # ---- internals ---------------------------------------------------------------------------
    def _take(self, samples: list[PenSample]) -> None:
        rows = self.assembler.accept_many(samples)
        if rows:
            self._feed(np.asarray(rows, dtype=np.float64))

    def _feed(self, rows: np.ndarray) -> None:
        # A burst may hold a whole long pause (a file replayed at once, a host that fell behind): cut
        # it at every stroke start that follows one, so lines end as they would live.
        pause = self.stream.endpoint.long_pause_s  # the stream's own rules
        for chunk in np.split(rows, long_pause_starts(rows, pause)):
            stream = self.stream
            if self.recognizer.is_endpoint(stream, now=float(chunk[0, 2])):
                self.finish()
            prev_t = stream.last_t
            stream.accept_samples(chunk)
            self.rows_received += len(chunk)
            if prev_t is not None:
                self.ink_seconds += max(0.0, float(chunk[-1, 2]) - prev_t)
            self._unreported.append(chunk)
            if stream.held_back is not None:  # the writer went to a new line
                self.finish()

    def _decode(self) -> None:
        started = time.perf_counter()
        while self.recognizer.is_ready(self.stream):
            self.recognizer.decode_stream(self.stream)
        self.decode_seconds += time.perf_counter() - started

    def _read(self, timeout: float) -> list[PenSample]:
        """Read and recognise (waiting up to ``timeout`` for the first sample). A read stops at a
        device restart: then the line ends there and reading goes on without waiting, so
        everything queued now is taken, in order, each session's ink in its own line."""
        out: list[PenSample] = []
        while True:
            samples = self.source.read(timeout=timeout)
            restarted = self._device_restarted()
            if samples:
                self._accept(samples, queued=self.source.read_arrival)
                out += samples
            if not restarted:
                return out
            self.end_line()  # the samples before it were the old session's
            timeout = 0

    def _device_restarted(self) -> bool:
        """True once per device restart the source's reads went past (``session_breaks``)."""
        breaks = self.source.session_breaks
        seen, self._session_breaks = self._session_breaks, breaks
        return breaks != seen

    def _drain_events(self) -> None:
        events = self.source.events
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            if event.state in (DISCONNECTED, STOPPED, STALLED):  # a frozen device ends the line too
                # the reader queued every sample (and a pen-left) before it reported the loss
                self._read(0)
                self.end_line()  # the device's clock may start over when it comes back
            self.on_event(event)
