"""Simulated ``time`` with MicroPython's ticks semantics over sim_board's clock."""
import sim_board

_HALF = sim_board.TICKS_PERIOD // 2


def _check(t):
    # MicroPython's ticks_diff/ticks_add assume small ints from ticks_xx(): anything else gives
    # garbage on a board (a big int's pointer is read as the value), so fail loudly here.
    if not isinstance(t, int) or not 0 <= t < sim_board.TICKS_PERIOD:
        raise ValueError("%r is not a ticks value (0 .. 2**30-1): use ticks_add, not +" % (t,))
    return t


def ticks_us():
    return sim_board.board.ticks_us()


def ticks_ms():
    return (sim_board.board.ticks_us() // 1000) % sim_board.TICKS_PERIOD


def ticks_diff(a, b):
    return ((_check(a) - _check(b) + _HALF) % sim_board.TICKS_PERIOD) - _HALF


def ticks_add(t, delta):
    return (_check(t) + delta) % sim_board.TICKS_PERIOD


def sleep_us(us):
    if us > 0:
        sim_board.board.advance(us)


def sleep_ms(ms):
    sleep_us(ms * 1000)


def sleep(s):
    sleep_us(int(s * 1000000))
