"""A simulated Raspberry Pi Pico for running the reference firmware under MicroPython (WASM).

Runs inside MicroPython, not CPython. It stands in for what the firmware takes from the board:

- ``machine`` (``sim_machine.py``): Pin and ADC over a 4-wire resistive panel modelled as two
  resistive layers. The ADC voltage depends on which pins the firmware drives, so a wrong drive
  sequence reads garbage here too (it raises, to say why). Readings are 12-bit scaled to 16 bits,
  like the RP2040's ``read_u16``.
- ``time`` (``sim_time.py``): a simulated microsecond clock with MicroPython's ticks semantics
  (period 2**30; ``ticks_diff`` only takes ticks values). It advances when the firmware sleeps
  and when it reads the ADC, so a run is deterministic and takes no wall time.
- the USB-CDC port: the firmware writes frames to the real ``sys.stdout.buffer`` (the Node
  runner captures the bytes) and reads host commands from the real ``sys.stdin.buffer``, which
  the runner feeds when the scenario says so; ``select`` (``sim_select.py``) reports stdin
  readable only while bytes wait, as on the board, and like the board's USB stack an 0x03 byte
  raises KeyboardInterrupt unless ``micropython.kbd_intr(-1)`` turned that off.
- ``rp2.bootsel_button`` (``sim_rp2.py``): held from the scenario's ``bootsel_from_us`` on.
- ``os.urandom``, which the board has and this port lacks, returns the scenario's bytes.

The scenario (JSON, written by the test) says where the clock starts, what the pen does when,
which host commands arrive when, and when the run ends.
"""
import json
import sys

TICKS_PERIOD = 1 << 30
FULL = 65535
XP, XM, YP, YM = 26, 16, 27, 17   # the wiring in firmware README / hal.py
ADC_PIN = {0: 26, 1: 27, 2: 28, 3: 29}
ADC_READ_US = 2                   # one RP2040 conversion (500 ksamples/s)
SPIN_LIMIT = 20000                # clock reads without time passing: the firmware spins


class SimulationOver(Exception):
    """The scenario's end time came: the way the endless main loop stops."""


class SimError(Exception):
    """The firmware did something the board would answer with garbage or a hang."""


class Board:
    def __init__(self, scenario):
        self.scenario = scenario
        self.now_us = 0                      # simulated time since the firmware started
        self.tick0 = scenario["tick_start"]  # ticks_us() at the start (near a wrap, to test it)
        self.end_us = scenario["end_us"]
        self.pins = {}                       # pin id -> (mode, value)
        self.kbd_intr_char = 3
        self.commands = sorted(scenario["commands"], key=lambda c: c["at_us"])
        self.delivered = 0
        self.clock_reads = 0
        self.adc_reads = 0
        self.host = None                     # the JS module that feeds stdin

    def advance(self, us):
        self.now_us += us
        self.clock_reads = 0
        if self.now_us >= self.end_us:
            raise SimulationOver()

    # --- clock -----------------------------------------------------------------------------
    def ticks_us(self):
        self.clock_reads += 1
        if self.clock_reads > SPIN_LIMIT:
            raise SimError("the firmware read the clock %d times without sleeping" % SPIN_LIMIT)
        return (self.tick0 + self.now_us) % TICKS_PERIOD

    # --- panel -----------------------------------------------------------------------------
    def touch(self):
        """(x, y, contact ohms) of the pen on the panel now, or None."""
        t = self.now_us
        for seg in self.scenario["touches"]:
            if seg["from_us"] <= t < seg["to_us"]:
                f = (t - seg["from_us"]) / (seg["to_us"] - seg["from_us"])
                return (seg["x"][0] + f * (seg["x"][1] - seg["x"][0]),
                        seg["y"][0] + f * (seg["y"][1] - seg["y"][0]), seg["r_ohm"])
        return None

    def adc(self, pin_id):
        mode, _ = self.pins.get(pin_id, (0, 0))
        if mode != 0:
            raise SimError("ADC read on GP%d while it is an output" % pin_id)
        self.adc_reads += 1
        self.advance(ADC_READ_US)
        driven = {p: v for p, (m, v) in self.pins.items() if m == 1}
        panel = self.scenario["panel"]
        touch = self.touch()
        if driven == {XP: 1, XM: 0} and pin_id == YP:          # X layer powered, Y senses
            return _u16(touch[0] / FULL) if touch else 0
        if driven == {YP: 1, YM: 0} and pin_id == XP:          # Y layer powered, X senses
            return _u16(touch[1] / FULL) if touch else 0
        if driven == {XM: 0, YM: 1} and pin_id in (XP, YP):    # Y- through the contact to X-
            if not touch:
                return 0 if pin_id == XP else FULL
            rx = panel["rx_ohm"] * touch[0] / FULL           # X- to the contact point
            ry = panel["ry_ohm"] * touch[1] / FULL           # Y- to the contact point
            total = rx + touch[2] + ry
            return _u16(rx / total if pin_id == XP else (rx + touch[2]) / total)
        raise SimError("ADC read on GP%d with pins %r driven: not a panel measurement" % (pin_id, driven))

    # --- USB host --------------------------------------------------------------------------
    def stdin_waiting(self):
        """Hand the host commands that are due to stdin; True while stdin has bytes."""
        while self.delivered < len(self.commands) and self.commands[self.delivered]["at_us"] <= self.now_us:
            data = bytes.fromhex(self.commands[self.delivered]["hex"])
            self.delivered += 1
            self.host.push(self.commands[self.delivered - 1]["hex"])
            if self.kbd_intr_char >= 0 and self.kbd_intr_char in data:
                # The board's USB-CDC driver turns the interrupt character into Ctrl-C.
                raise KeyboardInterrupt()
        return self.host.pending() > 0


