"""One live recognition session: a pen source, one :class:`InkStream`, and the lines it produced.

A :class:`RecognitionSession` runs a worker thread that reads :class:`PenSample` batches from a
pen source, turns them into ``x, y, t, pen_up_after`` rows, feeds the stream, decodes, and
*publishes* plain-dict messages (JSON-ready) to a callback. The web server broadcasts them to
every viewer; the terminal demo prints them. Decoding therefore never runs on an event loop.

Messages (``type`` field), each with a ``seq`` number that grows by one per message:

* ``update``: new rows of the current line (``rows``, ``first_sample``, ``arrived_ms`` = wall
  clock when the worker read them), the growing hypothesis (``text``, ``chars``) and a column
  of LSTM memory cells (``cells``: ``sample`` index and ``values`` of the last layer's c).
* ``final``: the line is over (``text``, ``chars``, ``num_samples``: the line keeps only its
  first ``num_samples`` rows; later rows were the next line's and come again in its ``update``).
* ``clear``: everything was cleared. ``stats``: rates, RTF, serial errors, source state.
* ``source``: the source ended or changed state.

:meth:`RecognitionSession.snapshot` returns the whole visible state with the ``seq`` it
includes, so a viewer that joins late starts from it and skips messages with a smaller ``seq``.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from firmware_bridge.samples import DeviceInfo, ErrorCounters, PenSample, StrokeRowAssembler
from firmware_bridge.sources import PenSource
from runtime.recognizer import RecognitionResult, StreamingRecognizer

__all__ = ["SessionConfig", "RecognitionSession", "BrowserPenSource", "chars_to_json"]

Publish = Callable[[dict], None]


@dataclass(frozen=True)
class SessionConfig:
    """How a session runs.

    ``memory_cells``: how many cells of the last LSTM layer each ``update`` carries (Graves' view).
    ``clock_speed``: how much faster than the wall clock the source's time runs (an emulator at
    ``--speed 10``), so a pen-up pause is measured in the source's time while no samples arrive.
    ``history_lines``: final lines kept for late viewers. ``stats_period_s``: stats cadence.
    """

    memory_cells: int = 16
    clock_speed: float = 1.0
    history_lines: int = 50
    stats_period_s: float = 0.5
    poll_s: float = 0.05

    def __post_init__(self):
        if self.memory_cells < 0:
            raise ValueError(f"SessionConfig.memory_cells must be >= 0, got {self.memory_cells}")
        if not self.clock_speed > 0:
            raise ValueError(f"SessionConfig.clock_speed must be > 0, got {self.clock_speed}")
        if self.history_lines < 1:
            raise ValueError(f"SessionConfig.history_lines must be >= 1, got {self.history_lines}")


class BrowserPenSource(PenSource):
    """Pen samples written on the web page. The server :meth:`push` es them; the session reads."""

    def __init__(self) -> None:
        super().__init__()
        self.info = DeviceInfo("browser", 0, 0, 0, name="web page (pointer events)")
        self._queue: "queue.Queue[list[PenSample]]" = queue.Queue()
        self._closed = False

    def push(self, samples: list[PenSample]) -> None:
        if samples and not self._closed:
            self._queue.put(samples)

    @property
    def ended(self) -> bool:
        return self._closed

    def read(self, timeout: Optional[float] = None) -> list[PenSample]:
        out: list[PenSample] = []
        try:
            out.extend(self._queue.get(timeout=timeout))
            while True:
                out.extend(self._queue.get_nowait())
        except queue.Empty:
            return out

    def close(self) -> None:
        self._closed = True


def chars_to_json(result: RecognitionResult) -> list[dict]:
    """The alignment as the page uses it: char, emission frame, sample range, strokes."""
    return [{"c": a.char, "frame": a.frame, "s0": a.sample_start, "s1": a.sample_end, "strokes": list(a.strokes)}
            for a in result.chars]


def _errors_to_json(errors: ErrorCounters) -> dict:
    counts = {k: v for k, v in errors.__dict__.items() if k != "extra" and v}
    counts.update({k: v for k, v in errors.extra.items() if v})
    return {"total": errors.total_bad_frames() + errors.lost, "counts": counts}


class RecognitionSession:
    """Reads ``source`` on a worker thread, recognises it with ``recognizer`` (one stream) and
    publishes messages (see the module docstring) to ``publish``, which is called on the worker
    thread and must not block. ``start()``/``close()``; ``snapshot()`` from any thread."""

    def __init__(self, source: PenSource, recognizer: StreamingRecognizer, publish: Publish,
                 config: SessionConfig = SessionConfig(), source_name: str = ""):
        self.source = source
        self.recognizer = recognizer
        self.config = config
        self.source_name = source_name
        self._publish_cb = publish
        self.stream = recognizer.create_stream()
        self._assembler = StrokeRowAssembler()
        self._lock = threading.Lock()  # guards the visible state and seq against snapshot()
        self._seq = 0
        self._line_id = 0
        self._line_rows: list = []
        self._hypothesis: dict = {"text": "", "chars": []}
        self._cells: list = []
        self.history: list = []  # final lines: {"line", "text", "chars", "rows"}
        self._commands: "queue.Queue[tuple[str, threading.Event]]" = queue.Queue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.source_ended = threading.Event()
        self.samples_received = 0
        self.rows_received = 0
        self._last_arrival = time.monotonic()
        self._source_state = "connecting" if source.info is None and source.events is not None else "open"
        # stats window
        self._win_start = time.monotonic()
        self._win_samples = 0
        self._win_compute = 0.0
        self._win_ink = 0.0
        self.failure: Optional[BaseException] = None
        hidden = recognizer.model.info.hidden_size
        self.memory_cells = min(config.memory_cells, hidden)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "RecognitionSession":
        self._thread = threading.Thread(target=self._run, name="inkstream-recognition", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3.0)
        self.source.close()

    def request_clear(self) -> threading.Event:
        """Forget the current line and the history (runs on the worker thread, in order).
        The returned event is set once it has been done."""
        return self._command("clear")

    def request_finish_line(self) -> threading.Event:
        """End the current line now, as an endpoint would; the event is set once it is done."""
        return self._command("finish")

    def _command(self, name: str) -> threading.Event:
        done = threading.Event()
        self._commands.put((name, done))
        return done

    # ---- state for late viewers --------------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "seq": self._seq,
                "line": self._line_id,
                "rows": [list(r) for r in self._line_rows],
                "text": self._hypothesis["text"],
                "chars": list(self._hypothesis["chars"]),
                "cells": list(self._cells),
                "history": list(self.history),
                "source_state": self._source_state,
            }

    def _publish(self, message: dict, mutate: Optional[Callable[[], None]] = None) -> None:
        # state change and seq number move together, so a snapshot is never half a message
        with self._lock:
            if mutate is not None:
                mutate()
            self._seq += 1
            message["seq"] = self._seq
        self._publish_cb(message)

    # ---- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        next_stats = time.monotonic() + self.config.stats_period_s
        try:
            while not self._stop.is_set():
                self._do_commands()
                samples = self.source.read(timeout=self.config.poll_s)
                if samples:
                    self._on_samples(samples)
                self._drain_source_events()
                self._check_pause()
                if self.source.ended and not self.source_ended.is_set():
                    self._on_source_ended()
                now = time.monotonic()
                if now >= next_stats:
                    self._publish_stats(now)
                    next_stats = now + self.config.stats_period_s
                if self.source_ended.is_set() and self._commands.empty():
                    self._stop.wait(self.config.poll_s)  # nothing more will come; stay for commands
        except Exception as exc:  # a bug: tell the viewers instead of dying silently
            self.failure = exc
            self._publish({"type": "source", "state": "failed", "detail": repr(exc)})
            raise

    def _do_commands(self) -> None:
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if command == "clear":
                self._clear()
            elif command == "finish":
                self._finish_line()
            done.set()

    def _on_samples(self, samples: list[PenSample]) -> None:
        arrived_ms = time.time() * 1000.0
        self._last_arrival = time.monotonic()
        self.samples_received += len(samples)
        self._win_samples += len(samples)
        rows = self._assembler.accept_many(samples)
        if not rows:
            return
        rows = np.asarray(rows, dtype=np.float64)
        # A long pause before these rows ends the line first (the pen came back after it).
        if self.recognizer.is_endpoint(self.stream, now=float(rows[0, 2])):
            self._finish_line()
        self._feed(rows, arrived_ms)

    def _feed(self, rows: np.ndarray, arrived_ms: float) -> None:
        stream = self.stream
        prev_t = stream.last_t
        first = len(self._line_rows)
        stream.accept_samples(rows)
        self.rows_received += len(rows)
        started = time.perf_counter()
        while self.recognizer.is_ready(stream):
            self.recognizer.decode_stream(stream)
        self._win_compute += time.perf_counter() - started
        if prev_t is not None:
            self._win_ink += max(0.0, float(rows[-1, 2]) - prev_t)
        result = self.recognizer.get_result(stream)
        chars = chars_to_json(result)
        cells = self._cell_column(stream.samples)
        row_list = [[float(v) for v in r] for r in rows]

        def mutate():
            self._line_rows.extend(row_list)
            self._hypothesis = {"text": result.text, "chars": chars}
            if cells is not None:
                self._cells.append(cells)

        self._publish({"type": "update", "line": self._line_id, "first_sample": first, "rows": row_list,
                       "arrived_ms": arrived_ms, "text": result.text, "chars": chars, "cells": cells}, mutate)
        if stream.held_back is not None:  # the writer went to a new line
            self._finish_line()

    def _cell_column(self, sample_index: int) -> Optional[dict]:
        if not self.memory_cells:
            return None
        values = np.asarray(self.stream.c)[-1, 0, :self.memory_cells]
        return {"sample": int(sample_index), "values": [round(float(v), 3) for v in values]}

    def _check_pause(self) -> None:
        stream = self.stream
        if not stream.samples or stream.pen_up_since is None:
            return
        # the source's clock keeps running while nothing arrives
        now = stream.last_t + (time.monotonic() - self._last_arrival) * self.config.clock_speed
        if self.recognizer.is_endpoint(stream, now=now):
            self._finish_line()

    def _finish_line(self) -> None:
        """Final result of the current line, keep it, reset the stream (replaying held-back rows)."""
        stream = self.stream
        if not stream.samples and stream.held_back is None:
            return
        stream.input_finished()
        while self.recognizer.is_ready(stream):
            self.recognizer.decode_stream(stream)
        result = self.recognizer.get_result(stream)
        count = stream.samples
        line = {"line": self._line_id, "text": result.text, "chars": chars_to_json(result),
                "rows": self._line_rows[:count]}
        remainder = self._line_rows[count:]

        def mutate():
            self.history.append(line)
            del self.history[:-self.config.history_lines]
            self._line_id += 1
            self._line_rows = []
            self._hypothesis = {"text": "", "chars": []}
            self._cells = []

        self._publish({"type": "final", "line": line["line"], "text": result.text, "chars": line["chars"],
                       "num_samples": count}, mutate)
        self.recognizer.reset(stream)
        if remainder:  # reset() fed the next line's first rows back in: decode and publish them
            self._republish_after_reset(remainder)

    def _republish_after_reset(self, remainder: list) -> None:
        stream = self.stream
        while self.recognizer.is_ready(stream):
            self.recognizer.decode_stream(stream)
        result = self.recognizer.get_result(stream)
        chars = chars_to_json(result)
        cells = self._cell_column(stream.samples)

        def mutate():
            self._line_rows = list(remainder)
            self._hypothesis = {"text": result.text, "chars": chars}
            self._cells = [cells] if cells is not None else []

        self._publish({"type": "update", "line": self._line_id, "first_sample": 0, "rows": list(remainder),
                       "arrived_ms": time.time() * 1000.0, "text": result.text, "chars": chars, "cells": cells},
                      mutate)

    def _clear(self) -> None:
        self._assembler = StrokeRowAssembler()
        self.stream.held_back = None  # nothing carries over into the cleared page
        self.recognizer.reset(self.stream)

        def mutate():
            self.history = []
            self._line_id += 1
            self._line_rows = []
            self._hypothesis = {"text": "", "chars": []}
            self._cells = []

        self._publish({"type": "clear"}, mutate)

    def _on_source_ended(self) -> None:
        rows = self._assembler.flush()
        if rows:
            self._feed(np.asarray(rows, dtype=np.float64), time.time() * 1000.0)
        self._finish_line()

        def mutate():
            self._source_state = "ended"

        self._publish({"type": "source", "state": "ended"}, mutate)
        self.source_ended.set()

    def _drain_source_events(self) -> None:
        events = getattr(self.source, "events", None)
        if events is None:
            return
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
            if event.state in ("disconnected", "stopped"):
                rows = self._assembler.pen_lifted()  # the pen cannot still be down on a lost port
                if rows:
                    self._feed(np.asarray(rows, dtype=np.float64), time.time() * 1000.0)

            def mutate(state=event.state):
                self._source_state = state

            self._publish({"type": "source", "state": event.state, "detail": event.detail}, mutate)

    def _publish_stats(self, now: float) -> None:
        elapsed = max(now - self._win_start, 1e-6)
        rtf = self._win_compute / self._win_ink if self._win_ink > 0 else None
        message = {
            "type": "stats",
            "samples_per_s": round(self._win_samples / elapsed, 1),
            "rtf": None if rtf is None else round(rtf, 4),
            "serial_errors": _errors_to_json(self.source.errors),
            "samples_total": self.samples_received,
            "source_state": self._source_state,
        }
        self._win_start, self._win_samples, self._win_compute, self._win_ink = now, 0, 0.0, 0.0
        self._publish(message)


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
