"""Writer-style augmentation applied to feature frames, so the cached frames can be reused.

Unseen writers differ from the training writers mostly in slant and in the width of their
letters. :func:`shear_stretch` redraws a batch of frames as if the ink had been transformed by
``x' = a * x + s * y, y' = y`` (a horizontal stretch ``a`` and a slant ``s``, one pair per sample).
Because ``y`` does not move, the ink scale (the standard deviation of pen-down ``y``) and the
``y_rel`` feature change little (only through the arc-length weighting of the statistics and the
extent floor: the final scale of IAM-OnDB val lines moved by 0.98-1.19x at a stretch of 1.2), so
they are kept, and the frame layout of :mod:`runtime.features` stays consistent:

* ``dx, dy`` are decompressed, transformed and compressed again; in-stroke frames keep their
  original length (the extractor resamples at a fixed arc-length step, so an in-stroke frame is
  always about one step long), jump frames take the transformed displacement;
* ``cos_turn, sin_turn`` are recomputed from the transformed in-stroke directions with the
  extractor's rule (against the previous in-stroke frame of the same stroke, ``(1, 0)`` after a
  jump or at the start);
* the jump and stroke-end flags are copied.

What it does not redo: the number of frames per stroke stays that of the original ink (a stretched
stroke would be resampled into a few more or fewer frames). With ``a = 1, s = 0`` the output
equals the input up to float rounding (a test checks this against the extractor).
"""
from __future__ import annotations

import numpy as np

DX, DY, JUMP, Y_REL, COS_TURN, SIN_TURN, STROKE_END = range(7)


def _decompress(v: np.ndarray) -> np.ndarray:
    # inverse of runtime.features._compress: identity on [-1, 1], exponential beyond
    out = v.copy()
    hi, lo = v > 1.0, v < -1.0
    out[hi] = np.exp(v[hi] - 1.0)
    out[lo] = -np.exp(-v[lo] - 1.0)
    return out


def _compress(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    hi, lo = v > 1.0, v < -1.0
    out[hi] = 1.0 + np.log(v[hi])
    out[lo] = -1.0 - np.log(-v[lo])
    return out


def shear_stretch(x: np.ndarray, lengths: np.ndarray, shear: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Frames ``x (B, T, 7)`` (padded; ``lengths`` valid frames per row) redrawn under the
    transform ``x' = stretch * x + shear * y`` of each row's ink. Returns a new float32 array;
    the padding stays zero."""
    x = np.asarray(x, np.float32)
    b, t, _ = x.shape
    valid = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    dx = _decompress(x[..., DX].astype(np.float64))
    dy = _decompress(x[..., DY].astype(np.float64))
    a = np.asarray(stretch, np.float64)[:, None]
    s = np.asarray(shear, np.float64)[:, None]
    ndx, ndy = a * dx + s * dy, dy
    jump = x[..., JUMP] > 0.5
    # in-stroke frames keep their length: the extractor emits them one resampling step apart
    old_len = np.hypot(dx, dy)
    new_len = np.hypot(ndx, ndy)
    k = np.where((~jump) & (new_len > 0.0), old_len / np.where(new_len > 0.0, new_len, 1.0), 1.0)
    ndx, ndy = ndx * k, ndy * k
    # turning angles against the previous in-stroke frame of the same stroke
    prev_dx = np.concatenate([np.zeros((b, 1)), ndx[:, :-1]], axis=1)
    prev_dy = np.concatenate([np.zeros((b, 1)), ndy[:, :-1]], axis=1)
    prev_in_stroke = np.concatenate([np.zeros((b, 1), bool), ~jump[:, :-1]], axis=1)
    norm = np.hypot(ndx, ndy) * np.hypot(prev_dx, prev_dy)
    has_turn = (~jump) & prev_in_stroke & (norm > 0.0)
    safe = np.where(has_turn, norm, 1.0)
    cos_t = np.where(has_turn, (prev_dx * ndx + prev_dy * ndy) / safe, 1.0)
    sin_t = np.where(has_turn, (prev_dx * ndy - prev_dy * ndx) / safe, 0.0)
    out = x.copy()
    out[..., DX] = _compress(ndx)
    out[..., DY] = _compress(ndy)
    out[..., COS_TURN] = cos_t
    out[..., SIN_TURN] = sin_t
    out[~valid] = 0.0
    return out


def random_shear_stretch(x: np.ndarray, lengths: np.ndarray, max_shear: float, max_log_stretch: float,
                         uniform: np.ndarray) -> np.ndarray:
    """:func:`shear_stretch` with ``shear ~ U(-max_shear, max_shear)`` and
    ``stretch = exp(U(-max_log_stretch, max_log_stretch))`` per row, drawn from ``uniform``
    (``(B, 2)`` numbers in [0, 1), so the caller owns the random stream and a resumed run draws
    the same ones)."""
    u = np.asarray(uniform, np.float64)
    shear = (2.0 * u[:, 0] - 1.0) * max_shear
    stretch = np.exp((2.0 * u[:, 1] - 1.0) * max_log_stretch)
    return shear_stretch(x, lengths, shear, stretch)
