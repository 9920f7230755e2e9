"""``inkstream recognize``: live recognition of a pen source in the terminal.

The source is a pen-source spec (:func:`runtime.app.sources.open_pen_source`): ``serial:PATH``
(inkstream protocol), ``isdv4:PATH`` (Wacom ISDV4), ``file:PATH`` (ink replayed; any file
:func:`runtime.formats.ink_io.read_ink_file` reads, inks one after the other with a pause between
them) or ``emulator[:PATH]`` (an emulated tablet on a pty, ended when its replay is over).
Recognition is :class:`runtime.app.live.LiveRecognition` (the web UI runs the same loop): a line
ends at an endpoint (the writer starts a new line, a long pen-up pause on the source's clock, the
clock going back, a lost connection, the end of input: see :class:`runtime.recognizer.EndpointConfig`);
its final text is printed and the stream is reset.

Output: on a terminal one updating line (``\\r``) and the final text per line; otherwise
``~ hypothesis`` lines whenever the hypothesis changes and the final text as a plain line; with
``--json`` one object per line: ``text``, ``final``, ``line``, ``rows``, ``samples``, ``serial_errors``,
``t``. Connection changes go to stderr. Ctrl-C (or SIGTERM, or ``--max-seconds``) ends the
current line and exits 0; so does the end of a file source or of an emulator's replay.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time

from runtime.app.config import add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.app.live import LiveRecognition, error_counts, serial_error_count
from runtime.app.sources import open_pen_source
from runtime.app.terminal import LineOutput, TerminalView

__all__ = ["configure", "run"]

POLL_S = 0.05  # longest wait for samples: how quickly a pause, Ctrl-C or --max-seconds is noticed
PROG = "inkstream recognize"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, metavar="SPEC",
                        help="serial:PATH (inkstream protocol), isdv4:PATH (Wacom ISDV4), file:PATH "
                             "(.npz corpus, .inkml, IAM-OnDB .xml, replayed) or emulator[:PATH]")
    parser.add_argument("--json", action="store_true", help="one JSON object per output line")
    add_recognizer_arguments(parser)
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="the source's clock runs X times the wall clock: file replay speed ('inf': all at "
                             "once), or the --speed of an emulated tablet (default 1)")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="N", help="stop after N seconds")


def run(args) -> int:
    try:
        config = config_from_args(args)
        recognizer = config.build_recognizer()
        # a replay's inks are laid out one below the other: each is a line of its own
        live_source = open_pen_source(args.source, speed=args.speed, allow_browser=False)
    except USER_ERRORS as exc:
        return fail(PROG, exc)
    for note in live_source.notes:
        print(f"{PROG}: {note}", file=sys.stderr, flush=True)
    source = live_source.source

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    live = TerminalView(LineOutput(sys.stdout, json_lines=args.json), name=args.source, prog=PROG).attach(
        LiveRecognition(source, recognizer, clock_speed=live_source.clock_speed))
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
                          f"{PROG}: {args.source} ended: {reader.gave_up or 'the reader gave up'}", file=sys.stderr)
                    code = 1
                break
            if live_source.replay_over(live.samples_received):
                break  # an emulated tablet that has replayed everything
        live.end_line()
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        live_source.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    errors = source.errors
    counts = error_counts(errors)
    detail = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""
    print(f"{PROG}: {live.lines} lines from {live.samples_received} pen samples, "
          f"{serial_error_count(errors)} serial errors{detail}", file=sys.stderr)
    return code
