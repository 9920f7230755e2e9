"""One live recognition session: a pen source, one :class:`InkStream`, and the lines it produced.

A :class:`RecognitionSession` runs a worker thread that reads :class:`PenSample` batches from a
pen source and recognises them with :class:`runtime.app.live.LiveRecognition` (the loop ``inkstream
recognize`` runs too, with the same endpoints), and *publishes* plain-dict messages (JSON-ready) to a callback. The web server broadcasts them to
every viewer; the terminal demo prints them. Decoding therefore never runs on an event loop.

Messages (``type`` field), each with a ``seq`` number that grows by one per message:

* ``update``: new rows of the current line (``rows``, ``first_sample``, ``arrived_ms`` = wall
  clock when the worker read them), the growing hypothesis (``text``, ``chars``) and a column
  of LSTM memory cells (``cells``: ``sample`` index and ``values`` of the last layer's c).
* ``final``: the line is over (``text``, ``chars``, ``num_samples``: the line keeps only its
  first ``num_samples`` rows; later rows were the next line's and come again in its ``update``).
* ``clear``: everything was cleared. ``stats``: rates, RTF, serial errors, source state.
* ``source``: the source ended or changed state, or recognition failed (``state`` ``failed``,
  ``detail``: the error); nothing more is recognised after that.

:meth:`RecognitionSession.snapshot` returns the whole visible state with the ``seq`` it
includes, so a viewer that joins late starts from it and skips messages with a smaller ``seq``.
"""
from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from firmware_bridge.samples import DeviceInfo, ErrorCounters, PenSample
from firmware_bridge.sources import PenSource
from runtime.app.live import LiveRecognition, error_counts, serial_error_count
from runtime.recognizer import RecognitionResult, StreamingRecognizer

__all__ = ["SessionConfig", "RecognitionSession", "BrowserPenSource", "chars_to_json"]

Publish = Callable[[dict], None]


@dataclass(frozen=True)
class SessionConfig:
    """How a session runs.

    ``memory_cells``: how many cells of the last LSTM layer each ``update`` carries (Graves' view).
    ``clock_speed``: how much faster than the wall clock the source's time runs (an emulator at
    ``--speed 10``), so a pen-up pause is measured in the source's time while no samples arrive.
    ``history_lines``: final lines kept for late viewers, and ``history_rows`` the most pen samples
    they hold together (the oldest lines go first), so what a joining viewer is sent stays bounded
    (the current line is bounded by the endpoint rule's ``max_line_samples``).
    ``stats_period_s``: stats cadence. ``save_dir``: every final line is written there as an InkML
    file with its recognised text (``line-NNNNNN.inkml``, atomically), and a session started on the
    folder begins with the lines found there, so a restart keeps what was written (``clear`` clears
    the page, not the folder).
    """

    memory_cells: int = 16
    clock_speed: float = 1.0
    history_lines: int = 50
    history_rows: int = 100_000
    save_dir: Optional[str] = None  # keep every final line there as InkML; a new session starts from them
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
    """Pen samples written on the web page. The server :meth:`push` es them; the session reads.

    At most ``max_batches`` batches wait: when recognition falls behind (or has stopped), a push
    is refused (False) and its samples are counted in ``errors.extra['dropped_samples']``."""

    def __init__(self, max_batches: int = 256) -> None:
        super().__init__()
        self.info = DeviceInfo("browser", 0, 0, 0, name="web page (pointer events)")
        self._queue: "queue.Queue[list[PenSample]]" = queue.Queue(maxsize=max_batches)
        self._closed = False
        self.dropped_samples = 0

    def push(self, samples: list[PenSample]) -> bool:
        """Queue ``samples`` for the session; False when they were dropped."""
        if not samples or self._closed:
            return not samples
        try:
            self._queue.put_nowait(samples)
            return True
        except queue.Full:
            self.dropped_samples += len(samples)
            return False

    @property
    def ended(self) -> bool:
        return self._closed

    @property
    def errors(self) -> ErrorCounters:
        return ErrorCounters(extra={"dropped_samples": self.dropped_samples} if self.dropped_samples else {})

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


def lively_cells(recognizer: StreamingRecognizer, count: int) -> np.ndarray:
    """The ``count`` memory cells of the last LSTM layer that change most while real handwriting
    is read (the variance of their state over the frames of the packaged demo samples): most
    cells sit saturated, and a view of those shows nothing. The first ``count`` cells when the
    samples are missing."""
    from runtime.app.sources import DEMO_SAMPLES
    from runtime.features import extract
    from runtime.ink import load_corpus

    if count <= 0:
        return np.zeros(0, np.int64)
    try:
        corpus = load_corpus(DEMO_SAMPLES)
    except (OSError, ValueError):
        return np.arange(count)
    model, states = recognizer.model, []
    for i in range(min(len(corpus), 4)):
        h, c = model.zero_state(1)
        frames = extract(np.asarray(corpus.points(i), np.float64), model.feature_config)
        for k in range(len(frames)):
            _, h, c = model.step(frames[None, k:k + 1], h, c)
            states.append(np.asarray(c)[-1, 0])
    if len(states) < 2:
        return np.arange(count)
    return np.sort(np.argsort(np.var(np.array(states), axis=0))[::-1][:count])


