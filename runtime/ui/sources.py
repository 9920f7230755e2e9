"""Opening the pen source a live session reads: bridge specs, the page itself, or the emulator.

Specs: ``serial:PATH``, ``isdv4:PATH``, ``file:PATH`` (handled by
:func:`firmware_bridge.sources.open_source`, with the runtime's ink loader), ``browser`` (the
page's pointer events), ``emulator`` or ``emulator:PATH`` (an emulated inkstream tablet on a pty
replaying the shipped UNIPEN samples or the ink at PATH, read through the real serial path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from firmware_bridge.emulator import EmulatedTablet, EmulatorConfig
from firmware_bridge.sources import PenSource, open_source
from runtime.ink import Ink, load_corpus
from runtime.ui.session import BrowserPenSource

__all__ = ["DEMO_SAMPLES", "LiveSource", "open_live_source", "load_inks", "load_points"]

DEMO_SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "unipen_demo.npz"
GAP_BETWEEN_INKS_S = 2.5  # device seconds between replayed samples: longer than the endpoint pause


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
        self.source.close()
        for fn in self._cleanup:
            fn()


def load_inks(path: str | Path) -> list[Ink]:
    """Inks from a corpus ``.npz`` or any ink file the runtime reads."""
    path = str(path)
    if path.endswith(".npz"):
        return list(load_corpus(path))
    from runtime.ink_io import read_ink_file

    return read_ink_file(path)


def load_points(path: str) -> tuple:
    """``file:`` loader for the bridge: every ink in the file, one after the other in time."""
    inks = load_inks(path)
    if not inks:
        raise ValueError(f"{path}: no ink in the file")
    parts, t0 = [], 0.0
    for ink in inks:
        p = ink.to_points()
        p[:, 2] += t0 - p[0, 2]
        parts.append(p)
        t0 = float(p[-1, 2]) + GAP_BETWEEN_INKS_S
    upm = inks[0].units_per_mm
    return np.concatenate(parts), (upm if all(i.units_per_mm == upm for i in inks) else math.nan)


def open_live_source(spec: str, speed: float = 1.0, loop: bool = False,
                     on_event: Optional[Callable] = None) -> LiveSource:
    """Open ``spec`` (see the module docstring). ``speed`` and ``loop`` apply to replays."""
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if spec == "browser":
        return LiveSource(BrowserPenSource(), "browser", accepts_pen_input=True)
    scheme, _, path = spec.partition(":")
    if scheme == "emulator":
        inks = load_inks(path or DEMO_SAMPLES)
        tablet = EmulatedTablet([(ink.to_points(), ink.units_per_mm) for ink in inks],
                                EmulatorConfig(protocol="inkstream", speed=speed, loop=loop,
                                               gap_between_inks=GAP_BETWEEN_INKS_S))
        tty = tablet.open()
        tablet.start()
        source = open_source(f"serial:{tty}", on_event=on_event)
        return LiveSource(source, f"emulated tablet on {tty}", clock_speed=speed, tablet=tablet, inks=inks,
                          _cleanup=[tablet.close])
    if scheme == "file":
        source = open_source(spec, load_points=load_points, realtime=True, speed=speed)
        return LiveSource(source, spec, clock_speed=speed)
    return LiveSource(open_source(spec, on_event=on_event), spec)
