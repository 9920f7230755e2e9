"""Turning an ``(N, 4)`` points array (``x, y, t, pen_up_after``) into what a tablet would
report: time resampling, scaling into a device's coordinate range, pen-up gaps.

Shared by the emulated tablet and :class:`~firmware_bridge.sources.FileReplaySource`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["DeviceArea", "PenEvent", "validate_points", "split_strokes", "resample_points", "estimate_rate_hz",
           "fit_to_device", "line_tops", "lay_out_on_device", "pen_events"]

NOMINAL_HEIGHT_MM = 10.0  # ink of unknown resolution is drawn this high (about one written line)
MARGIN_MM = 10.0
MIN_REPORT_STEP_S = 1e-6  # the inkstream protocol's clock resolution (t_us)


@dataclass(frozen=True)
class DeviceArea:
    """An emulated digitizer's coordinate space: ``0..x_max``, ``0..y_max`` at ``units_per_mm``."""

    x_max: int
    y_max: int
    units_per_mm: float
    pressure_max: int


@dataclass(frozen=True)
class PenEvent:
    """One report the device will send at device time ``t`` (seconds)."""

    t: float
    x: int
    y: int
    tip: bool
    proximity: bool


def validate_points(points: np.ndarray, what: str = "points") -> np.ndarray:
    """``points`` as float64 ``(N, 4)``; ValueError naming ``what`` when it is not."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"{what}: expected an (N, 4) array x, y, t, pen_up_after, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{what}: contains NaN or infinite values")
    return points


def split_strokes(points: np.ndarray) -> list[np.ndarray]:
    """The strokes of an ``(N, 4)`` points array (views, all four columns), cut after every
    ``pen_up_after`` mark; a trailing run without one is a last stroke of its own."""
    ends = np.flatnonzero(points[:, 3] > 0.5) + 1
    cuts = [0] + [int(e) for e in ends if e < len(points)] + [len(points)]
    return [points[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def resample_points(points: np.ndarray, rate_hz: float) -> np.ndarray:
    """Resample each stroke in time at ``rate_hz`` (linear in x, y), as a device sampling at that
    rate would have seen the same pen motion. Stroke start times are kept; each stroke keeps at
    least its first point and ends with ``pen_up_after = 1``."""
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    points = validate_points(points)
    out = []
    for stroke in split_strokes(points):
        t = np.maximum.accumulate(stroke[:, 2])
        times = t[0] + np.arange(int(math.floor((t[-1] - t[0]) * rate_hz + 1e-9)) + 1) / rate_hz
        rows = np.zeros((len(times), 4))
        rows[:, 0] = np.interp(times, t, stroke[:, 0])
        rows[:, 1] = np.interp(times, t, stroke[:, 1])
        rows[:, 2] = times
        rows[-1, 3] = 1.0
        out.append(rows)
    return np.concatenate(out) if out else np.zeros((0, 4))


def estimate_rate_hz(points: np.ndarray, default: float = 100.0) -> float:
    """The median sampling rate inside strokes; ``default`` when it cannot be told."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return default
    dt = np.diff(points[:, 2])[points[:-1, 3] < 0.5]
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if len(dt) else default


def fit_to_device(points: np.ndarray, units_per_mm: float, area: DeviceArea) -> np.ndarray:
    """Integer device coordinates ``(N, 2)`` for the points.

    Known resolution: physical size is kept (scale = device units/mm over ink units/mm).
    Unknown (NaN): the ink is drawn NOMINAL_HEIGHT_MM high. Either way it is shrunk if it would
    not fit the area inside a MARGIN_MM border, then placed at the top-left margin.
    """
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    if len(xy) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    lo = xy.min(axis=0)
    extent = np.maximum(xy.max(axis=0) - lo, 1e-9)
    if units_per_mm and math.isfinite(units_per_mm) and units_per_mm > 0:
        scale = area.units_per_mm / units_per_mm
    else:
        scale = NOMINAL_HEIGHT_MM * area.units_per_mm / max(extent[1], 1e-9)
    margin = MARGIN_MM * area.units_per_mm
    room = np.array([area.x_max - 2 * margin, area.y_max - 2 * margin], dtype=np.float64)
    scale = min(scale, float(np.min(room / extent)))
    dev = np.rint((xy - lo) * scale + margin).astype(np.int64)
    return np.clip(dev, 0, [area.x_max, area.y_max])


def line_tops(heights, limit: float = math.inf) -> list[float]:
    """Where each of several inks of these heights goes, written one after the other as lines of a
    page: the first at 0, each next one below the last by twice the taller of the two (so it reads
    as a new line, not the same one), back at 0 once an ink would reach below ``limit``."""
    tops, bottom, last = [], None, 0.0
    for h in heights:
        top = 0.0 if bottom is None else bottom + 2.0 * max(last, h, 1.0)
        if top + h > limit:
            top = 0.0
        tops.append(top)
        bottom, last = top + h, h
    return tops


def lay_out_on_device(inks, area: DeviceArea) -> list[np.ndarray]:
    """Device coordinates of several inks (``(points, units_per_mm)`` pairs) written one after the
    other as a writer fills a tablet: each at the left margin (:func:`fit_to_device`), as lines
    down the tablet (:func:`line_tops`), back at the top when the tablet is full."""
    xys = [fit_to_device(points, units_per_mm, area) for points, units_per_mm in inks]
    margin = MARGIN_MM * area.units_per_mm
    heights = [float(np.ptp(xy[:, 1])) if len(xy) else 0.0 for xy in xys]
    for xy, top in zip(xys, line_tops(heights, area.y_max - 2 * margin)):
        xy[:, 1] += int(round(top))
    return xys


def pen_events(points: np.ndarray, device_xy: np.ndarray, t0: float, lift_delay: float) -> list[PenEvent]:
    """Tip-down reports for every point and, after each stroke, one "pen left" report
    (tip up, proximity out) ``lift_delay`` seconds after the stroke's last point. Times start at
    ``t0`` and strictly increase, by at least MIN_REPORT_STEP_S (the inkstream protocol drops a
    SAMPLE whose time is not later than the last one's; ink may repeat a time, and a stroke may
    start one sample period after the last, when its pen-left report is due)."""
    events = []
    if len(points) == 0:
        return events
    base = float(points[0, 2])
    last_t = t0 - MIN_REPORT_STEP_S
    for row, (x, y) in zip(points, device_xy):
        t = max(t0 + float(row[2]) - base, last_t + MIN_REPORT_STEP_S)
        events.append(PenEvent(t, int(x), int(y), True, True))
        last_t = t
        if row[3] > 0.5:
            last_t = t + lift_delay
            events.append(PenEvent(last_t, int(x), int(y), False, False))
    if events[-1].tip:  # the array did not mark its last stroke as ended
        last_t += lift_delay
        events.append(PenEvent(last_t, events[-1].x, events[-1].y, False, False))
    return events
