"""One live recognition session: its writers' pen sources, a stream per writer, and the lines
they produced.

A :class:`RecognitionSession` runs one worker thread that reads :class:`PenSample` batches from
every writer's source and recognises each writer's ink with its own
:class:`runtime.app.live.LiveRecognition` (the loop ``inkstream recognize`` runs too, with the
same endpoints); the new frames of all writers go through the model in one batched call per
round. It *publishes* plain-dict messages (JSON-ready) to a callback. The web server broadcasts
them to every viewer; the terminal demo prints them. Decoding therefore never runs on an event loop.

A writer is a device (a session made with a source: writer 0) or a web page that wrote (one per
page, found again by its key after a reconnect, at most ``SessionConfig.max_writers``).

Messages (``type`` field), each with a ``seq`` number that grows by one per message:

* ``update``: new rows of a writer's current line (``writer``, ``line``, ``rows``,
  ``first_sample``, ``arrived_ms`` = wall clock when the worker read them, ``recognition_ms`` =
  from the oldest of them reaching the host to this text), the growing hypothesis (``text``,
  ``chars``) and a column of LSTM memory cells (``cells``: ``sample`` index and ``values`` of the
  last layer's c, and ``frames`` decoded so far: 0 while the features hold the first ink back).
* ``final``: the writer's line is over (``writer``, ``label``, ``line``, ``text``, ``chars``,
  ``num_samples``: the line keeps only its first ``num_samples`` rows; later rows were the next
  line's and come again in its ``update``).
* ``writer``: a page became a writer (``writer``, ``label``, ``line``); ``writer_left``: an idle
  one gave its slot up.
* ``clear``: everything was cleared (``lines``: each writer's new line number). ``stats``: rates,
  RTF, serial errors, writers, source state.
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
from dataclasses import dataclass, field
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
    ``max_writers``: how many pages may write at once, each in its own stream; a writer with no
    line in progress, silent for ``writer_idle_s``, gives its slot to a new one.
    ``stats_period_s``: stats cadence. ``save_dir``: every final line is written there as an InkML
    file with its recognised text (``line-NNNNNN.inkml``, atomically), and a session started on the
    folder begins with the lines found there, so a restart keeps what was written (``clear`` clears
    the page, not the folder).
    """

    memory_cells: int = 16
    max_writers: int = 8  # pages writing at once, each in its own stream
    writer_idle_s: float = 60.0  # a writer with no line in progress gives its slot up after this
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

    def __init__(self, max_batches: int = 256, wake: Optional[threading.Event] = None) -> None:
        super().__init__()
        self.info = DeviceInfo("browser", 0, 0, 0, name="web page (pointer events)")
        self._queue: "queue.Queue[tuple[float, list[PenSample]]]" = queue.Queue(maxsize=max_batches)
        self._closed = False
        self._wake = wake  # set on every push: a session serving many pages waits on one event
        self.dropped_samples = 0

    def push(self, samples: list[PenSample]) -> bool:
        """Queue ``samples`` for the session; False when they were dropped."""
        if not samples or self._closed:
            return not samples
        try:
            self._queue.put_nowait((time.monotonic(), samples))
        except queue.Full:
            self.dropped_samples += len(samples)
            return False
        if self._wake is not None:
            self._wake.set()
        return True

    @property
    def ended(self) -> bool:
        return self._closed

    @property
    def errors(self) -> ErrorCounters:
        return ErrorCounters(extra={"dropped_samples": self.dropped_samples} if self.dropped_samples else {})

    def read(self, timeout: Optional[float] = None) -> list[PenSample]:
        out: list[PenSample] = []
        try:
            pushed, samples = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
            self.read_arrival = pushed
            out.extend(samples)
            while True:
                out.extend(self._queue.get_nowait()[1])
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