def chars_to_json(result: RecognitionResult) -> list[dict]:
    """The alignment as the page uses it: char, emission frame, sample range, strokes."""
    return [{"c": a.char, "frame": a.frame, "s0": a.sample_start, "s1": a.sample_end, "strokes": list(a.strokes)}
            for a in result.chars]


def _errors_to_json(errors: ErrorCounters) -> dict:
    return {"total": serial_error_count(errors), "counts": error_counts(errors)}


class RecognitionSession:
    """Reads ``source`` on a worker thread, recognises it with ``recognizer`` (one stream, through
    :class:`runtime.app.live.LiveRecognition`) and publishes messages (see the module docstring) to
    ``publish``, which is called on the worker thread and must not block. ``start()``/``close()``;
    ``snapshot()`` from any thread. If the worker dies, ``failure`` holds the exception, a
    ``source`` message with state ``failed`` goes out, and waiting command events are set."""

    def __init__(self, source: PenSource, recognizer: StreamingRecognizer, publish: Publish,
                 config: SessionConfig = SessionConfig(), source_name: str = ""):
        self.source = source
        self.recognizer = recognizer
        self.config = config
        self.source_name = source_name
        self._publish_cb = publish
        self.live = LiveRecognition(source, recognizer, clock_speed=config.clock_speed,
                                    on_partial=self._on_rows, on_final=self._on_final, on_event=self._on_event)
        self.stream = self.live.stream
        self._lock = threading.Lock()  # guards the visible state and seq against snapshot()
        self._seq = 0
        self._line_id = 0
        self._line_rows: list = []
        self._hypothesis: dict = {"text": "", "chars": []}
        self._cells: list = []
        self.history: list = []  # final lines: {"line", "text", "chars", "rows"}
        self._commands: "queue.Queue[tuple[str, threading.Event]]" = queue.Queue()
        self._commands_lock = threading.Lock()  # a command is either queued for a live worker or set at once
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.source_ended = threading.Event()
        self._source_state = "connecting" if source.info is None and source.events is not None else "open"
        # stats window: counters of self.live at the window's start
        self._win_start = time.monotonic()
        self._win_base = (0, 0.0, 0.0)
        self.failure: Optional[BaseException] = None
        hidden = recognizer.model.info.hidden_size
        self.memory_cells = min(config.memory_cells, hidden)
        self.cell_indices = lively_cells(recognizer, self.memory_cells)
        self.save_errors = 0
        if config.save_dir is not None:
            self._restore_saved_lines(Path(config.save_dir))

    @property
    def samples_received(self) -> int:
        return self.live.samples_received

    @property
    def rows_received(self) -> int:
        return self.live.rows_received

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
        The returned event is set once it has been done (or the worker has failed)."""
        return self._command("clear")

    def request_finish_line(self) -> threading.Event:
        """End the current line now, as an endpoint would; the event is set once it is done."""
        return self._command("finish")

    def _command(self, name: str) -> threading.Event:
        done = threading.Event()
        with self._commands_lock:
            if self.failure is not None:
                done.set()  # nobody will run it: do not leave the caller waiting
            else:
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
                self.live.poll(self.config.poll_s)
                if self.source.ended and not self.source_ended.is_set():
                    self._on_source_ended()
                now = time.monotonic()
                if now >= next_stats:
                    self._publish_stats(now)
                    next_stats = now + self.config.stats_period_s
                if self.source_ended.is_set() and self._commands.empty():
                    self._stop.wait(self.config.poll_s)  # nothing more will come; stay for commands
        except Exception as exc:  # a bug: tell the viewers instead of dying silently
            with self._commands_lock:
                self.failure = exc
            self._release_commands()
            self.source.close()  # a browser source refuses pushes from now on

            def mutate():
                self._source_state = "failed"

            self._publish({"type": "source", "state": "failed", "detail": repr(exc)}, mutate)
            raise

    def _release_commands(self) -> None:
        while True:
            try:
                self._commands.get_nowait()[1].set()
            except queue.Empty:
                return

    def _do_commands(self) -> None:
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                # what the source delivered before the command belongs before it: the page pushes
                # its pen samples first, then asks for the end of the line
                while self.live.poll(0):
                    pass
                if command == "clear":
                    self._clear()
                elif command == "finish":
                    self.live.finish()
            finally:
                done.set()

    def _on_rows(self, rows: np.ndarray) -> None:
        """Rows went into the current line (after a reset: the next line's first rows)."""
        result = self.recognizer.get_result(self.stream)
        chars = chars_to_json(result)
        cells = self._cell_column(self.stream.samples)
        row_list = [[float(v) for v in r] for r in rows]
        first = len(self._line_rows)

        def mutate():
            self._line_rows.extend(row_list)
            self._hypothesis = {"text": result.text, "chars": chars}
            if cells is not None:
                self._cells.append(cells)

        self._publish({"type": "update", "line": self._line_id, "first_sample": first, "rows": row_list,
                       "arrived_ms": self.live.arrived_wall * 1000.0, "text": result.text, "chars": chars,
                       "cells": cells}, mutate)

    def _cell_column(self, sample_index: int) -> Optional[dict]:
        if not self.memory_cells:
            return None
        values = np.asarray(self.stream.c)[-1, 0, self.cell_indices]
        return {"sample": int(sample_index), "values": [round(float(v), 3) for v in values]}

    def _on_final(self, result: RecognitionResult, count: int) -> None:
        """The line is over: keep it; rows after ``count`` come again in the next ``update``."""
        line = {"line": self._line_id, "text": result.text, "chars": chars_to_json(result),
                "rows": self._line_rows[:count]}

        if self.config.save_dir is not None and line["rows"]:
            self._save_line(line)

        def mutate():
            self.history.append(line)
            self._trim_history()
            self._line_id += 1
            self._line_rows = []
            self._hypothesis = {"text": "", "chars": []}
            self._cells = []

        self._publish({"type": "final", "line": line["line"], "text": result.text, "chars": line["chars"],
                       "num_samples": count}, mutate)

    # ---- lines kept on disk (SessionConfig.save_dir) --------------------------------------------
    def _restore_saved_lines(self, folder: Path) -> None:
        """Start from the lines saved in ``folder`` (created when missing); a file that cannot be
        read is skipped with one line on stderr."""
        from runtime.formats.inkml import read_inkml

        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("line-*.inkml")):
            try:
                number = int(path.stem.split("-", 1)[1])
                ink = read_inkml(path)[0]
            except (OSError, ValueError, IndexError) as exc:
                print(f"inkstream: skipped saved line {path}: {exc}", file=sys.stderr, flush=True)
                continue
            self.history.append({"line": number, "text": ink.text or "", "chars": [],
                                 "rows": ink.to_points().tolist()})
            self._line_id = max(self._line_id, number + 1)
        self._trim_history()

    def _trim_history(self) -> None:
        """At most ``history_lines`` lines and ``history_rows`` rows kept: the oldest go first."""
        del self.history[:-self.config.history_lines]
        rows = sum(len(kept["rows"]) for kept in self.history)
        while rows > self.config.history_rows and len(self.history) > 1:
            rows -= len(self.history.pop(0)["rows"])

    def _save_line(self, line: dict) -> None:
        """Write ``line`` as ``line-NNNNNN.inkml`` (via a temporary file and a rename, so a crash
        never leaves half a file); a failure (disk full) is counted and said once per line."""
        from runtime.formats.inkml import write_inkml
        from runtime.ink import Ink

        folder = Path(self.config.save_dir)
        path = folder / f"line-{line['line']:06d}.inkml"
        tmp = folder / f".{path.name}.tmp"
        try:
            write_inkml(tmp, Ink.from_points(np.asarray(line["rows"], dtype=np.float64), text=line["text"],
                                             id=path.stem, writer=self.source_name))
            os.replace(tmp, path)
        except (OSError, ValueError) as exc:
            self.save_errors += 1
            print(f"inkstream: could not save line {line['line']} to {path}: {exc}", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        self.live.clear()

        def mutate():
            self.history = []
            self._line_id += 1
            self._line_rows = []
            self._hypothesis = {"text": "", "chars": []}
            self._cells = []

        self._publish({"type": "clear"}, mutate)

    def _on_source_ended(self) -> None:
        self.live.end_line()

        def mutate():
            self._source_state = "ended"

        self._publish({"type": "source", "state": "ended"}, mutate)
        self.source_ended.set()

    def _on_event(self, event) -> None:
        def mutate(state=event.state):
            self._source_state = state

        self._publish({"type": "source", "state": event.state, "detail": event.detail}, mutate)

    def _publish_stats(self, now: float) -> None:
        live = self.live
        samples0, compute0, ink0 = self._win_base
        elapsed = max(now - self._win_start, 1e-6)
        ink = live.ink_seconds - ink0
        rtf = (live.decode_seconds - compute0) / ink if ink > 0 else None
        message = {
            "type": "stats",
            "samples_per_s": round((live.samples_received - samples0) / elapsed, 1),
            "rtf": None if rtf is None else round(rtf, 4),
            "serial_errors": _errors_to_json(self.source.errors),
            "samples_total": live.samples_received,
            "source_state": self._source_state,
        }
        self._win_start, self._win_base = now, (live.samples_received, live.decode_seconds, live.ink_seconds)
        self._publish(message)


def finite_number(value) -> bool:
    """A JSON number a float can hold (an integer too large for a float is not one)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
