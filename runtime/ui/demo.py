"""``inkstream demo``: the whole path on a fresh machine, no hardware needed.

An emulated tablet (:class:`firmware_bridge.emulator.EmulatedTablet`, inkstream protocol) on a
pseudo-terminal replays the shipped UNIPEN samples (``runtime/samples/``); the bridge's serial
reader thread reads the pty exactly as it would read a real device; the recognizer reads the
samples as they come. By default the live page is served (and opened in a browser when there is
one); ``--no-ui`` prints the growing hypothesis in the terminal instead and exits once the
samples have been replayed (unless ``--loop``).
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO

from runtime.live import error_counts, serial_error_count, setup_error_message
from runtime.recognizer import DEFAULT_DECODER, StreamingRecognizer
from runtime.ui.sources import DEMO_SAMPLES, open_live_source
from runtime.ui.session import RecognitionSession, SessionConfig

__all__ = ["DemoResult", "run_terminal", "configure", "run"]

IDLE_GIVE_UP_S = 2.0  # after the tablet has finished: wait this long for stragglers, then end


@dataclass
class DemoResult:
    """What a terminal demo saw: final lines (``text``, ``rows`` as received), counts, errors."""

    lines: list = field(default_factory=list)
    rows_expected: int = 0
    rows_received: int = 0
    samples_sent: int = 0
    samples_received: int = 0
    serial_errors: dict = field(default_factory=dict)
    bytes_dropped_unread: int = 0
    bytes_corrupted: int = 0


class TerminalPrinter:
    """Prints the growing hypothesis on one rewritten progress line and each final line below."""

    def __init__(self, out: TextIO, rows_expected: int, interactive: bool):
        self.out = out
        self.rows_expected = max(rows_expected, 1)
        self.interactive = interactive
        self.rows = 0
        self.lines = 0
        self._lock = threading.Lock()
        self._width = shutil.get_terminal_size((100, 20)).columns

    def __call__(self, message: dict) -> None:
        with self._lock:
            kind = message["type"]
            if kind == "update":
                self.rows += len(message["rows"])
                if self.interactive:
                    pct = min(100.0, 100.0 * self.rows / self.rows_expected)
                    status = f"[{pct:5.1f}%] line {self.lines + 1}: {message['text']}"
                    self.out.write("\r" + status[: self._width - 1].ljust(self._width - 1))
                    self.out.flush()
            elif kind == "final":
                self.lines += 1
                clear = "\r" + " " * (self._width - 1) + "\r" if self.interactive else ""
                self.out.write(f"{clear}line {self.lines}: {message['text']}\n")
                self.out.flush()
            elif kind == "source" and message["state"] not in ("connecting", "connected"):
                self.out.write(f"\nsource {message['state']} {message.get('detail', '')}\n")

    def progress(self) -> str:
        return f"{self.rows}/{self.rows_expected} pen samples ({100.0 * self.rows / self.rows_expected:.0f}%)"


def run_terminal(samples_path: str = str(DEMO_SAMPLES), speed: float = 1.0, loop: bool = False,
                 model: Optional[str] = None, out: TextIO = sys.stdout,
                 recognizer: Optional[StreamingRecognizer] = None, decoder: str = DEFAULT_DECODER,
                 decoder_options: Optional[dict] = None) -> DemoResult:
    """Replay ``samples_path`` through the emulated tablet and the real serial path, printing the
    hypothesis to ``out``. Returns when the replay is over (never with ``loop``: Ctrl-C)."""
    recognizer = recognizer or StreamingRecognizer(model, decoder=decoder, decoder_options=decoder_options)
    live = open_live_source(f"emulator:{samples_path}", speed=speed, loop=loop)
    rows_expected = sum(ink.num_points for ink in live.inks)
    printer = TerminalPrinter(out, rows_expected, interactive=getattr(out, "isatty", lambda: False)())
    session = RecognitionSession(live.source, recognizer, printer, SessionConfig(clock_speed=speed), live.name)
    refs = ", ".join(repr(ink.text) for ink in live.inks)
    out.write(f"inkstream demo: replaying {len(live.inks)} UNIPEN samples ({refs}) at {speed:g}x "
              f"from an emulated tablet on {live.tablet.path}\n")
    out.flush()
    session.start()
    try:
        tablet = live.tablet
        while not tablet.finished.wait(0.1):
            pass
        tablet.drain(timeout=5.0)
        # the host has read every byte; wait until the session has taken every sample
        last, quiet_since = -1, time.monotonic()
        while session.samples_received < tablet.stats.samples_sent:
            if session.samples_received != last:
                last, quiet_since = session.samples_received, time.monotonic()
            elif time.monotonic() - quiet_since > IDLE_GIVE_UP_S:
                break  # some were lost on the wire; the error counters say so
            time.sleep(0.02)
        session.request_finish_line().wait(5.0)
    finally:
        session.close()
        live.close()
    errors = live.source.errors
    result = DemoResult(
        lines=[{"text": line["text"], "rows": line["rows"]} for line in session.history],
        rows_expected=rows_expected, rows_received=session.rows_received,
        samples_sent=live.tablet.stats.samples_sent, samples_received=session.samples_received,
        serial_errors=error_counts(errors),
        bytes_dropped_unread=live.tablet.stats.bytes_dropped_unread,
        bytes_corrupted=live.tablet.stats.bytes_corrupted)
    out.write(f"done: {printer.progress()} received, {len(result.lines)} lines, "
              f"serial errors: {serial_error_count(errors)}\n")
    out.flush()
    return result


def _can_open_browser() -> bool:
    # On Linux without a display, webbrowser would pick a text browser and take the terminal.
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        webbrowser.get()
        return True
    except webbrowser.Error:
        return False


def configure(parser) -> None:
    from runtime.ui.server import add_server_arguments

    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (2: twice as fast as written)")
    parser.add_argument("--loop", action="store_true", help="replay the samples again and again")
    parser.add_argument("--no-ui", action="store_true", help="print the hypothesis in the terminal instead of serving the page")
    parser.add_argument("--no-browser", action="store_true", help="serve the page but do not open a browser")
    parser.add_argument("--samples", default=str(DEMO_SAMPLES), help="ink to replay (corpus .npz or ink file)")
    add_server_arguments(parser)


def run(args) -> int:
    if not args.speed > 0:
        raise SystemExit(f"inkstream demo: --speed must be > 0, got {args.speed}")
    if args.no_ui:
        try:
            from runtime.evaluate import decoder_options

            run_terminal(args.samples, speed=args.speed, loop=args.loop, model=args.model, decoder=args.decoder,
                         decoder_options=decoder_options(args))
        except KeyboardInterrupt:
            print("\ninkstream demo: stopped")
        except (OSError, ValueError) as exc:  # the model, the samples, the pty
            print(f"inkstream demo: {setup_error_message(exc)}", file=sys.stderr)
            return 2
        return 0
    from runtime.ui.server import open_server, serve_until_interrupted

    server = open_server(args, f"emulator:{args.samples}", loop=args.loop, prog="inkstream demo")
    if server is None:
        return 2
    return serve_until_interrupted(server, open_browser=not args.no_browser and _can_open_browser(),
                                   prog="inkstream demo")
