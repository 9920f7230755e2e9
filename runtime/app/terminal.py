"""The terminal view of a live recognition: ``inkstream recognize`` and ``inkstream demo --no-ui``.

:class:`LineOutput` prints hypotheses and final lines (a terminal's one updating line, plain
``~ hypothesis`` lines, or JSON objects); :class:`TerminalView` attaches to a
:class:`~runtime.app.live.LiveRecognition`, prints what it does, keeps each final line with the
rows it was read from (``lines``), and reports connection changes once per outage.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Optional, TextIO

import numpy as np

from firmware_bridge.reader import OPEN_FAILED
from runtime.app.live import LiveRecognition, serial_error_count

__all__ = ["LineOutput", "TerminalView"]


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
    final lines) and a log (connection changes, one message per outage). ``lines`` keeps every
    final line as ``{"text", "rows"}`` (the rows it was recognised from)."""

    def __init__(self, output: LineOutput, name: str = "source", log: TextIO = sys.stderr,
                 prog: str = "inkstream"):
        self.output = output
        self.name = name
        self.log = log
        self.prog = prog
        self.live: Optional[LiveRecognition] = None
        self.lines: list = []
        self._rows: list = []  # rows of the current line (and of the next, when a line break held some)
        self._started = time.monotonic()
        self._shown_text = ""

    def attach(self, live: LiveRecognition) -> LiveRecognition:
        self.live = live
        live.on_partial, live.on_final, live.on_event = self.partial, self.final, self.event
        return live

    def partial(self, rows) -> None:
        live = self.live
        self._rows.extend(np.asarray(rows).tolist())
        text = live.recognizer.get_result(live.stream).text
        if text != self._shown_text:
            self._shown_text = text
            self.output.partial(text, self._fields(rows=live.stream.samples))

    def final(self, result, num_samples: int) -> None:
        # rows beyond num_samples were held back for the next line; they come again in partial()
        self.lines.append({"text": result.text, "rows": self._rows[:num_samples]})
        self._rows = []
        self.output.final(result.text, self._fields(rows=num_samples))
        self._shown_text = ""

    def event(self, event) -> None:
        if event.attempt > (1 if event.state == OPEN_FAILED else 0):
            return  # one message per outage, not one per retry
        detail = f" ({event.detail})" if event.detail else ""
        print(f"{self.prog}: {self.name} {event.state}{detail}", file=self.log, flush=True)

    def _fields(self, rows: int) -> dict:
        live = self.live
        return {"line": live.lines, "rows": rows, "samples": live.samples_received,
                "serial_errors": serial_error_count(live.source.errors),
                "t": round(time.monotonic() - self._started, 3)}
