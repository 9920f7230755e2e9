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

from runtime.features import COS_TURN, DX, DY, JUMP, SIN_TURN, compress, decompress, turning_angles


def shear_stretch(x: np.ndarray, lengths: np.ndarray, shear: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Frames ``x (B, T, 7)`` (padded; ``lengths`` valid frames per row) redrawn under the
    transform ``x' = stretch * x + shear * y`` of each row's ink. Returns a new float32 array;
    the padding stays zero."""
    x = np.asarray(x, np.float32)
    b, t, _ = x.shape
    valid = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    dx = decompress(x[..., DX])
    dy = decompress(x[..., DY])
    a = np.asarray(stretch, np.float64)[:, None]
    s = np.asarray(shear, np.float64)[:, None]
    ndx, ndy = a * dx + s * dy, dy
    jump = x[..., JUMP] > 0.5
    # in-stroke frames keep their length: the extractor emits them one resampling step apart
    old_len = np.hypot(dx, dy)
    new_len = np.hypot(ndx, ndy)
    k = np.where((~jump) & (new_len > 0.0), old_len / np.where(new_len > 0.0, new_len, 1.0), 1.0)
    ndx, ndy = ndx * k, ndy * k
    cos_t, sin_t = turning_angles(ndx, ndy, jump)
    out = x.copy()
    out[..., DX] = compress(ndx)
    out[..., DY] = compress(ndy)
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
