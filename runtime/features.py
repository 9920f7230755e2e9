"""The one feature pipeline: pen samples in, model frames out, incrementally.

Training and the device use the same :class:`FeatureExtractor`. It keeps its own state, so
``accept`` can be fed any chunking of a sample (one point at a time, bursts, the whole sample)
and the frames are *bit-identical* to feeding the whole sample at once: every point goes through
the same scalar code path in the same order.

How the frames are made independent of the writer's position, size, the device and its rate:

* **Translation**: frames hold displacements and positions relative to a running mean, never
  absolute coordinates.
* **Scale** (a tablet in 0.01 mm vs a panel in pixels, small vs large writing): every length is
  divided by a running *ink scale*, ``max(sd_y, extent_floor * largest stroke extent)``, where
  ``sd_y`` is the arc-length-weighted standard deviation of pen-down y (a covariant estimator:
  scaling the ink by k scales it by k, so frames do not change). Statistics decay over a window of
  ``window`` scale units, so a long session or wrapped text adapts.
* **Sampling rate**: the pen-down trajectory is resampled at equal arc-length steps of
  ``step * scale``; the statistics are exact integrals over the polyline, not sums over samples.
* **Start of a line**: a scale estimated from a few points means nothing, so the first ink is
  held until a stroke ends or its path is 8 scales long (about a letter), then resampled with the
  scale reached there. After that, statistics, the window decay and the next step are updated at
  emitted frames only, which keeps the frames independent of how the trajectory was sampled.
* **Pen-up gaps**: the time between strokes is ignored; a stroke boundary is one *jump* frame
  carrying the displacement from the last pen-down point to the next.

Frame layout (``NUM_FEATURES`` = 7, float32):
``0 dx, 1 dy`` displacement since the previous frame in step units (log-compressed beyond 1),
``2 jump`` 1 on a pen-up jump frame, ``3 y_rel`` (y - running mean) / scale clipped,
``4 cos_turn, 5 sin_turn`` turning angle against the previous in-stroke frame,
``6 stroke_end`` 1 on the last frame of a stroke (emitted as soon as the pen lifts).

Malformed input: a non-finite x or y raises ``ValueError`` naming the sample; a non-finite t
raises as well; time going backwards is repaired by clamping to the running maximum (counted in
``time_repairs``); an empty input yields no frames. The features do not use t at all, but the
runtime's endpoint rule does, so t is kept monotone here.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

FEATURE_VERSION = "inkstream-features-2"
NUM_FEATURES = 7


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature pipeline; stored in every checkpoint and ONNX file."""

    step: float = 1.0  # resampling step, in units of the ink scale
    window: float = 300.0  # statistics window, in ink-scale units of pen-down path
    extent_floor: float = 0.05  # scale >= extent_floor * largest stroke extent (for flat ink such as '-')
    max_frames_per_segment: int = 64  # guards against pathological input (a huge segment)
    y_rel_clip: float = 4.0

    def __post_init__(self):
        if not (self.step > 0 and self.window > 0 and self.extent_floor > 0):
            raise ValueError(f"FeatureConfig: step, window and extent_floor must be > 0, got {self}")
        if self.max_frames_per_segment < 1:
            raise ValueError("FeatureConfig: max_frames_per_segment must be >= 1")

    def to_json(self) -> str:
        return json.dumps({"version": FEATURE_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureConfig":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"feature config must be a JSON object, got {type(d).__name__}: {text!r:.80}")
        version = d.pop("version", None)
        if version != FEATURE_VERSION:
            raise ValueError(f"feature config version {version!r} is not {FEATURE_VERSION!r}")
        return cls(**d)


# The frame layout (see the module docstring): the index of each feature in a frame.
DX, DY, JUMP, Y_REL, COS_TURN, SIN_TURN, STROKE_END = range(NUM_FEATURES)


def _compress(v: float) -> float:
    # identity on [-1, 1], logarithmic beyond: keeps in-stroke directions exact and bounds jumps
    if v > 1.0:
        return 1.0 + math.log(v)
    if v < -1.0:
        return -1.0 - math.log(-v)
    return v


def compress(v: np.ndarray) -> np.ndarray:
    """:func:`_compress` on an array (what ``dx, dy`` hold)."""
    out = np.array(v, np.float64)
    hi, lo = out > 1.0, out < -1.0
    out[hi] = 1.0 + np.log(out[hi])
    out[lo] = -1.0 - np.log(-out[lo])
    return out


def decompress(v: np.ndarray) -> np.ndarray:
    """The inverse of :func:`compress`: displacements in step units from ``dx, dy``."""
    out = np.array(v, np.float64)
    hi, lo = out > 1.0, out < -1.0
    out[hi] = np.exp(out[hi] - 1.0)
    out[lo] = -np.exp(-out[lo] - 1.0)
    return out


def turning_angles(dx: np.ndarray, dy: np.ndarray, jump: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cos_turn, sin_turn`` of frames ``(B, T)`` with displacements ``dx, dy`` and jump flags:
    the extractor's rule in batch form (the angle against the previous frame when both are
    in-stroke with a length; ``(1, 0)`` after a jump, at the start, or for a zero-length frame)."""
    b = dx.shape[0]
    prev_dx = np.concatenate([np.zeros((b, 1)), dx[:, :-1]], axis=1)
    prev_dy = np.concatenate([np.zeros((b, 1)), dy[:, :-1]], axis=1)
    prev_in_stroke = np.concatenate([np.zeros((b, 1), bool), ~jump[:, :-1]], axis=1)
    norm = np.hypot(dx, dy) * np.hypot(prev_dx, prev_dy)
    has_turn = (~jump) & prev_in_stroke & (norm > 0.0)
    safe = np.where(has_turn, norm, 1.0)
    cos_t = np.where(has_turn, (prev_dx * dx + prev_dy * dy) / safe, 1.0)
    sin_t = np.where(has_turn, (prev_dx * dy - prev_dy * dx) / safe, 0.0)
    return cos_t, sin_t


class FeatureExtractor:
    """Incremental pen-samples -> frames. One instance per stream; see the module docstring."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new line or a new sample)."""
        self.samples_seen = 0
        self.frames_emitted = 0
        self.time_repairs = 0
        self._last_t = -math.inf
        # running pen-down statistics (arc-length weighted integrals of y)
        self._w = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._max_extent = 0.0
        self._path = 0.0  # pen-down path length (only used to end the bootstrap)
        # bootstrap: the first pen-down ink is held until the scale can be trusted
        self._bootstrapping = True
        self._held: list = []  # (x, y, idx, pen_up_after) of the held samples
        self._step = 0.0  # resampling step, fixed at each emitted frame
        self._update = True  # False while replaying held ink with frozen statistics
        # current stroke
        self._in_stroke = False
        self._px = self._py = 0.0  # previous raw point of the stroke
        self._ex = self._ey = 0.0  # last emitted (resampled) point
        self._acc = 0.0  # path length from the last emitted point to the previous raw point
        self._bx0 = self._by0 = self._bx1 = self._by1 = 0.0  # current stroke bbox
        self._have_prev_stroke = False
        self._endx = self._endy = 0.0  # where the previous stroke ended
        self._last_dir = None  # (dx, dy, norm) of the previous in-stroke frame

    # ---- statistics -------------------------------------------------------------------
    def _sd_y(self) -> float:
        if self._w > 0.0:
            m = self._s1 / self._w
            var = self._s2 / self._w - m * m
            return math.sqrt(var) if var > 0.0 else 0.0
        return 0.0

    def scale(self) -> float:
        """The current ink scale (0.0 until the ink has any extent)."""
        return max(self._sd_y(), self.config.extent_floor * self._max_extent)

    def mean_y(self):
        """The running mean of pen-down y (the baseline ``y_rel`` is measured from); None
        before any pen-down ink."""
        return self._s1 / self._w if self._w > 0.0 else None

    def _add_path(self, x0, y0, x1, y1, length):
        """Add the straight piece (x0, y0)-(x1, y1) of pen-down path to the statistics.

        The integrals are exact, so cutting a segment into pieces changes nothing but rounding:
        that is what makes the frames independent of the sampling rate.
        """
        m = 0.5 * (y0 + y1)
        d = y1 - y0
        self._w += length
        self._s1 += length * m
        self._s2 += length * (m * m + d * d / 12.0)
        self._path += length
        if x1 < self._bx0: self._bx0 = x1
        if x1 > self._bx1: self._bx1 = x1
        if y1 < self._by0: self._by0 = y1
        if y1 > self._by1: self._by1 = y1
        ext = max(self._bx1 - self._bx0, self._by1 - self._by0)
        if ext > self._max_extent:
            self._max_extent = ext

    def _after_frame(self):
        # decay and the next step are decided only at emitted frames, which do not depend on
        # how the trajectory was sampled
        s = self.scale()
        limit = self.config.window * s
        if s > 0.0 and self._w > limit:
            f = limit / self._w
            self._w *= f
            self._s1 *= f
            self._s2 *= f
            s = self.scale()
        self._step = self.config.step * s

    # ---- frames -----------------------------------------------------------------------
    def _frame(self, out, src, idx, x, y, dx, dy, jump, end):
        s = self.scale()
        step = self.config.step * s
        if step <= 0.0:
            step = 1.0  # only reachable for ink without any extent (all points equal): dx = dy = 0
        fx, fy = dx / step, dy / step
        mean = self._s1 / self._w if self._w > 0.0 else y
        yr = (y - mean) / s if s > 0.0 else 0.0
        c = self.config.y_rel_clip
        yr = c if yr > c else (-c if yr < -c else yr)
        ct, st = 1.0, 0.0
        if not jump:
            n = math.hypot(dx, dy)
            if self._last_dir is not None and n > 0.0:
                lx, ly, ln = self._last_dir
                ct = (lx * dx + ly * dy) / (ln * n)
                st = (lx * dy - ly * dx) / (ln * n)
            if n > 0.0:
                self._last_dir = (dx, dy, n)
        else:
            self._last_dir = None
        out.append((_compress(fx), _compress(fy), 1.0 if jump else 0.0, yr, ct, st, 1.0 if end else 0.0))
        src.append(idx)
        if self._update:
            self._after_frame()

    def _point(self, out, src, idx, x, y, pen_up_after):
        if self._bootstrapping:
            self._bootstrap_point(out, src, idx, x, y, pen_up_after)
        else:
            self._update = True
            self._resample_point(out, src, idx, x, y, pen_up_after)

    def _bootstrap_point(self, out, src, idx, x, y, pen_up_after):
        """Collect statistics of the first ink without emitting frames; release when trustworthy.

        A scale estimated from a few points is meaningless, so frames are held until a stroke has
        ended or the path is 8 scales long (about one letter), then the held ink is resampled
        with the scale reached at that point. Bounded latency, done once per line.
        """
        if self._held and not self._held[-1][3]:
            px, py = self._held[-1][0], self._held[-1][1]
            seg = math.hypot(x - px, y - py)
            if seg > 0.0:
                self._add_path(px, py, x, y, seg)
        else:
            self._bx0 = self._bx1 = x
            self._by0 = self._by1 = y
        self._held.append((x, y, idx, pen_up_after))
        # the y spread, not the scale, and a spread that is not tiny against the extent: a
        # straight or shallow stroke says nothing yet about the size of the writing
        sd = self._sd_y()
        if self.scale() > 0.0 and (pen_up_after or (self._path >= 8.0 * sd and sd >= 0.15 * self._max_extent)):
            self._release(out, src)

    def _release(self, out, src):
        held, self._held = self._held, []
        self._bootstrapping = False
        self._step = self.config.step * self.scale()
        self._update = False  # replay with the statistics frozen at the release point
        for x, y, idx, up in held:
            self._resample_point(out, src, idx, x, y, up)
        self._update = True

    def _resample_point(self, out, src, idx, x, y, pen_up_after):
        cfg = self.config
        if not self._in_stroke:
            self._in_stroke = True
            if self._update:
                self._bx0 = self._bx1 = x
                self._by0 = self._by1 = y
            self._last_dir = None
            if self._have_prev_stroke:
                self._frame(out, src, idx, x, y, x - self._endx, y - self._endy, True, False)
            self._px, self._py = x, y
            self._ex, self._ey = x, y
            self._acc = 0.0
        else:
            ax, ay = self._px, self._py
            remaining = math.hypot(x - ax, y - ay)
            emitted = 0
            while remaining > 0.0:
                need = max(self._step - self._acc, 0.0)
                if self._step <= 0.0 or need > remaining or emitted >= cfg.max_frames_per_segment:
                    if self._update:
                        self._add_path(ax, ay, x, y, remaining)
                    self._acc += remaining
                    break
                r = need / remaining
                nx = ax + (x - ax) * r
                ny = ay + (y - ay) * r
                if self._update:
                    self._add_path(ax, ay, nx, ny, need)
                self._frame(out, src, idx, nx, ny, nx - self._ex, ny - self._ey, False, False)
                emitted += 1
                remaining -= need
                ax, ay = nx, ny
                self._ex, self._ey = nx, ny
                self._acc = 0.0
            self._px, self._py = x, y
        if pen_up_after:
            # close the stroke now: the pen lift is information the model should get at once
            self._frame(out, src, idx, x, y, x - self._ex, y - self._ey, False, True)
            self._in_stroke = False
            self._have_prev_stroke = True
            self._endx, self._endy = x, y

    def accept(self, points, return_sources: bool = False):
        """Feed pen samples; returns the frames they complete, ``(k, NUM_FEATURES)`` float32.

        ``points`` is ``(n, 4)`` ``x, y, t, pen_up_after`` (or ``(n, 3)`` without the pen column,
        meaning all pen-down). With ``return_sources=True`` also returns, per frame, the global
        index of the sample that completed it (for aligning characters to ink).
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim == 1 and pts.size in (3, 4):
            pts = pts[None, :]
        if pts.ndim != 2 or pts.shape[1] not in (3, 4):
            raise ValueError(f"FeatureExtractor.accept: expected (n, 4) x, y, t, pen_up_after; got shape {pts.shape}")
        if pts.shape[0]:
            finite = np.isfinite(pts)
            if not finite.all():
                row = int(np.flatnonzero(~finite.all(axis=1))[0])
                raise ValueError(
                    f"FeatureExtractor.accept: sample {self.samples_seen + row} has a non-finite value {pts[row].tolist()}")
        return self.accept_rows(pts.tolist(), pts.shape[1] == 4, return_sources)

    def accept_rows(self, rows: list, has_pen: bool = True, return_sources: bool = False):
        """:meth:`accept` for rows already checked to be finite, as Python lists of floats.

        The streaming runtime validates each chunk once and calls this, so a pen sample costs
        no second round of numpy checks (that overhead dominates when samples come one by one).
        """
        out: list = []
        src: list = []
        for row in rows:
            t = row[2]
            if t < self._last_t:
                self.time_repairs += 1
            else:
                self._last_t = t
            self._point(out, src, self.samples_seen, row[0], row[1], has_pen and row[3] > 0.5)
            self.samples_seen += 1
        return self._frames(out, src, return_sources)

    def _frames(self, out: list, src: list, return_sources: bool):
        if out:
            frames = np.array(out, dtype=np.float32)
            sources = np.array(src, dtype=np.int64)
        else:  # most single samples complete no frame: skip building arrays from nothing
            frames, sources = np.zeros((0, NUM_FEATURES), np.float32), np.zeros(0, np.int64)
        self.frames_emitted += len(frames)
        return (frames, sources) if return_sources else frames

    def flush(self, return_sources: bool = False):
        """End of input: release held ink and close an unfinished stroke. Returns the last frames."""
        out: list = []
        src: list = []
        if self._bootstrapping and self._held:
            self._release(out, src)
        if self._in_stroke:
            idx = self.samples_seen - 1
            self._frame(out, src, idx, self._px, self._py, self._px - self._ex, self._py - self._ey, False, True)
            self._in_stroke = False
            self._have_prev_stroke = True
            self._endx, self._endy = self._px, self._py
        return self._frames(out, src, return_sources)


def extract(points, config: FeatureConfig = FeatureConfig(), return_sources: bool = False):
    """Frames of a whole sample: ``accept`` then ``flush`` on a fresh extractor."""
    fx = FeatureExtractor(config)
    if return_sources:
        a, sa = fx.accept(points, return_sources=True)
        b, sb = fx.flush(return_sources=True)
        return np.concatenate([a, b]), np.concatenate([sa, sb])
    return np.concatenate([fx.accept(points), fx.flush()])
