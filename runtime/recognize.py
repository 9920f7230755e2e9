"""``inkstream recognize``: live recognition of a pen source in the terminal.

The source is a bridge spec (:func:`firmware_bridge.sources.open_source`): ``serial:PATH``
(inkstream protocol), ``isdv4:PATH`` (Wacom ISDV4) or ``file:PATH`` (ink replayed; any file
:func:`runtime.ink_io.read_ink_file` reads, inks one after the other with a pause between them).
Pen samples become ``x, y, t, pen_up_after`` rows (:class:`StrokeRowAssembler`), go into one
:class:`InkStream`, and are decoded after every burst. A line ends at an endpoint: a pen-up pause
(measured on the source's clock, which keeps running while nothing arrives), a line break, a
lost connection, or the end of input; its final text is printed and the stream is reset.

Output: on a terminal one updating line (``\\r``) and the final text per line; otherwise
``~ hypothesis`` lines whenever the hypothesis changes and the final text as a plain line; with
``--json`` one object per line: ``text``, ``final``, ``line``, ``rows``, ``samples``, ``serial_errors``,
``t``. Connection changes go to stderr. Ctrl-C (or SIGTERM, or ``--max-seconds``) ends the
current line and exits 0; so does the end of a file source.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import signal
import sys
import threading
import time
from typing import Optional, TextIO

import numpy as np

from firmware_bridge.reader import DISCONNECTED, OPEN_FAILED, STOPPED
from firmware_bridge.samples import ErrorCounters, PenSample, StrokeRowAssembler
from firmware_bridge.sources import PenSource, open_source
from runtime.recognizer import EndpointConfig, StreamingRecognizer

__all__ = ["LineOutput", "LiveRecognition", "load_points", "serial_error_count", "configure", "run"]

POLL_S = 0.05  # longest wait for samples: how quickly a pause, Ctrl-C or --max-seconds is noticed
PROG = "inkstream recognize"


def serial_error_count(errors: ErrorCounters) -> int:
    """Everything a decoder skipped or found missing: bad frames, lost frames, stray bytes."""
    return errors.total_bad_frames() + errors.lost + errors.stray_bytes


def load_points(path: str, gap_s: float = 2.5) -> tuple:
    """``file:`` loader for the bridge: every ink of ``path`` (:func:`runtime.ink_io.read_ink_file`),
    one after the other, ``gap_s`` seconds apart; returns ``(points, units_per_mm)``."""
    from runtime.ink_io import read_ink_file

    inks = read_ink_file(path)
    parts, t0 = [], 0.0
    for ink in inks:
        p = ink.to_points()
        if not len(p):
            continue
        p[:, 2] += t0 - p[0, 2]
        parts.append(p)
        t0 = float(p[:, 2].max()) + gap_s
    if not parts:
        raise ValueError(f"{path}: no ink in the file")
    upm = inks[0].units_per_mm
    same = all(i.units_per_mm == upm or (math.isnan(i.units_per_mm) and math.isnan(upm)) for i in inks)
    return np.concatenate(parts), (upm if same else math.nan)


class LineOutput:
    """Prints hypotheses and final lines: ``json``, a terminal's updating line, or plain lines."""

    def __init__(self, out: TextIO, json_lines: bool = False, tty: Optional[bool] = None):
        self.out = out
        self.json = json_lines
        self.tty = (out.isatty() if tty is None else tty) and not json_lines
        self._shown = False  # a partial line is on the terminal

    def partial(self, text: str, fields: dict) -> None:
        if self.json:
            self._json(text, False, fields)
        elif self.tty:
            width = max(shutil.get_terminal_size().columns - 1, 8)
            self.out.write("\r\x1b[K" + text[-width:])
            self._shown = True
        else:
            self.out.write(f"~ {text}\n")
        self.out.flush()

    def final(self, text: str, fields: dict) -> None:
        if self.json:
            self._json(text, True, fields)
        else:
            self.out.write(("\r\x1b[K" if self._shown else "") + text + "\n")
            self._shown = False
        self.out.flush()

    def _json(self, text: str, final: bool, fields: dict) -> None:
        self.out.write(json.dumps({"text": text, "final": final, **fields}) + "\n")


