"""``inkstream demo``: the whole path on a fresh machine, no hardware needed.

An emulated tablet (:class:`firmware_bridge.emulator.EmulatedTablet`, inkstream protocol) on a
pseudo-terminal replays the shipped UNIPEN samples (``runtime/samples/``); the bridge's serial
reader thread reads the pty exactly as it would read a real device; the recognizer reads the
samples as they come. By default the live page is served (and opened in a browser when there is
one); ``--no-ui`` prints the growing hypothesis in the terminal instead and exits once the
samples have been replayed (unless ``--loop``).
"""
from __future__ import annotations

import bisect
import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Optional, TextIO

from runtime.app.config import AppConfig, add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.app.live import LiveRecognition, error_counts, serial_error_count
from runtime.app.sources import DEMO_SAMPLES, open_pen_source
from runtime.app.terminal import LineOutput, TerminalView
from runtime.metrics import ErrorCounter
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


class TruthTeller:
    """The demo knows what each replayed sample says: once a sample's lines are all in, print its
    truth beside what was read, and the running CER over the samples so far. A line belongs to the
    sample its first row came from (the emulator replays them in order, one after the other)."""

    def __init__(self, texts: list, lengths: list, out: TextIO):
        self.texts, self.out = texts, out
        self.ends = list(itertools.accumulate(lengths))  # row index where each sample ends
        self.rows = 0
        self.read: dict = {}  # sample index -> the lines read from it
        self.told = 0  # samples whose truth was printed
        self.counter = ErrorCounter()

    def line(self, line: dict) -> None:
        sample = bisect.bisect_right(self.ends, self.rows)
        self.rows += len(line["rows"])
        self.read.setdefault(sample, []).append(line["text"])
        self._tell(upto=bisect.bisect_right(self.ends, self.rows))  # the samples whose rows are all in

    def finish(self) -> None:
        self._tell(upto=len(self.texts))

    def _tell(self, upto: int) -> None:
        while self.told < min(upto, len(self.texts)):
            ref, hyp = self.texts[self.told], " ".join(t for t in self.read.get(self.told, []) if t)
            self.counter.add(ref, hyp)
            self.out.write(f"    truth: {ref!r}, read {hyp!r}  (running CER {100 * self.counter.cer:.1f} % "
                           f"over {self.counter.samples} samples)\n")
            self.told += 1
        self.out.flush()


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
    truth = TruthTeller([ink.text for ink in live_source.inks], [ink.num_points for ink in live_source.inks], out)
    final = live.on_final

    def final_with_truth(result, num_samples):
        final(result, num_samples)
        truth.line(view.lines[-1])

    live.on_final = final_with_truth
    try:
        while not live_source.replay_over(live.samples_received):
            live.poll(POLL_S)
        live.end_line()
        truth.finish()
    finally:
        live_source.close()
    errors = live_source.source.errors
    result = DemoResult(
        lines=view.lines, rows_expected=rows_expected, rows_received=live.rows_received,
        samples_sent=tablet.stats.samples_sent, samples_received=live.samples_received,
        serial_errors=error_counts(errors), bytes_dropped_unread=tablet.stats.bytes_dropped_unread,
        bytes_corrupted=tablet.stats.bytes_corrupted)
    out.write(f"{PROG}: done, {live.samples_received}/{tablet.stats.samples_sent} pen samples received, "
              f"{len(result.lines)} lines, serial errors: {serial_error_count(errors)}; CER "
              f"{100 * truth.counter.cer:.1f} % against what the {truth.counter.samples} samples say\n")
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
    parser.add_argument("--loop", action="store_true",
                        help="with --no-ui: replay the samples again and again (the page always does)")
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

    # the page never ends silently: the tablet replays the samples again and again
    server = open_server(args, f"emulator:{args.samples}", loop=True, prog=PROG)
    if server is None:
        return 2
    return serve_until_interrupted(server, open_browser=not args.no_browser and _can_open_browser(), prog=PROG)
