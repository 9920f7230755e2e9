"""Wacom ISDV4 / W8001 serial pen protocol (tablet-PC digitizers): decoder and packet encoder.

Layout (see ``../shared/REFERENCE.md`` / Linux ``wacom_w8001.c``): only the first byte of a
packet has bit 7 set. Pen packet, 9 bytes: byte 0 = 0x80 | proximity 0x20 | switch2 0x04 |
switch1 0x02 | tip 0x01 (control 0x40 and touch 0x10 clear); x = b1<<9 | b2<<2 | (b6&0x60)>>5,
y = b3<<9 | b4<<2 | (b6&0x18)>>3, pressure = (b6&7)<<7 | b5, tilt b7, b8 (all data bytes 7-bit).
Query reply, 11 bytes: byte 0 has 0x80 | 0x40, bytes 1-8 carry x max, y max, pressure max and
tilt max in the pen layout, bytes 9-10 the firmware version (major, minor). Commands are ASCII:
``*`` query, ``1`` start, ``0`` stop. Resolution 100 units/mm.

What :class:`IsdV4Decoder` guarantees (ISDV4 has no checksum, so this is all there is):
- resync on header bits: a sample is made only from a header byte followed by exactly 8 bytes
  with bit 7 clear; a header arriving early discards the partial packet (``errors.framing``),
  data bytes with no header before them are skipped (``errors.stray_bytes``);
- a pen sample has control and touch bits clear, no tip without proximity, and (once the query
  reply is known) x, y and pressure within the announced maxima (else ``errors.out_of_range``);
- hence one corrupted, dropped or inserted byte changes or removes at most the one packet it
  lands in; it never merges two packets or invents an extra one. A flipped bit among the 7 data
  bits of a packet is NOT detectable and yields a wrong sample.
- a query reply is accepted only while a query is outstanding (:meth:`IsdV4Decoder.query_sent`
  until the first acceptable reply, :meth:`IsdV4Decoder.query_done` or :meth:`reset`) and only
  with nonzero x, y and pressure maxima; otherwise it is dropped and counted
  (``errors.extra['unsolicited_query_reply']`` or ``errors.malformed``). Without this, one noise
  burst that looks like a reply could set new maxima (e.g. ``x_max = 0``) and every later
  sample would be rejected;
- ``t`` is the host's receive time (the protocol carries no timestamp): packets that arrive in
  one chunk are spaced back from the arrival time at the nominal rate, never decreasing.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .samples import BUTTON_1, BUTTON_2, DeviceInfo, ErrorCounters, PenSample

__all__ = ["IsdV4Decoder", "IsdV4PenPacket", "IsdV4QueryReply", "encode_pen_packet",
           "encode_query_reply", "QUERY", "START", "STOP", "UNITS_PER_MM", "BAUD_RATES"]

QUERY, START, STOP = b"*", b"1", b"0"
UNITS_PER_MM = 100.0
BAUD_RATES = (38400, 19200)  # try the first; fall back when the query gets no answer
PEN_PACKET_LEN = 9
QUERY_REPLY_LEN = 11
HEADER, CONTROL, PROXIMITY, TOUCH, SWITCH2, SWITCH1, TIP = 0x80, 0x40, 0x20, 0x10, 0x04, 0x02, 0x01
MAX_COORD = (1 << 16) - 1
MAX_PRESSURE = (1 << 10) - 1


@dataclass(frozen=True)
class IsdV4PenPacket:
    x: int
    y: int
    pressure: int
    tip: bool
    proximity: bool
    switch1: bool
    switch2: bool
    tilt_x: int = 0
    tilt_y: int = 0


@dataclass(frozen=True)
class IsdV4QueryReply:
    x_max: int
    y_max: int
    pressure_max: int
    tilt_x_max: int
    tilt_y_max: int
    firmware: tuple


Packet = Union[IsdV4PenPacket, IsdV4QueryReply]


def _pack_xyp(x: int, y: int, pressure: int, tilt_x: int, tilt_y: int) -> bytearray:
    if not (0 <= x <= MAX_COORD and 0 <= y <= MAX_COORD and 0 <= pressure <= MAX_PRESSURE):
        raise ValueError(f"ISDV4 field out of range: x={x} y={y} pressure={pressure}")
    b = bytearray(9)
    b[1], b[2] = (x >> 9) & 0x7F, (x >> 2) & 0x7F
    b[3], b[4] = (y >> 9) & 0x7F, (y >> 2) & 0x7F
    b[5] = pressure & 0x7F
    b[6] = ((x & 3) << 5) | ((y & 3) << 3) | ((pressure >> 7) & 7)
    b[7], b[8] = tilt_x & 0x7F, tilt_y & 0x7F
    return b


def encode_pen_packet(x: int, y: int, pressure: int, tip: bool, proximity: bool = True,
                      switch1: bool = False, switch2: bool = False, tilt_x: int = 0, tilt_y: int = 0) -> bytes:
    """The 9 wire bytes of one pen report. Raises ValueError when a field does not fit."""
    b = _pack_xyp(x, y, pressure, tilt_x, tilt_y)
    b[0] = HEADER | (PROXIMITY if proximity else 0) | (SWITCH2 if switch2 else 0) | (SWITCH1 if switch1 else 0) | (TIP if tip else 0)
    return bytes(b)


def encode_query_reply(x_max: int, y_max: int, pressure_max: int, tilt_x_max: int = 0,
                       tilt_y_max: int = 0, firmware: tuple = (1, 0)) -> bytes:
    """The 11 wire bytes a digitizer answers to ``*``."""
    b = _pack_xyp(x_max, y_max, pressure_max, tilt_x_max, tilt_y_max)
    b[0] = HEADER | CONTROL
    return bytes(b) + bytes((firmware[0] & 0x7F, firmware[1] & 0x7F))


def _unpack_xyp(p: bytes) -> tuple:
    x = (p[1] & 0x7F) << 9 | (p[2] & 0x7F) << 2 | (p[6] & 0x60) >> 5
    y = (p[3] & 0x7F) << 9 | (p[4] & 0x7F) << 2 | (p[6] & 0x18) >> 3
    pressure = (p[6] & 0x07) << 7 | (p[5] & 0x7F)
    return x, y, pressure, p[7] & 0x7F, p[8] & 0x7F


class IsdV4Decoder:
    """Incremental ISDV4 decoder fed arbitrary byte chunks; never raises on input bytes.

    ``clock`` gives the host time in seconds (default ``time.monotonic``); ``nominal_rate_hz``
    spaces packets that arrive together. ``info`` is set by a query reply, which is accepted
    only between :meth:`query_sent` and the first sane reply (see the module docstring).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, nominal_rate_hz: float = 133.0) -> None:
        self.errors = ErrorCounters()
        self.info: Optional[DeviceInfo] = None
        self.packets_ok = 0
        self.ignored_touch = 0
        self._clock = clock
        self._period = 1.0 / nominal_rate_hz
        self._packet = bytearray()
        self._skipping_touch = False
        self._t_origin: Optional[float] = None
        self._last_t = -math.inf
        self._query_outstanding = False

    def query_sent(self) -> None:
        """The host just sent ``*``: accept the next sane query reply."""
        self._query_outstanding = True

    def query_done(self) -> None:
        """Stop waiting for a query reply (e.g. the host gave up); later replies are ignored."""
        self._query_outstanding = False

    @property
    def query_outstanding(self) -> bool:
        return self._query_outstanding

    def reset(self) -> None:
        """Forget a partial packet, an outstanding query and the clock origin (after
        reconnecting); keeps counters and ``info``."""
        self._query_outstanding = False
        self._packet.clear()
        self._skipping_touch = False
        self._t_origin = None
        self._last_t = -math.inf

    def feed_packets(self, data: bytes) -> list[Packet]:
        packets = []
        for byte in bytes(data):
            if byte & HEADER:
                if self._packet:
                    self.errors.framing += 1  # cut short by the next header
                self._packet = bytearray((byte,))
                self._skipping_touch = bool(byte & TOUCH) and not byte & CONTROL
                if self._skipping_touch:
                    self.ignored_touch += 1  # touch packets vary in length; skip to the next header
                    self._packet.clear()
                continue
            if self._skipping_touch:
                continue
            if not self._packet:
                self.errors.stray_bytes += 1
                continue
            self._packet.append(byte)
            want = QUERY_REPLY_LEN if self._packet[0] & CONTROL else PEN_PACKET_LEN
            if len(self._packet) == want:
                packet = self._parse(bytes(self._packet))
                self._packet.clear()
                if packet is not None:
                    packets.append(packet)
                    self.packets_ok += 1
        return packets

    def _parse(self, p: bytes) -> Optional[Packet]:
        x, y, pressure, tilt_x, tilt_y = _unpack_xyp(p)
        if p[0] & CONTROL:
            if not self._query_outstanding:
                extra = self.errors.extra
                extra["unsolicited_query_reply"] = extra.get("unsolicited_query_reply", 0) + 1
                return None
            if not (x and y and pressure):
                self.errors.malformed += 1  # a maximum of 0 would reject every sample
                return None
            self._query_outstanding = False
            reply = IsdV4QueryReply(x, y, pressure, tilt_x, tilt_y, (p[9], p[10]))
            self.info = DeviceInfo("isdv4", x, y, pressure, UNITS_PER_MM, math.nan, "Wacom ISDV4",
                                   f"{p[9]}.{p[10]}")
            return reply
        tip, proximity = bool(p[0] & TIP), bool(p[0] & PROXIMITY)
        if tip and not proximity:
            self.errors.malformed += 1
            return None
        if self.info is not None and (x > self.info.x_max or y > self.info.y_max or pressure > self.info.pressure_max):
            self.errors.out_of_range += 1
            return None
        return IsdV4PenPacket(x, y, pressure, tip, proximity, bool(p[0] & SWITCH1), bool(p[0] & SWITCH2), tilt_x, tilt_y)

    def feed(self, data: bytes, now: Optional[float] = None) -> list[PenSample]:
        """Bytes in, pen samples out; ``now`` overrides the clock (tests, replays)."""
        pens = [p for p in self.feed_packets(data) if isinstance(p, IsdV4PenPacket)]
        if not pens:
            return []
        now = self._clock() if now is None else now
        first = now - (len(pens) - 1) * self._period
        if self._t_origin is None:
            self._t_origin = first
        pmax = self.info.pressure_max if self.info else 0
        samples = []
        for i, p in enumerate(pens):
            t = max(first + i * self._period - self._t_origin, self._last_t)
            self._last_t = t
            samples.append(PenSample(
                x=float(p.x), y=float(p.y), t=t,
                pressure=min(p.pressure / pmax, 1.0) if pmax else math.nan,
                tip=p.tip, proximity=p.proximity,
                buttons=(BUTTON_1 if p.switch1 else 0) | (BUTTON_2 if p.switch2 else 0)))
        return samples
