"""Opening the pen source a live session reads: bridge specs, the page itself, or the emulator.

Specs: ``serial:PATH``, ``isdv4:PATH``, ``file:PATH`` (handled by
:func:`firmware_bridge.sources.open_source`, with the runtime's ink loader), ``browser`` (the
page's pointer events), ``emulator`` or ``emulator:PATH`` (an emulated inkstream tablet on a pty
replaying the shipped UNIPEN samples or the ink at PATH, read through the real serial path).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from firmware_bridge.emulator import EmulatedTablet, EmulatorConfig
from firmware_bridge.sources import PenSource, open_source
from runtime.ink import Ink
from runtime.live import GAP_BETWEEN_INKS_S, load_points
from runtime.ui.session import BrowserPenSource

__all__ = ["DEMO_SAMPLES", "LiveSource", "open_live_source", "load_inks", "load_points"]

DEMO_SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "unipen_demo.npz"


@dataclass
class LiveSource:
    """An open pen source and what the session needs to know about it."""

    source: PenSource
    name: str
    clock_speed: float = 1.0  # source time per wall second
    accepts_pen_input: bool = False  # True only for the page itself
    tablet: Optional[EmulatedTablet] = None
    inks: list = field(default_factory=list)  # what the emulator replays
    _cleanup: list = field(default_factory=list)

    def close(self) -> None:
        """Close the source and whatever runs behind it (the emulator); safe to call again."""
        self.source.close()
        while self._cleanup:
            self._cleanup.pop()()


def load_inks(path: str | Path) -> list[Ink]:
    """Inks from a corpus ``.npz`` or any ink file the runtime reads."""
    from runtime.ink_io import read_ink_file

    return read_ink_file(path)


def open_live_source(spec: str, speed: float = 1.0, loop: bool = False,
                     on_event: Optional[Callable] = None) -> LiveSource:
    """Open ``spec`` (see the module docstring). ``speed`` and ``loop`` apply to replays."""
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if spec == "browser":
        return LiveSource(BrowserPenSource(), "browser", accepts_pen_input=True)
    scheme, _, path = spec.partition(":")
    if scheme == "emulator":
        inks = [ink for ink in load_inks(path or DEMO_SAMPLES) if ink.num_points]
        if not inks:
            raise ValueError(f"{path or DEMO_SAMPLES}: no ink in the file")
        tablet = EmulatedTablet([(ink.to_points(), ink.units_per_mm) for ink in inks],
                                EmulatorConfig(protocol="inkstream", speed=speed, loop=loop,
                                               gap_between_inks=GAP_BETWEEN_INKS_S))
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
        source = open_source(spec, load_points=load_points, realtime=True, speed=speed)
        return LiveSource(source, spec, clock_speed=speed)
    return LiveSource(open_source(spec, on_event=on_event), spec)
