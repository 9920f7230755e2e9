"""Simulated ``select.poll`` for the USB-CDC stdin: readable only while host bytes wait."""
import sim_board

POLLIN = 1
POLLOUT = 4


class _Poll:
    def __init__(self):
        self.objs = []

    def register(self, obj, mask=POLLIN | POLLOUT):
        self.objs.append(obj)

    def poll(self, timeout=-1):
        if self.objs and sim_board.board.stdin_waiting():
            return [(self.objs[0], POLLIN)]
        return []


def poll():
    return _Poll()