class LiveRecognition:
    """One pen source, one stream: :meth:`poll` reads what arrived, decodes, prints; :meth:`finish`
    ends the current line. ``clock_speed`` is how much faster than the wall clock the source's
    time runs (a replay or emulator at ``--speed X``; a real pen: 1), used to tell a pause while
    nothing arrives; too low only makes pauses end later."""

    def __init__(self, source: PenSource, recognizer: StreamingRecognizer, output: LineOutput,
                 clock_speed: float = 1.0, log: TextIO = sys.stderr, name: str = "source"):
        if not clock_speed > 0:
            raise ValueError(f"clock_speed must be > 0, got {clock_speed}")
        self.source = source
        self.recognizer = recognizer
        self.stream = recognizer.create_stream()
        self.output = output
        self.clock_speed = clock_speed
        self.log = log
        self.name = name
        self.assembler = StrokeRowAssembler()
        self.samples_received = 0
        self.lines = 0
        self._started = time.monotonic()
        self._last_arrival = self._started
        self._shown_text = ""

    # ---- the loop body ---------------------------------------------------------------------
    def poll(self, timeout: float = POLL_S) -> None:
        """Wait up to ``timeout`` for samples, recognise them, report connection changes, and end
        the line when the pen has paused long enough."""
        samples = self.source.read(timeout=timeout)
        quiet_since = time.monotonic()
        if not samples:  # a read may come back empty late (a busy machine): is anything due now?
            samples = self.source.read(timeout=0)
        self._on_samples(samples)
        self._drain_events()
        stream = self.stream
        if not samples and stream.samples and stream.pen_up_since is not None:
            # Nothing was due at quiet_since, so the source's clock then is at least this much and
            # below the next sample's time: the pause is never overestimated, whatever the load.
            now = stream.last_t + (quiet_since - self._last_arrival) * self.clock_speed
            if self.recognizer.is_endpoint(stream, now=now):
                self.finish()

    def end_of_input(self) -> None:
        """No more samples for now (source ended or lost, or we stop): close an open stroke and
        end the line."""
        rows = self.assembler.pen_lifted()
        if rows:
            self._feed(np.asarray(rows, dtype=np.float64))
        self.finish()

    def finish(self) -> None:
        """End the current line: print its final text and reset the stream."""
        stream = self.stream
        if not stream.samples and stream.held_back is None:
            return
        stream.input_finished()
        self._decode()
        result = self.recognizer.get_result(stream)
        self.output.final(result.text, self._fields(rows=stream.samples))
        self.lines += 1
        self.recognizer.reset(stream)  # feeds back rows held for the next line, if any
        self._shown_text = ""
        self._decode()
        self._show_partial()

    # ---- internals ---------------------------------------------------------------------------
    def _on_samples(self, samples: list[PenSample]) -> None:
        if not samples:
            return
        self._last_arrival = time.monotonic()
        self.samples_received += len(samples)
        rows = self.assembler.accept_many(samples)
        if rows:
            self._feed(np.asarray(rows, dtype=np.float64))
            self._show_partial()

    def _feed(self, rows: np.ndarray) -> None:
        # A burst may hold a whole pause (a file replayed at once, a host that fell behind): cut it
        # at every stroke start that follows a pause, so lines end as they would live.
        pause = self.recognizer.endpoint.pause_s
        cuts = [i for i in range(1, len(rows)) if rows[i - 1, 3] > 0.5 and rows[i, 2] - rows[i - 1, 2] >= pause]
        for chunk in np.split(rows, cuts):
            if self.recognizer.is_endpoint(self.stream, now=float(chunk[0, 2])):
                self.finish()
            self.stream.accept_samples(chunk)
            self._decode()
            if self.stream.held_back is not None:  # the writer went to a new line
                self.finish()

    def _decode(self) -> None:
        while self.recognizer.is_ready(self.stream):
            self.recognizer.decode_stream(self.stream)

    def _show_partial(self) -> None:
        text = self.recognizer.get_result(self.stream).text
        if text != self._shown_text:
            self._shown_text = text
            self.output.partial(text, self._fields(rows=self.stream.samples))

    def _fields(self, rows: int) -> dict:
        return {"line": self.lines, "rows": rows, "samples": self.samples_received,
                "serial_errors": serial_error_count(self.source.errors),
                "t": round(time.monotonic() - self._started, 3)}

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.source.events.get_nowait()
            except queue.Empty:
                return
            if event.attempt > (1 if event.state == OPEN_FAILED else 0):
                continue  # one message per outage, not one per retry
            detail = f" ({event.detail})" if event.detail else ""
            print(f"{PROG}: {self.name} {event.state}{detail}", file=self.log, flush=True)
            if event.state in (DISCONNECTED, STOPPED):
                # the reader queued every sample (and a pen-left) before it reported the loss
                self._on_samples(self.source.read(timeout=0))
                self.end_of_input()  # the device clock may start over when it comes back


