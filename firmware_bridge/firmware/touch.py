"""Turning raw 4-wire panel readings into pen reports: touch detection, pressure, debouncing.

Pure Python (runs under CPython too). A reading is (x, y, z1, z2) in ADC counts.

- Pressure: the touch resistance R = Rx * (x / full) * (z2 / z1 - 1) (the usual 4-wire
  formula) is small for a firm press; pressure = clamp(1 - R / R_LIGHT) scaled to PRESSURE_MAX.
- Touch: R below R_TOUCH. Debouncing: the tip goes down only after DOWN_COUNT touching
  readings in a row and up after UP_COUNT non-touching readings, so a bouncing contact does
  not split a stroke; position jumps over MAX_JUMP counts while down are treated as a glitch
  and the reading is skipped.
"""

FULL = 65535
PRESSURE_MAX = 255
R_X_PLATE = 400.0     # ohms across the X layer (from the panel's datasheet)
R_TOUCH = 1500.0      # below this the layers touch
R_LIGHT = 2000.0      # the lightest press that still counts as pressure > 0
DOWN_COUNT = 2
UP_COUNT = 3
MAX_JUMP = 4000


def touch_resistance(x, z1, z2):
    if z1 <= 0:
        return float("inf")
    return R_X_PLATE * (x / FULL) * (z2 / z1 - 1.0)


def pressure_of(resistance):
    p = 1.0 - resistance / R_LIGHT
    if p < 0:
        p = 0.0
    elif p > 1:
        p = 1.0
    return int(p * PRESSURE_MAX + 0.5)


class TouchFilter:
    """Feed raw readings; get (x, y, pressure, tip, proximity) reports or None (skipped)."""

    def __init__(self):
        self.down = False
        self._touch_run = 0
        self._release_run = 0
        self._last = None

    def update(self, x, y, z1, z2):
        r = touch_resistance(x, z1, z2)
        touching = r < R_TOUCH
        if touching:
            self._touch_run += 1
            self._release_run = 0
        else:
            self._release_run += 1
            self._touch_run = 0
        if not self.down:
            if self._touch_run >= DOWN_COUNT:
                self.down = True
                self._last = (x, y)
                return (x, y, pressure_of(r), True, True)
            return None
        if not touching:
            if self._release_run >= UP_COUNT:
                self.down = False
                lx, ly = self._last
                return (lx, ly, 0, False, False)
            return None  # maybe a bounce: wait before lifting
        if abs(x - self._last[0]) > MAX_JUMP or abs(y - self._last[1]) > MAX_JUMP:
            return None
        self._last = (x, y)
        return (x, y, pressure_of(r), True, True)
