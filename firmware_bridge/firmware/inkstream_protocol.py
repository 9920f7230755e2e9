"""Device side of the inkstream serial protocol (see ../PROTOCOL.md).

Pure Python that runs unchanged under MicroPython (RP2040) and CPython: no dataclasses, no
typing, no f-strings, only ``struct``. The host runs this very module in its tests and in the
emulated tablet, so the frames a board sends are byte for byte the frames the tests check
against ``tests/fixtures/bridge/inkstream_vectors.json``.

What callers may rely on:
- every ``FrameEncoder`` method returns one complete wire frame: COBS(payload + CRC-16) + 0x00;
- the sequence number goes up by one (mod 256) per frame the encoder makes;
- ``CommandReader.feed`` returns only commands whose CRC and length are correct.
"""
import struct

PROTOCOL_VERSION = 1

# Device -> host frame types.
FRAME_HELLO = 0x01
FRAME_SAMPLE = 0x02
FRAME_HEARTBEAT = 0x03
# Host -> device command types.
CMD_START = 0x10
CMD_STOP = 0x11
CMD_DESCRIBE = 0x12
COMMANDS = (CMD_START, CMD_STOP, CMD_DESCRIBE)

# SAMPLE flag bits.
FLAG_TIP = 0x01
FLAG_PROXIMITY = 0x02
FLAG_BUTTON1 = 0x04
FLAG_BUTTON2 = 0x08

# HEARTBEAT state bits.
STATE_STREAMING = 0x01

MAX_PAYLOAD = 64  # type + seq + body + crc; keeps the decoder's buffer small on both sides
MAX_NAME = 24

_HELLO = "<BHHHHHH"     # version, x_max, y_max, pressure_max, units_per_mm * 100, rate_hz, session
_SAMPLE = "<IHHHB"      # t_us, x, y, pressure, flags
_HEARTBEAT = "<IB"      # t_us, state


def crc16_ccitt(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data):
    """COBS-encode ``data``; the result contains no 0x00 byte."""
    out = bytearray(b"\x00")
    code_at = 0
    code = 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = len(out)
                out.append(0)
                code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data):
    """Inverse of :func:`cobs_encode`; None when ``data`` is not valid COBS."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            return None
        end = i + code
        if end > n:
            return None
        chunk = data[i + 1:end]
        if 0 in chunk:
            return None
        out.extend(chunk)
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def wrap_payload(frame_type, seq, body):
    """Wire bytes for one frame: COBS(type, seq, body, crc16 little-endian) then 0x00."""
    payload = bytes((frame_type, seq & 0xFF)) + bytes(body)
    crc = crc16_ccitt(payload)
    return cobs_encode(payload + bytes((crc & 0xFF, crc >> 8))) + b"\x00"


class FrameEncoder:
    """Builds device -> host frames with a running sequence number (starts at ``seq``)."""

    def __init__(self, seq=0):
        self.seq = seq & 0xFF

    def _frame(self, frame_type, body):
        wire = wrap_payload(frame_type, self.seq, body)
        self.seq = (self.seq + 1) & 0xFF
        return wire

    def hello(self, x_max, y_max, pressure_max, units_per_mm, rate_hz, name="inkstream", session=0):
        """HELLO: ranges are inclusive maxima (minimum 0); ``units_per_mm`` 0 means unknown.
        ``session`` must change when the device restarts (its sequence and clock restart)."""
        upm = int(round(units_per_mm * 100)) if units_per_mm and units_per_mm == units_per_mm else 0
        raw_name = name.encode()[:MAX_NAME]
        body = struct.pack(_HELLO, PROTOCOL_VERSION, x_max, y_max, pressure_max,
                           min(upm, 0xFFFF), rate_hz, session & 0xFFFF) + raw_name
        return self._frame(FRAME_HELLO, body)

    def sample(self, t_us, x, y, pressure, flags):
        """SAMPLE: ``t_us`` is the device clock in microseconds (wraps at 2**32)."""
        return self._frame(FRAME_SAMPLE, struct.pack(_SAMPLE, t_us & 0xFFFFFFFF, x, y, pressure, flags))

    def heartbeat(self, t_us, streaming):
        return self._frame(FRAME_HEARTBEAT,
                           struct.pack(_HEARTBEAT, t_us & 0xFFFFFFFF, STATE_STREAMING if streaming else 0))


class CommandReader:
    """Device side: splits host bytes at 0x00 and returns the valid command types.

    Bad frames (COBS, CRC, length, unknown type) are counted in ``errors`` and skipped.
    """

    def __init__(self):
        self._buf = bytearray()
        self._overflow = False
        self.errors = 0

    def feed(self, data):
        commands = []
        for byte in data:
            if byte != 0:
                if len(self._buf) < MAX_PAYLOAD + 4:
                    self._buf.append(byte)
                else:
                    self._overflow = True
                continue
            raw = bytes(self._buf)
            overflow = self._overflow
            self._buf = bytearray()
            self._overflow = False
            if not raw and not overflow:
                continue  # back-to-back delimiters are allowed padding
            command = None if overflow else _parse_command(raw)
            if command is None:
                self.errors += 1
            else:
                commands.append(command)
        return commands


def _parse_command(raw):
    payload = cobs_decode(raw)
    if payload is None or len(payload) != 4:
        return None
    if crc16_ccitt(payload[:2]) != payload[2] | (payload[3] << 8):
        return None
    if payload[0] not in COMMANDS:
        return None
    return payload[0]
