"""Simulated ``machine`` (Pin, ADC) over sim_board's panel; runs inside MicroPython."""
import sim_board


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        if mode != -1:
            self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        old_mode, old_value = sim_board.board.pins.get(self.id, (0, 0))
        mode = old_mode if mode == -1 else mode
        value = old_value if value is None else int(bool(value))
        sim_board.board.pins[self.id] = (mode, value)

    def value(self, v=None):
        if v is None:
            return sim_board.board.pins.get(self.id, (0, 0))[1]
        self.init(value=v)


class ADC:
    def __init__(self, source):
        if isinstance(source, Pin):
            self.pin = source.id
        elif source in sim_board.ADC_PIN:
            self.pin = sim_board.ADC_PIN[source]
        elif source in sim_board.ADC_PIN.values():
            self.pin = source
        else:
            raise ValueError("invalid ADC channel %r" % (source,))

    def read_u16(self):
        return sim_board.board.adc(self.pin)