def _u16(fraction):
    q = int(min(max(fraction, 0.0), 1.0) * 4095 + 0.5)   # 12-bit ADC
    return (q << 4) | (q >> 8)                           # read_u16 scaling on the RP2040


board = None


def encode_vectors(vectors):
    """Hex of what the firmware's encoder makes for each shared device -> host test vector."""
    import inkstream_protocol as proto
    out = []
    for v in vectors:
        f = v["fields"]
        enc = proto.FrameEncoder(f["seq"])
        if f["type"] == "hello":
            wire = enc.hello(f["x_max"], f["y_max"], f["pressure_max"], f["units_per_mm"],
                             f["rate_hz"], f["name"], f["session"])
        elif f["type"] == "sample":
            wire = enc.sample(f["t_us"], f["x"], f["y"], f["pressure"], f["flags"])
        else:
            wire = enc.heartbeat(f["t_us"], f["streaming"])
        out.append(wire.hex())
    return out


def touch_reports(readings):
    """What the firmware's touch filter makes of raw (x, y, z1, z2) readings."""
    from touch import TouchFilter
    f = TouchFilter()
    return [f.update(*r) for r in readings]


def run(scenario_path, result_path, host):
    global board
    with open(scenario_path) as fh:
        scenario = json.load(fh)
    board = Board(scenario)
    board.host = host
    import os
    import sim_machine
    import sim_micropython
    import sim_rp2
    import sim_select
    import sim_time
    os.urandom = lambda n: bytes.fromhex(scenario["urandom_hex"])[:n]
    sys.modules["machine"] = sim_machine
    sys.modules["time"] = sim_time
    sys.modules["select"] = sim_select
    sys.modules["micropython"] = sim_micropython
    sys.modules["rp2"] = sim_rp2
    result = {"vectors": encode_vectors(scenario["vectors"]),
              "touch_reports": touch_reports(scenario["touch_readings"])}
    try:
        import main  # noqa: F401  (runs the firmware's endless loop)
        result["ended"] = "main returned"
    except SimulationOver:
        result["ended"] = "end of scenario"
    except KeyboardInterrupt:
        result["ended"] = "KeyboardInterrupt at %d us" % board.now_us
    except Exception as e:  # report the firmware's error with its traceback
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        result["ended"] = "error: " + buf.getvalue()
    result["sim_us"] = board.now_us
    result["adc_reads"] = board.adc_reads
    result["kbd_intr_char"] = board.kbd_intr_char
    with open(result_path, "w") as fh:
        json.dump(result, fh)
