"""Board layer for a Raspberry Pi Pico (RP2040) wired to a 4-wire resistive touch panel.

The only module that touches hardware. Wiring (change the pin numbers here, nowhere else):

    X+  -> GP26 (ADC0)      X-  -> GP16
    Y+  -> GP27 (ADC1)      Y-  -> GP17

To read X, drive X+ high and X- low and read the voltage on Y+ (Y- floats); to read Y, the
other way round. For pressure, drive X- low and Y- high and read X+ (z1) and Y+ (z2): both
ADC pins sit on the two layers, and touch.py turns z1, z2 into the contact resistance.
"""
import sys
import time

from machine import ADC, Pin

XP, XM, YP, YM = 26, 16, 27, 17
ADC_OF = {26: 0, 27: 1}
SETTLE_US = 20  # the panel is an RC network: let it settle after switching drive pins
ADC_MAX = 65535  # read_u16 scale


def _drive(pin_id, value):
    Pin(pin_id, Pin.OUT, value=value)


def _float(pin_id):
    Pin(pin_id, Pin.IN, pull=None)


def _read(pin_id, samples=4):
    adc = ADC(ADC_OF[pin_id])
    total = 0
    for _ in range(samples):
        total += adc.read_u16()
    return total // samples


class Panel:
    """Raw panel readings in ADC counts (0..65535)."""

    def read_x(self):
        _drive(XP, 1)
        _drive(XM, 0)
        _float(YM)
        _float(YP)
        time.sleep_us(SETTLE_US)
        return _read(YP)

    def read_y(self):
        _drive(YP, 1)
        _drive(YM, 0)
        _float(XM)
        _float(XP)
        time.sleep_us(SETTLE_US)
        return _read(XP)

    def read_z(self):
        """(z1, z2): X- low, Y- high, read X+ (z1) and Y+ (z2)."""
        _drive(XM, 0)
        _drive(YM, 1)
        _float(YP)
        _float(XP)
        time.sleep_us(SETTLE_US)
        return _read(XP), _read(YP)


def ticks_us():
    return time.ticks_us()


def ticks_diff(a, b):
    return time.ticks_diff(a, b)


def ticks_add(t, delta):
    """Ticks wrap (at 2**30 on the RP2040), and ticks_diff only takes ticks values: never add with +."""
    return time.ticks_add(t, delta)


def sleep_us(us):
    if us > 0:
        time.sleep_us(us)


def random_u16():
    import os
    return int.from_bytes(os.urandom(2), "little")


def leave_requested():
    """True while the BOOTSEL button is pressed: the loop then stops and gives the REPL back."""
    import rp2
    return bool(rp2.bootsel_button())


class UsbSerial:
    """USB-CDC: frames go out on sys.stdout.buffer, commands come in on sys.stdin.buffer.
    (Run with the REPL detached, e.g. via main.py, so nothing else writes to the port.)"""

    def __init__(self):
        import micropython
        import select
        # Host commands are binary and may hold 0x03, which the REPL takes for Ctrl-C
        # (KeyboardInterrupt, the firmware stops): make it plain data while the loop runs.
        micropython.kbd_intr(-1)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def close(self):
        """Give Ctrl-C back to the REPL."""
        import micropython
        micropython.kbd_intr(3)

    def write(self, data):
        sys.stdout.buffer.write(data)

    def read_available(self):
        data = b""
        while self._poll.poll(0):
            byte = sys.stdin.buffer.read(1)
            if not byte:
                break  # end of input: nothing more to read now
            data += byte
        return data