@dataclass
class Writer:
    """One writer: a pen source with its own stream (through its :class:`LiveRecognition`), its
    own current line and a label viewers show beside its lines. ``key``: how its pages find it
    again after a reconnect (a browser writer), or None (the session's device)."""

    id: int
    label: str
    source: PenSource
    live: LiveRecognition
    key: Optional[str] = None
    line: int = 0
    rows: list = field(default_factory=list)
    hypothesis: dict = field(default_factory=lambda: {"text": "", "chars": []})
    cells: list = field(default_factory=list)
    last_active: float = field(default_factory=time.monotonic)

    def state(self) -> dict:
        return {"writer": self.id, "label": self.label, "line": self.line, "rows": [list(r) for r in self.rows],
                "text": self.hypothesis["text"], "chars": list(self.hypothesis["chars"]), "cells": list(self.cells)}


class TooManyWriters(RuntimeError):
    """Every writer slot holds a line in progress or a writer active within the idle time."""


class RecognitionSession:
    """Reads its writers' pen sources on one worker thread, recognises each writer's ink in its
    own stream, and publishes messages (see the module docstring) to ``publish``, which is called
    on the worker thread and must not block.

    A session made with a ``source`` has one writer (id 0): a tablet, a file, an emulator, or a
    test's browser source. Browser writers join with :meth:`writer_source` (one per page, found
    again by its key after a reconnect); their new frames go through the model together, in one
    batched call per round (:meth:`StreamingRecognizer.decode_streams`).

    ``start()``/``close()``; ``snapshot()`` from any thread. If the worker dies, ``failure`` holds
    the exception, a ``source`` message with state ``failed`` goes out, and waiting command events
    are set."""

    def __init__(self, source: Optional[PenSource], recognizer: StreamingRecognizer, publish: Publish,
                 config: SessionConfig = SessionConfig(), source_name: str = ""):
        self.recognizer = recognizer
        self.config = config
        self.source_name = source_name
        self._publish_cb = publish
        self._lock = threading.Lock()  # guards the visible state, the writers and seq against other threads
        self._seq = 0
        self._next_line = 0
        self._next_writer = 0
        self.writers: dict[int, Writer] = {}
        self.history: list = []  # final lines: {"line", "writer", "label", "text", "chars", "rows"}
        self._wake = threading.Event()  # a browser source got samples
        self._commands: "queue.Queue[tuple[str, Optional[int], threading.Event]]" = queue.Queue()
        self._commands_lock = threading.Lock()  # a command is either queued for a live worker or set at once
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.source_ended = threading.Event()
        self._source_state = "open"
        self.batch_decode_seconds = 0.0
        # stats window: (samples, decode seconds, ink seconds) at the window's start
        self._win_start = time.monotonic()
        self._win_base = (0, 0.0, 0.0)
        self.failure: Optional[BaseException] = None
        hidden = recognizer.model.info.hidden_size
        self.memory_cells = min(config.memory_cells, hidden)
        self.cell_indices = lively_cells(recognizer, self.memory_cells)
        self.save_errors = 0
        if config.save_dir is not None:
            self._restore_saved_lines(Path(config.save_dir))
        self.device: Optional[Writer] = None
        if source is not None:
            if source.info is None and source.events is not None:
                self._source_state = "connecting"
            self.device = self._add_writer(source, source_name or "pen", key=None)

    # ---- writers -----------------------------------------------------------------------------
    @property
    def live(self) -> LiveRecognition:
        """The device writer's recognition loop (a session made with a ``source``)."""
        if self.device is None:
            raise AttributeError("this session has no device writer: its writers join from pages")
        return self.device.live

    @property
    def samples_received(self) -> int:
        return sum(w.live.samples_received for w in self._writer_list())

    @property
    def rows_received(self) -> int:
        return sum(w.live.rows_received for w in self._writer_list())

    def _writer_list(self) -> list[Writer]:
        with self._lock:
            return list(self.writers.values())

    def _add_writer(self, source: PenSource, label: str, key: Optional[str]) -> Writer:
        writer_id = self._next_writer
        live = LiveRecognition(source, self.recognizer, clock_speed=self.config.clock_speed,
                               on_partial=lambda rows: self._on_rows(writer, rows),
                               on_final=lambda result, count: self._on_final(writer, result, count),
                               on_event=self._on_event)
        writer = Writer(writer_id, label, source, live, key=key, line=self._new_line_id())
        self._next_writer += 1
        self.writers[writer_id] = writer
        return writer

    def _new_line_id(self) -> int:
        self._next_line += 1
        return self._next_line - 1

    def find_writer(self, key: str) -> Optional[int]:
        """The id of the page writer ``key``, if it has written."""
        with self._lock:
            return next((w.id for w in self.writers.values() if w.key == key), None)

    def line_rows(self, line: int) -> Optional[np.ndarray]:
        """The rows of line ``line``: a writer's current line or one kept in the history; None if
        neither holds it."""
        with self._lock:
            rows = next((w.rows for w in self.writers.values() if w.line == line), None)
            if rows is None:
                rows = next((kept["rows"] for kept in self.history if kept["line"] == line), None)
            return None if rows is None else np.array(rows, dtype=np.float64).reshape(-1, 4)

    def writer_source(self, key: str) -> tuple[int, BrowserPenSource, bool]:
        """The pen source of the page writer ``key``: ``(writer id, source, joined now)``. A new key
        takes a free slot (at most ``SessionConfig.max_writers``; a writer with no line in progress
        and idle for ``writer_idle_s`` gives its slot up) or raises :class:`TooManyWriters`."""
        with self._lock:
            for writer in self.writers.values():
                if writer.key == key:
                    return writer.id, writer.source, False
            if self.failure is not None:
                raise RuntimeError("recognition has stopped")
            if len(self.writers) >= self.config.max_writers:
                now = time.monotonic()
                idle = [w for w in self.writers.values() if w.key is not None and not w.rows
                        and not w.live.stream.samples and now - w.last_active >= self.config.writer_idle_s]
                if not idle:
                    raise TooManyWriters(f"{len(self.writers)} writers are writing; at most "
                                         f"{self.config.max_writers} at once")
                gone = min(idle, key=lambda w: w.last_active)
                del self.writers[gone.id]
                gone.source.close()
                self._publish_locked({"type": "writer_left", "writer": gone.id})
            source = BrowserPenSource(wake=self._wake)
            writer = self._add_writer(source, f"writer {self._next_writer + 1}", key)
            self._publish_locked({"type": "writer", "writer": writer.id, "label": writer.label, "line": writer.line})
        return writer.id, source, True

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "RecognitionSession":
        self._thread = threading.Thread(target=self._run, name="inkstream-recognition", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3.0)
        for writer in self._writer_list():
            writer.source.close()

    def request_clear(self) -> threading.Event:
        """Forget every writer's current line and the history (runs on the worker thread, in
        order). The returned event is set once it has been done (or the worker has failed)."""
        return self._command("clear", None)

    def request_finish_line(self, writer: Optional[int] = None) -> threading.Event:
        """End ``writer``'s current line now (default: the device, or the only writer), as an
        endpoint would; the event is set once it is done."""
        return self._command("finish", writer)

    def _command(self, name: str, writer: Optional[int]) -> threading.Event:
        done = threading.Event()
        with self._commands_lock:
            if self.failure is not None:
                done.set()  # nobody will run it: do not leave the caller waiting
            else:
                self._commands.put((name, writer, done))
                self._wake.set()
        return done

    # ---- state for late viewers --------------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "seq": self._seq,
                "writers": [w.state() for w in self.writers.values()],
                "history": list(self.history),
                "source_state": self._source_state,
            }

    def _publish(self, message: dict, mutate: Optional[Callable[[], None]] = None) -> None:
        # state change and seq number move together, so a snapshot is never half a message
        with self._lock:
            if mutate is not None:
                mutate()
            self._publish_locked(message)

    def _publish_locked(self, message: dict) -> None:
        self._seq += 1
        message["seq"] = self._seq
        self._publish_cb(message)

    # ---- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        next_stats = time.monotonic() + self.config.stats_period_s
        try:
            while not self._stop.is_set():
                self._do_commands()
                self._poll_writers()
                if self.device is not None and self.device.source.ended and not self.source_ended.is_set():
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
            for writer in self._writer_list():
                writer.source.close()  # a browser source refuses pushes from now on

            def mutate():
                self._source_state = "failed"

            self._publish({"type": "source", "state": "failed", "detail": repr(exc)}, mutate)
            raise

    def _poll_writers(self) -> None:
        """One round: wait for pen samples, feed every writer's stream, run the new frames of all
        of them through the model in one batched call, then report each writer's rows."""
        if self.device is not None:  # its source blocks in read() until samples come
            self.device.live.poll(self.config.poll_s)
            return
        if self._wake.wait(self.config.poll_s):
            self._wake.clear()
        writers = self._writer_list()
        for writer in writers:
            if writer.live.poll(0, decode=False):
                writer.last_active = time.monotonic()
        waiting = [w.live.stream for w in writers if self.recognizer.is_ready(w.live.stream)]
        if waiting:
            started = time.perf_counter()
            self.recognizer.decode_streams(waiting)
            self.batch_decode_seconds += time.perf_counter() - started
        for writer in writers:
            writer.live.flush()

    def _release_commands(self) -> None:
        while True:
            try:
                self._commands.get_nowait()[2].set()
            except queue.Empty:
                return

    def _do_commands(self) -> None:
        while True:
            try:
                command, writer_id, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                writers = self._writer_list()
                # what the sources delivered before the command belongs before it: the page pushes
                # its pen samples first, then asks for the end of the line
                for writer in writers:
                    while writer.live.poll(0):
                        pass
                if command == "clear":
                    self._clear(writers)
                elif command == "finish":
                    chosen = [w for w in writers if w.id == writer_id] if writer_id is not None else writers[:1]
                    for writer in chosen:
                        writer.live.finish()
            finally:
                done.set()

    def _on_rows(self, writer: Writer, rows: np.ndarray) -> None:
        """Rows went into ``writer``'s current line (after a reset: the next line's first rows)."""
        live = writer.live
        result = self.recognizer.get_result(live.stream)
        chars = chars_to_json(result)
        cells = self._cell_column(live.stream)
        row_list = [[float(v) for v in r] for r in rows]
        first = len(writer.rows)

        def mutate():
            writer.rows.extend(row_list)
            writer.hypothesis = {"text": result.text, "chars": chars}
            if cells is not None:
                writer.cells.append(cells)

        self._publish({"type": "update", "writer": writer.id, "line": writer.line, "first_sample": first,
                       "rows": row_list, "arrived_ms": live.arrived_wall * 1000.0,
                       "recognition_ms": round(1000.0 * live.report_delay_s, 1),
                       "text": result.text, "chars": chars, "cells": cells}, mutate)

    def _cell_column(self, stream) -> Optional[dict]:
        if not self.memory_cells:
            return None
        values = np.asarray(stream.c)[-1, 0, self.cell_indices]
        # frames 0: the features still hold the line's first ink back (its size is not known yet)
        return {"sample": int(stream.samples), "frames": int(stream.frames_decoded),
                "values": [round(float(v), 3) for v in values]}

    def _on_final(self, writer: Writer, result: RecognitionResult, count: int) -> None:
        """``writer``'s line is over: keep it; rows after ``count`` come again in the next ``update``."""
        line = {"line": writer.line, "writer": writer.id, "label": writer.label, "text": result.text,
                "chars": chars_to_json(result), "rows": writer.rows[:count]}

        if self.config.save_dir is not None and line["rows"]:
            self._save_line(line)

        def mutate():
            self.history.append(line)
            self._trim_history()
            writer.line = self._new_line_id()
            writer.rows = []
            writer.hypothesis = {"text": "", "chars": []}
            writer.cells = []

        self._publish({"type": "final", "writer": writer.id, "label": writer.label, "line": line["line"],
                       "text": result.text, "chars": line["chars"],
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
            self.history.append({"line": number, "writer": None, "label": ink.writer or "", "text": ink.text or "",
                                 "chars": [], "rows": ink.to_points().tolist()})
            self._next_line = max(self._next_line, number + 1)
        self._trim_history()

    def _trim_history(self) -> None:
        """At most ``history_lines`` lines and ``history_rows`` rows kept: the oldest go first."""
        del self.history[:-self.config.history_lines]
        rows = sum(len(kept["rows"]) for kept in self.history)
        while rows > self.config.history_rows and len(self.history) > 1:
            rows -= len(self.history.pop(0)["rows"])

    def _save_line(self, line: dict) -> None:
        """Write ``line`` as ``line-NNNNNN.inkml`` (via a temporary file and a rename, so a crash
        never leaves half a file), its writer's label as the InkML writer; a failure (disk full)
        is counted and said once per line."""
        from runtime.formats.inkml import write_inkml
        from runtime.ink import Ink

        folder = Path(self.config.save_dir)
        path = folder / f"line-{line['line']:06d}.inkml"
        tmp = folder / f".{path.name}.tmp"
        try:
            write_inkml(tmp, Ink.from_points(np.asarray(line["rows"], dtype=np.float64), text=line["text"],
                                             id=path.stem, writer=line["label"]))
            os.replace(tmp, path)
        except (OSError, ValueError) as exc:
            self.save_errors += 1
            print(f"inkstream: could not save line {line['line']} to {path}: {exc}", file=sys.stderr, flush=True)

    def _clear(self, writers: list[Writer]) -> None:
        for writer in writers:
            writer.live.clear()

        def mutate():
            self.history = []
            for writer in writers:
                writer.line = self._new_line_id()
                writer.rows = []
                writer.hypothesis = {"text": "", "chars": []}
                writer.cells = []

        self._publish({"type": "clear", "lines": {str(w.id): w.line for w in writers}}, mutate)

    def _on_source_ended(self) -> None:
        self.device.live.end_line()

        def mutate():
            self._source_state = "ended"

        self._publish({"type": "source", "state": "ended"}, mutate)
        self.source_ended.set()

    def _on_event(self, event) -> None:
        def mutate(state=event.state):
            self._source_state = state

        self._publish({"type": "source", "state": event.state, "detail": event.detail}, mutate)

    def _publish_stats(self, now: float) -> None:
        writers = self._writer_list()
        samples = sum(w.live.samples_received for w in writers)
        decode = self.batch_decode_seconds + sum(w.live.decode_seconds for w in writers)
        ink_total = sum(w.live.ink_seconds for w in writers)
        samples0, compute0, ink0 = self._win_base
        elapsed = max(now - self._win_start, 1e-6)
        ink = ink_total - ink0
        rtf = (decode - compute0) / ink if ink > 0 else None
        errors = self.device.source.errors if self.device is not None else ErrorCounters()
        for writer in writers if self.device is None else []:  # pages: samples dropped when behind
            for name, count in writer.source.errors.extra.items():
                errors.extra[name] = errors.extra.get(name, 0) + count
        message = {
            "type": "stats",
            "samples_per_s": round((samples - samples0) / elapsed, 1),
            "rtf": None if rtf is None else round(rtf, 4),
            "serial_errors": _errors_to_json(errors),
            "samples_total": samples,
            "writers": len(writers),
            "source_state": self._source_state,
        }
        self._win_start, self._win_base = now, (samples, decode, ink_total)
        self._publish(message)


def finite_number(value) -> bool:
    """A JSON number a float can hold (an integer too large for a float is not one)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
