"""``inkstream recognize``: live recognition of a pen source in the terminal.

The source is a bridge spec (:func:`firmware_bridge.sources.open_source`): ``serial:PATH``
(inkstream protocol), ``isdv4:PATH`` (Wacom ISDV4) or ``file:PATH`` (ink replayed; any file
:func:`runtime.ink_io.read_ink_file` reads, inks one after the other with a pause between them).
Recognition is :class:`runtime.live.LiveRecognition` (the web UI runs the same loop): a line
ends at an endpoint (a pen-up pause on the source's clock, a line break, the clock going back,
a lost connection, the end of input); its final text is printed and the stream is reset.

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
import shutil
import signal
import sys
import threading
import time
from typing import Optional, TextIO

from firmware_bridge.reader import OPEN_FAILED
from firmware_bridge.sources import open_source
from runtime.live import LiveRecognition, error_counts, load_points, serial_error_count, setup_error_message
from runtime.recognizer import EndpointConfig, StreamingRecognizer

__all__ = ["LineOutput", "TerminalView", "configure", "run"]

POLL_S = 0.05  # longest wait for samples: how quickly a pause, Ctrl-C or --max-seconds is noticed
PROG = "inkstream recognize"


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


class TerminalView:
    """What a :class:`LiveRecognition` does, on a :class:`LineOutput` (hypotheses when they change,
    final lines) and a log (connection changes, one message per outage)."""

    def __init__(self, output: LineOutput, name: str = "source", log: TextIO = sys.stderr):
        self.output = output
        self.name = name
        self.log = log
        self.live: Optional[LiveRecognition] = None
        self._started = time.monotonic()
        self._shown_text = ""

    def attach(self, live: LiveRecognition) -> LiveRecognition:
        self.live = live
        live.on_partial, live.on_final, live.on_event = self.partial, self.final, self.event
        return live

    def partial(self, rows) -> None:
        live = self.live
        text = live.recognizer.get_result(live.stream).text
        if text != self._shown_text:
            self._shown_text = text
            self.output.partial(text, self._fields(rows=live.stream.samples))

    def final(self, result, num_samples: int) -> None:
        self.output.final(result.text, self._fields(rows=num_samples))
        self._shown_text = ""

    def event(self, event) -> None:
        if event.attempt > (1 if event.state == OPEN_FAILED else 0):
            return  # one message per outage, not one per retry
        detail = f" ({event.detail})" if event.detail else ""
        print(f"{PROG}: {self.name} {event.state}{detail}", file=self.log, flush=True)

    def _fields(self, rows: int) -> dict:
        live = self.live
        return {"line": live.lines, "rows": rows, "samples": live.samples_received,
                "serial_errors": serial_error_count(live.source.errors),
                "t": round(time.monotonic() - self._started, 3)}


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
        print(f"{PROG}: {setup_error_message(exc)}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    live = TerminalView(LineOutput(sys.stdout, json_lines=args.json), name=args.source).attach(
        LiveRecognition(source, recognizer, clock_speed=args.speed if math.isfinite(args.speed) else 1.0))
    deadline = math.inf if args.max_seconds is None else time.monotonic() + args.max_seconds
    code = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            live.poll(POLL_S)
            if source.ended:
                live.poll(timeout=0)  # events queued with the last samples
                reader = getattr(source, "reader", None)
                if reader is not None:  # a serial reader only ends by giving up or by a bug
                    print(f"{PROG}: {args.source} ended: {reader.failure!r}" if reader.failure else
                          f"{PROG}: {args.source} ended: the reader gave up", file=sys.stderr)
                    code = 1
                break
        live.end_line()
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        source.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    errors = source.errors
    counts = error_counts(errors)
    detail = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""
    print(f"{PROG}: {live.lines} lines from {live.samples_received} pen samples, "
          f"{serial_error_count(errors)} serial errors{detail}", file=sys.stderr)
    return code
