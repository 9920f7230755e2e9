"""What every pen source yields: :class:`PenSample`, :class:`DeviceInfo`, error counters, and the
conversion of a live sample stream into the runtime's ``x, y, t, pen_up_after`` rows."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

__all__ = ["PenSample", "DeviceInfo", "ErrorCounters", "StrokeRowAssembler",
           "BUTTON_1", "BUTTON_2"]

BUTTON_1 = 0x01  # barrel / side switch 1
BUTTON_2 = 0x02  # side switch 2 or eraser


@dataclass(frozen=True)
class PenSample:
    """One pen report.

    ``x``, ``y``: device units (0..DeviceInfo.x_max / y_max, y grows down).
    ``t``: seconds on the source's clock, never decreasing within one connection.
    ``pressure``: 0..1 when the device announced its pressure range, else NaN.
    ``tip``: the pen touches the surface (ink is being drawn).
    ``proximity``: the pen is in range (hovering or touching); False means "pen left".
    ``buttons``: bit mask of BUTTON_1 / BUTTON_2.
    """

    x: float
    y: float
    t: float
    pressure: float = math.nan
    tip: bool = False
    proximity: bool = True
    buttons: int = 0


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself. Ranges are inclusive maxima with 0 as minimum;
    ``units_per_mm`` and ``rate_hz`` are NaN when unknown."""

    protocol: str
    x_max: int
    y_max: int
    pressure_max: int
    units_per_mm: float = math.nan
    rate_hz: float = math.nan
    name: str = ""
    version: str = ""


@dataclass
class ErrorCounters:
    """Bad input seen by a decoder. Every counted frame was skipped, none became a sample.

    ``crc``: frames whose CRC did not match; ``framing``: not valid COBS, or a packet cut short
    by the next header byte (ISDV4); ``oversize``: frames longer than the protocol allows;
    ``malformed``: right CRC but wrong length or field values; ``unknown_type``: frame types this
    version does not know; ``lost``: frames missing according to the sequence numbers;
    ``stale``: duplicated or out-of-order frames (dropped so time never goes back);
    ``out_of_range``: samples outside the announced ranges (ISDV4); ``stray_bytes``: bytes
    outside any packet (ISDV4: data bytes with no header before them).
    """

    crc: int = 0
    framing: int = 0
    oversize: int = 0
    malformed: int = 0
    unknown_type: int = 0
    lost: int = 0
    stale: int = 0
    out_of_range: int = 0
    stray_bytes: int = 0
    extra: dict = field(default_factory=dict)

    def total_bad_frames(self) -> int:
        return self.crc + self.framing + self.oversize + self.malformed + self.unknown_type + self.stale + self.out_of_range

    def snapshot(self) -> "ErrorCounters":
        return ErrorCounters(**{**self.__dict__, "extra": dict(self.extra)})


class StrokeRowAssembler:
    """Turns a stream of :class:`PenSample` into ``(x, y, t, pen_up_after)`` rows as they happen.

    A tip-down sample is held back until the next sample shows whether the stroke goes on
    (the held row is emitted with ``pen_up_after = 0``) or the pen lifted (emitted with 1). So a
    row is at most one sample late, and the pen-up row comes out the moment the tip-up sample
    (or :meth:`pen_lifted` / :meth:`flush`) arrives. Hover samples (tip up) produce no rows.
    """

    def __init__(self) -> None:
        self._held: Optional[tuple] = None

    def accept(self, sample: PenSample) -> list[tuple[float, float, float, float]]:
        rows = []
        if sample.tip:
            if self._held is not None:
                rows.append(self._held + (0.0,))
            self._held = (float(sample.x), float(sample.y), float(sample.t))
        elif self._held is not None:
            rows.append(self._held + (1.0,))
            self._held = None
        return rows

    def accept_many(self, samples: Iterable[PenSample]) -> list[tuple[float, float, float, float]]:
        rows = []
        for s in samples:
            rows.extend(self.accept(s))
        return rows

    def pen_lifted(self) -> list[tuple[float, float, float, float]]:
        """Close the open stroke now (e.g. the source disconnected)."""
        if self._held is None:
            return []
        row, self._held = self._held + (1.0,), None
        return [row]

    flush = pen_lifted