def configure(parser: argparse.ArgumentParser) -> None:
    from runtime.evaluate import add_decoder_arguments

    parser.add_argument("--source", required=True, metavar="SPEC",
                        help="serial:PATH (inkstream protocol), isdv4:PATH (Wacom ISDV4) or file:PATH "
                             "(.npz corpus, .inkml, IAM-OnDB .xml, replayed)")
    parser.add_argument("--json", action="store_true", help="one JSON object per output line")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    add_decoder_arguments(parser)
    parser.add_argument("--pause", type=float, default=EndpointConfig.pause_s, metavar="S",
                        help=f"a pen-up pause of S seconds ends the line (default {EndpointConfig.pause_s})")
    parser.add_argument("--no-line-break", action="store_true", help="do not end a line when the writer starts a new one")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="the source's clock runs X times the wall clock: file replay speed ('inf': all at "
                             "once), or the --speed of an emulated tablet (default 1)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="N", help="stop after N seconds")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")


def run(args) -> int:
    from runtime.evaluate import decoder_options

    if not args.speed > 0:
        print(f"{PROG}: --speed must be > 0, got {args.speed}", file=sys.stderr)
        return 2
    try:
        endpoint = EndpointConfig(pause_s=args.pause, line_break=not args.no_line_break)
        recognizer = StreamingRecognizer(args.model, decoder=args.decoder, endpoint=endpoint, threads=args.threads,
                                         decoder_options=decoder_options(args))
        if args.source.startswith("file:"):
            gap = args.pause + 1.0  # each ink of a file is its own line
            realtime = math.isfinite(args.speed)
            options = dict(realtime=realtime, speed=args.speed) if realtime else {}
            source = open_source(args.source, load_points=lambda p: load_points(p, gap), **options)
        else:
            source = open_source(args.source)
    except (OSError, ValueError) as exc:  # InkFormatError and ModelFileError are ValueErrors
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    live = LiveRecognition(source, recognizer, LineOutput(sys.stdout, json_lines=args.json),
                           clock_speed=args.speed if math.isfinite(args.speed) else 1.0, name=args.source)
    deadline = math.inf if args.max_seconds is None else time.monotonic() + args.max_seconds
    code = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            live.poll()
            if source.ended:
                live.poll(timeout=0)  # events queued with the last samples
                reader = getattr(source, "reader", None)
                if reader is not None:  # a serial reader only ends by giving up or by a bug
                    print(f"{PROG}: {args.source} ended: {reader.failure!r}" if reader.failure else
                          f"{PROG}: {args.source} ended: the reader gave up", file=sys.stderr)
                    code = 1
                break
        live.end_of_input()
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        source.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    errors = source.errors
    counts = {k: v for k, v in {**errors.__dict__, **errors.extra}.items() if k != "extra" and v}
    detail = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""
    print(f"{PROG}: {live.lines} lines from {live.samples_received} pen samples, "
          f"{serial_error_count(errors)} serial errors{detail}", file=sys.stderr)
    return code
