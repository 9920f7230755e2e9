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
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO

from runtime.app.config import AppConfig, add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.app.live import LiveRecognition, error_counts, serial_error_count
from runtime.app.sources import DEMO_SAMPLES, open_pen_source
from runtime.app.terminal import LineOutput, TerminalView
from runtime.recognizer import StreamingRecognizer

__all__ = ["DemoResult", "run_terminal", "configure", "run"]

PROG = "inkstream demo"
POLL_S = 0.05


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


def run_terminal(samples_path: str = str(DEMO_SAMPLES), speed: float = 1.0, loop: bool = False,
                 out: TextIO = sys.stdout, recognizer: Optional[StreamingRecognizer] = None,
                 config: AppConfig = AppConfig()) -> DemoResult:
    """Replay ``samples_path`` through the emulated tablet and the real serial path, printing the
    hypothesis to ``out`` (the terminal view of ``inkstream recognize``). Returns when the replay
    is over (never with ``loop``: Ctrl-C)."""
    recognizer = recognizer or config.build_recognizer()
    live_source = open_pen_source(f"emulator:{samples_path}", speed=speed, loop=loop)
    tablet = live_source.tablet
    rows_expected = sum(ink.num_points for ink in live_source.inks)
    refs = ", ".join(repr(ink.text) for ink in live_source.inks)
    out.write(f"{PROG}: replaying {len(live_source.inks)} UNIPEN samples ({refs}) at {speed:g}x "
              f"from an emulated tablet on {tablet.path}; Ctrl-C stops\n")
    out.flush()
    view = TerminalView(LineOutput(out, tty=getattr(out, "isatty", lambda: False)()), name=live_source.name,
                        log=out, prog=PROG)
    live = view.attach(LiveRecognition(live_source.source, recognizer, clock_speed=speed))
    try:
        while not live_source.replay_over(live.samples_received):
            live.poll(POLL_S)
        live.end_line()
    finally:
        live_source.close()
    errors = live_source.source.errors
    result = DemoResult(
        lines=view.lines, rows_expected=rows_expected, rows_received=live.rows_received,
        samples_sent=tablet.stats.samples_sent, samples_received=live.samples_received,
        serial_errors=error_counts(errors), bytes_dropped_unread=tablet.stats.bytes_dropped_unread,
        bytes_corrupted=tablet.stats.bytes_corrupted)
    out.write(f"{PROG}: done, {live.samples_received}/{tablet.stats.samples_sent} pen samples received, "
              f"{len(result.lines)} lines, serial errors: {serial_error_count(errors)}\n")
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
    from runtime.app.ui.server import add_server_arguments

    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (2: twice as fast as written)")
    parser.add_argument("--loop", action="store_true", help="replay the samples again and again")
    parser.add_argument("--no-ui", action="store_true", help="print the hypothesis in the terminal instead of serving the page")
    parser.add_argument("--no-browser", action="store_true", help="serve the page but do not open a browser")
    parser.add_argument("--samples", default=str(DEMO_SAMPLES), help="ink to replay (corpus .npz or ink file)")
    add_server_arguments(parser)
    add_recognizer_arguments(parser)


def run(args) -> int:
    if args.no_ui:
        try:
            run_terminal(args.samples, speed=args.speed, loop=args.loop, config=config_from_args(args))
        except KeyboardInterrupt:
            print(f"\n{PROG}: stopped")
        except USER_ERRORS as exc:  # the model, the options, the samples, the pty
            return fail(PROG, exc)
        return 0
    from runtime.app.ui.server import open_server, serve_until_interrupted

    server = open_server(args, f"emulator:{args.samples}", loop=args.loop, prog=PROG)
    if server is None:
        return 2
    return serve_until_interrupted(server, open_browser=not args.no_browser and _can_open_browser(), prog=PROG)
