"""Opening a pen source by its spec: the one opener every command uses.

Specs:

* ``serial:PATH``: a tablet speaking the inkstream protocol (:mod:`firmware_bridge.inkstream`);
* ``isdv4:PATH``: a Wacom ISDV4 digitizer;
* ``file:PATH``: ink replayed at the writer's speed (``speed`` times faster; ``inf``: all at
  once), any file :func:`runtime.formats.ink_io.read_ink_file` reads, inks one after the other
  with a pause between them;
* ``emulator`` or ``emulator:PATH``: an emulated inkstream tablet on a pseudo-terminal replaying
  the shipped UNIPEN samples or the ink at PATH, read through the real serial path;
* ``browser``: the live page's own pointer events (only ``serve`` and ``demo`` have a page).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from firmware_bridge.emulator import EmulatedTablet, EmulatorConfig
from firmware_bridge.sources import PenSource, open_source

__all__ = ["DEMO_SAMPLES", "GAP_BETWEEN_INKS_S", "LiveSource", "open_pen_source", "load_points", "SPEC_HELP"]

DEMO_SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "unipen_demo.npz"
GAP_BETWEEN_INKS_S = 2.5  # device seconds between replayed inks: longer than the default endpoint pause
SPEC_HELP = "serial:PATH, isdv4:PATH, file:PATH (ink replayed), emulator[:PATH] or browser (write on the page)"


@dataclass
class LiveSource:
    """An open pen source and what a live session needs to know about it."""

    source: PenSource
    name: str
    clock_speed: float = 1.0  # source time per wall second
    accepts_pen_input: bool = False  # True only for the page itself
    tablet: Optional[EmulatedTablet] = None
    inks: list = field(default_factory=list)  # what the emulator replays
    notes: list = field(default_factory=list)  # what opening it repaired, as messages for the user
    _cleanup: list = field(default_factory=list)
    _last_count: int = -1
    _quiet_since: float = 0.0

    def replay_over(self, samples_received: int, idle_s: float = 2.0) -> bool:
        """For an emulated tablet that does not loop: True once it has sent everything and
        ``samples_received`` says the host has read it all, or nothing more arrived for ``idle_s``
        after its end (lost on the wire: the error counters say so). False for other sources."""
        tablet = self.tablet
        if tablet is None or tablet.config.loop or not tablet.finished.is_set():
            return False
        if samples_received >= tablet.stats.samples_sent:
            return True
        now = time.monotonic()
        if samples_received != self._last_count:
            self._last_count, self._quiet_since = samples_received, now
        return now - self._quiet_since > idle_s

    def close(self) -> None:
        """Close the source and whatever runs behind it (the emulator); safe to call again."""
        self.source.close()
        while self._cleanup:
            self._cleanup.pop()()


def as_page(inks: list) -> list:
    """Inks (``(n, 4)`` points arrays) laid out as a page: each at the left margin, a line below the
    one before (:func:`firmware_bridge.replay.line_tops`), so the endpoint rules see each as a line
    of its own (a pause alone ends none)."""
    import numpy as np

    from firmware_bridge.replay import line_tops

    out = [np.array(p, dtype=np.float64) for p in inks]
    heights = [float(np.ptp(p[:, 1])) if len(p) else 0.0 for p in out]
    for p, top in zip(out, line_tops(heights)):
        if len(p):
            p[:, 0] -= p[:, 0].min()
            p[:, 1] += top - p[:, 1].min()
    return out


def load_points(path: str, gap_s: float = GAP_BETWEEN_INKS_S, notes: Optional[list] = None) -> tuple:
    """The ``file:`` loader: every ink of ``path`` one after the other, ``gap_s`` seconds apart, each
    on a line of its own below the one before; returns ``(points, units_per_mm)``. Time going backwards inside an ink is repaired as the
    feature pipeline does (a running maximum), so a replay does not take each step back for a
    restarted clock; the count goes to ``notes`` (a message for the user) when there is any."""
    import numpy as np

    from runtime.formats.ink_io import read_ink_file

    inks = read_ink_file(path)
    parts, t0, repaired = [], 0.0, 0
    for p in as_page([ink.to_points() for ink in inks]):
        if not len(p):
            continue
        monotone = np.maximum.accumulate(p[:, 2])
        repaired += int(np.count_nonzero(monotone != p[:, 2]))
        p[:, 2] = monotone
        p[:, 2] += t0 - p[0, 2]
        parts.append(p)
        t0 = float(p[:, 2].max()) + gap_s
    if not parts:
        raise ValueError(f"{path}: no ink in the file")
    if repaired and notes is not None:
        notes.append(f"{path}: time went backwards at {repaired} pen samples; repaired by a running maximum")
    upm = inks[0].units_per_mm
    same = all(i.units_per_mm == upm or (math.isnan(i.units_per_mm) and math.isnan(upm)) for i in inks)
    return np.concatenate(parts), (upm if same else math.nan)


def open_pen_source(spec: str, speed: float = 1.0, loop: bool = False, on_event: Optional[Callable] = None,
                    gap_s: float = GAP_BETWEEN_INKS_S, allow_browser: bool = True) -> LiveSource:
    """Open ``spec`` (see the module docstring). ``speed`` and ``loop`` apply to replays; ``gap_s``
    is the pause between the inks of a replayed file or emulator. Raises ``ValueError`` or
    ``OSError`` with a message for the user."""
    if not speed > 0:
        raise ValueError(f"--speed must be > 0, got {speed}")
    scheme, _, path = spec.partition(":")
    if spec == "browser":
        if not allow_browser:
            raise ValueError("the 'browser' source is the live page's pen: use inkstream serve or demo")
        from runtime.app.ui.session import BrowserPenSource

        return LiveSource(BrowserPenSource(), "browser", accepts_pen_input=True)
    if scheme == "emulator":
        from runtime.formats.ink_io import read_ink_file

        if not math.isfinite(speed):
            raise ValueError("an emulated tablet needs a finite --speed")
        inks = [ink for ink in read_ink_file(path or DEMO_SAMPLES) if ink.num_points]
        if not inks:
            raise ValueError(f"{path or DEMO_SAMPLES}: no ink in the file")
        pages = as_page([ink.to_points() for ink in inks])
        tablet = EmulatedTablet([(p, ink.units_per_mm) for p, ink in zip(pages, inks)],
                                EmulatorConfig(protocol="inkstream", speed=speed, loop=loop, gap_between_inks=gap_s))
        try:
            tty = tablet.open()
            tablet.start()
            source = open_source(f"serial:{tty}", on_event=on_event)
        except BaseException:
            tablet.close()
            raise
        return LiveSource(source, f"emulated tablet on {tty}", clock_speed=speed, tablet=tablet, inks=inks,
                          _cleanup=[tablet.close])
    if scheme == "file":
        realtime = math.isfinite(speed)
        options = dict(realtime=True, speed=speed) if realtime else {}
        notes: list = []
        source = open_source(spec, load_points=lambda p: load_points(p, gap_s, notes), **options)
        return LiveSource(source, spec, clock_speed=speed if realtime else 1.0, notes=notes)
    if scheme in ("serial", "isdv4"):
        return LiveSource(open_source(spec, on_event=on_event), spec)
    raise ValueError(f"unknown pen source {spec!r}: use {SPEC_HELP}")
