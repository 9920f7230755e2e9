"""Host side of the inkstream serial protocol (spec: ``PROTOCOL.md``).

:class:`InkstreamDecoder` is fed arbitrary byte chunks and returns decoded frames or
:class:`~firmware_bridge.samples.PenSample` objects. Bad frames are counted in
``decoder.errors`` and skipped; the decoder never raises on input bytes and never turns a frame
with a wrong CRC, length or sequence into a sample. :func:`encode_command` makes host commands.
"""
from __future__ import annotations

import collections
import math
import struct
from dataclasses import dataclass, field
from typing import Optional, Union

from .framing import CobsError, CobsFramer, cobs_decode, cobs_encode, crc16_ccitt
from .samples import BUTTON_1, BUTTON_2, DeviceInfo, ErrorCounters, PenSample

__all__ = ["InkstreamDecoder", "HelloFrame", "SampleFrame", "HeartbeatFrame", "encode_command",
           "PROTOCOL_VERSION", "START", "STOP", "DESCRIBE"]

PROTOCOL_VERSION = 1
HELLO, SAMPLE, HEARTBEAT = 0x01, 0x02, 0x03
START, STOP, DESCRIBE = 0x10, 0x11, 0x12
FLAG_TIP, FLAG_PROXIMITY, FLAG_BUTTON1, FLAG_BUTTON2 = 0x01, 0x02, 0x04, 0x08
MAX_PAYLOAD = 64
STALE_RESYNC = 4  # this many "old" sequence numbers in a row means a long loss, not replays
# The last frames of a session remembered so that, during the first frames after a restart, a late
# copy of one is still known as old.
REMEMBERED_FRAMES = 64
# Longest COBS encoding of a MAX_PAYLOAD payload; anything longer is "oversize".
MAX_ENCODED = MAX_PAYLOAD + 1 + MAX_PAYLOAD // 254
_HELLO_FIXED = struct.Struct("<BHHHHHH")
_SAMPLE = struct.Struct("<IHHHB")
_HEARTBEAT = struct.Struct("<IB")


@dataclass(frozen=True)
class HelloFrame:
    seq: int
    version: int
    x_max: int
    y_max: int
    pressure_max: int
    units_per_mm: float  # NaN when the device sent 0 (unknown)
    rate_hz: int
    session: int
    name: str
    # True when this HELLO announced a new session after an earlier one: the device restarted.
    restart: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class SampleFrame:
    seq: int
    t_us: int
    x: int
    y: int
    pressure: int
    flags: int
    # How many clock breaks (device restarts, or re-anchors after asking the device) the decoder
    # had seen when it accepted this frame; ``to_pen_sample`` rebases the clock when it changes.
    # Not part of the frame's identity.
    epoch: int = field(default=0, compare=False)


@dataclass(frozen=True)
class HeartbeatFrame:
    seq: int
    t_us: int
    streaming: bool


Frame = Union[HelloFrame, SampleFrame, HeartbeatFrame]


def encode_command(command: int, seq: int = 0) -> bytes:
    """Wire bytes of a host command (START, STOP or DESCRIBE), delimiter included."""
    if command not in (START, STOP, DESCRIBE):
        raise ValueError(f"unknown inkstream command 0x{command:02x}")
    payload = bytes((command, seq & 0xFF))
    crc = crc16_ccitt(payload)
    return cobs_encode(payload + struct.pack("<H", crc)) + b"\x00"


class InkstreamDecoder:
    """Incremental decoder of device -> host frames.

    Guarantees: :meth:`feed_frames` returns only frames whose COBS, CRC-16, type and exact
    length are valid, whose sequence number is not older than the last accepted one and whose
    device time is later than the last accepted sample's (a duplicate or late frame is counted
    ``stale`` and dropped, so ``t`` never goes back and no sample is yielded twice). Gaps add
    to ``errors.lost``. A HELLO with a new ``session`` resets the sequence and clock
    expectations (the device restarted): it is returned with ``restart=True``, ``restarts``
    counts it, and :meth:`to_pen_sample` rebases the time origin so ``t`` stays monotone and
    continuous (the new session's first sample comes one nominal sample period after the last
    one). ``info`` holds the last HELLO as :class:`DeviceInfo`.

    Recovery when the decoder's expectations are wrong (PROTOCOL.md, "Device restarts"): after a
    restart, a copy of one of the old session's last frames is ``stale``. Any ``stale`` frame sets
    ``describe_wanted``: the host should send DESCRIBE and call :meth:`describe_sent`. The HELLO
    that answers it gives the device's live sequence number: a new ``session`` is a restart whose
    boot HELLO was lost; the same session re-anchors the sequence at that HELLO, and the next
    frame's clock is taken even if it went back (``t`` is then rebased, never going back). So a
    lost HELLO, or an old frame taken for a new one, costs one DESCRIBE round trip.
    """

    def __init__(self) -> None:
        self.errors = ErrorCounters()
        self.info: Optional[DeviceInfo] = None
        self.last_heartbeat: Optional[HeartbeatFrame] = None
        self.frames_ok = 0
        self._framer = CobsFramer(MAX_ENCODED)
        self._expected_seq: Optional[int] = None
        self._stale_run = 0
        self._session: Optional[int] = None
        self._last_seen_t_us: Optional[int] = None
        self._last_t_us: Optional[int] = None
        self._t_offset_us = 0  # added on each 2**32 wrap of the device clock
        self._t_origin_us: Optional[int] = None
        self._new_session = False
        self.restarts = 0  # new-session HELLOs accepted (device restarts seen)
        self._t_base_s = 0.0  # t of the current session's first sample
        self._last_pen_t: Optional[float] = None  # t of the last PenSample made
        self._clock_epoch = 0  # the epoch the clock state above belongs to
        self._epoch = 0  # clock breaks so far: restarts and re-anchors (stamped on SampleFrames)
        self.describe_wanted = False  # a stale frame came: ask the device (see the class doc)
        self._answer_pending = False  # a DESCRIBE was sent; its HELLO re-anchors the sequence
        self._clock_unanchored = False  # take the next frame's clock even if it went back
        self._recent: "collections.deque" = collections.deque(maxlen=REMEMBERED_FRAMES)
        self._previous_session: frozenset = frozenset()  # _recent of the session before a restart

    def reset(self) -> None:
        """Forget partial frames and sequence/clock state (call after reconnecting); keeps counters."""
        self._framer.reset()
        self._expected_seq = None
        self._stale_run = 0
        self._session = None
        self._last_seen_t_us = None
        self._last_t_us = None
        self._t_offset_us = 0
        self._t_origin_us = None
        self._t_base_s = 0.0
        self._last_pen_t = None
        self._clock_epoch = self._epoch
        self.describe_wanted = False
        self._answer_pending = False
        self._clock_unanchored = False
        self._recent.clear()
        self._previous_session = frozenset()

    def describe_sent(self) -> None:
        """The host sent DESCRIBE: the HELLO that answers it re-anchors the sequence (class doc)."""
        self.describe_wanted = False
        self._answer_pending = True

    def feed_frames(self, data: bytes) -> list[Frame]:
        oversize_before = self._framer.oversize
        frames = []
        for raw in self._framer.feed(data):
            frame = self._parse(raw)
            if frame is not None and self._sequence_ok(frame):
                if isinstance(frame, HelloFrame) and self._new_session:
                    self.restarts += 1
                    frame = HelloFrame(**{**frame.__dict__, "restart": True})
                elif isinstance(frame, SampleFrame) and self._epoch:
                    frame = SampleFrame(**{**frame.__dict__, "epoch": self._epoch})
                frames.append(frame)
                self.frames_ok += 1
                if isinstance(frame, HelloFrame):
                    self.info = DeviceInfo("inkstream", frame.x_max, frame.y_max, frame.pressure_max,
                                           frame.units_per_mm, float(frame.rate_hz) or math.nan,
                                           frame.name, str(frame.version))
                elif isinstance(frame, HeartbeatFrame):
                    self.last_heartbeat = frame
        self.errors.oversize += self._framer.oversize - oversize_before
        return frames

    def feed(self, data: bytes) -> list[PenSample]:
        """Bytes in, pen samples out (HELLO and HEARTBEAT frames update ``info``/``last_heartbeat``)."""
        return [self.to_pen_sample(f) for f in self.feed_frames(data) if isinstance(f, SampleFrame)]

    def to_pen_sample(self, frame: SampleFrame) -> PenSample:
        """``t`` is seconds since the first sample after the last reset, unwrapping the 32-bit clock.
        Call it in the order :meth:`feed_frames` returned the frames. After a device restart
        (a sample of a later ``epoch``) the device clock starts over; the time origin is rebased
        so the first new sample is one nominal period (``1 / rate_hz``, else 0) after the last."""
        if frame.epoch != self._clock_epoch:
            self._clock_epoch = frame.epoch
            self._last_t_us = None
            self._t_offset_us = 0
            self._t_origin_us = None
            if self._last_pen_t is not None:
                rate = self.info.rate_hz if self.info else math.nan
                self._t_base_s = self._last_pen_t + (1.0 / rate if rate > 0 else 0.0)
        if self._last_t_us is not None and frame.t_us < self._last_t_us and self._last_t_us - frame.t_us > 2**31:
            self._t_offset_us += 2**32
        self._last_t_us = frame.t_us
        t_us = frame.t_us + self._t_offset_us
        if self._t_origin_us is None:
            self._t_origin_us = t_us
        pmax = self.info.pressure_max if self.info else 0
        buttons = (BUTTON_1 if frame.flags & FLAG_BUTTON1 else 0) | (BUTTON_2 if frame.flags & FLAG_BUTTON2 else 0)
        t = self._t_base_s + (t_us - self._t_origin_us) / 1e6
        self._last_pen_t = t
        return PenSample(
            x=float(frame.x), y=float(frame.y), t=t,
            pressure=min(frame.pressure / pmax, 1.0) if pmax else math.nan,
            tip=bool(frame.flags & FLAG_TIP), proximity=bool(frame.flags & FLAG_PROXIMITY), buttons=buttons)

    def _parse(self, raw: bytes) -> Optional[Frame]:
        try:
            payload = cobs_decode(raw)
        except CobsError:
            self.errors.framing += 1
            return None
        if len(payload) < 4:
            self.errors.malformed += 1
            return None
        if crc16_ccitt(payload[:-2]) != int.from_bytes(payload[-2:], "little"):
            self.errors.crc += 1
            return None
        kind, seq, body = payload[0], payload[1], payload[2:-2]
        if kind == SAMPLE and len(body) == _SAMPLE.size:
            t_us, x, y, pressure, flags = _SAMPLE.unpack(body)
            if flags & 0xF0 or (flags & FLAG_TIP and not flags & FLAG_PROXIMITY):
                self.errors.malformed += 1  # reserved bits set, or touching while out of range
                return None
            if self.info is not None and (x > self.info.x_max or y > self.info.y_max):
                self.errors.out_of_range += 1
                return None
            return SampleFrame(seq, t_us, x, y, pressure, flags)
        if kind == HEARTBEAT and len(body) == _HEARTBEAT.size:
            t_us, state = _HEARTBEAT.unpack(body)
            return HeartbeatFrame(seq, t_us, bool(state & 1))
        if kind == HELLO and _HELLO_FIXED.size <= len(body) <= _HELLO_FIXED.size + 24:
            version, x_max, y_max, pmax, upm, rate, session = _HELLO_FIXED.unpack(body[:_HELLO_FIXED.size])
            if version != PROTOCOL_VERSION:
                self.errors.extra["unsupported_version"] = self.errors.extra.get("unsupported_version", 0) + 1
                return None
            name = body[_HELLO_FIXED.size:].decode("utf-8", "replace")
            return HelloFrame(seq, version, x_max, y_max, pmax, upm / 100 if upm else math.nan, rate, session, name)
        if kind in (SAMPLE, HEARTBEAT, HELLO):
            self.errors.malformed += 1
        else:
            self.errors.unknown_type += 1
        return None

    def _sequence_ok(self, frame: Frame) -> bool:
        ok = self._judge_sequence(frame)
        if not ok:
            self.describe_wanted = True
        elif not isinstance(frame, HelloFrame):
            self._recent.append((type(frame), frame.seq, frame.t_us))
            if self._previous_session and len(self._recent) == REMEMBERED_FRAMES:
                self._previous_session = frozenset()  # late copies come soon after a restart, or never
        return ok

    def _judge_sequence(self, frame: Frame) -> bool:
        self._new_session = False
        if isinstance(frame, HelloFrame) and self._session is None:
            self._session = frame.session  # first HELLO: learn the session, judge it as any frame
            self._answer_pending = False
        elif isinstance(frame, HelloFrame) and frame.session != self._session:
            self._session = frame.session  # the device restarted: sequence and clock start over
            self._last_seen_t_us = None
            self._expected_seq = None
            self._new_session = True
            self._answer_pending = self._clock_unanchored = False
            self._epoch += 1
            self._previous_session = frozenset(self._recent)
            self._recent.clear()
        elif isinstance(frame, HelloFrame) and self._answer_pending:
            # The device's answer to DESCRIBE carries its live seq: what follows it is live, even
            # when what we took before (an old frame after a restart) said otherwise.
            self._answer_pending = False
            self._clock_unanchored = True
            self._expected_seq = None
            self._previous_session = frozenset()  # the device said where it is: no more doubt
            self.errors.extra["reanchored"] = self.errors.extra.get("reanchored", 0) + 1
        elif not isinstance(frame, HelloFrame) and (type(frame), frame.seq, frame.t_us) in self._previous_session:
            # A copy of one of the last frames before the restart (a rebooted device's clock does
            # not repeat the old one's to the microsecond; if it did, DESCRIBE sorts it out).
            self.errors.stale += 1
            return False
        if self._expected_seq is None:
            self._accept_sequence(frame)
            return True
        ahead = (frame.seq - self._expected_seq) & 0xFF
        if self._clock_unanchored and not isinstance(frame, HelloFrame) and ahead < 128:
            self._clock_unanchored = False
            if not self._clock_moved_on(frame):
                self._epoch += 1  # the clock we held was not the live one: rebase host time
            self._stale_run = 0
            self.errors.lost += ahead
            self._accept_sequence(frame)
            return True
        if ahead < 128 and self._clock_moved_on(frame):
            self._stale_run = 0
            self.errors.lost += ahead
            self._accept_sequence(frame)
            return True
        # Behind the last accepted frame (duplicate or reordered), or its clock went back.
        self._stale_run += 1
        if self._stale_run >= STALE_RESYNC and self._clock_moved_on(frame):
            # Several "old" sequence numbers in a row while the clock moved on: more likely
            # over 127 frames were lost than replayed.
            self.errors.extra["resync"] = self.errors.extra.get("resync", 0) + 1
            self._stale_run = 0
            self._accept_sequence(frame)
            return True
        self.errors.stale += 1
        return False

    def _clock_moved_on(self, frame: Frame) -> bool:
        """Samples must be strictly later than the last accepted frame, heartbeats not earlier."""
        if isinstance(frame, HelloFrame) or self._last_seen_t_us is None:
            return True
        advance = (frame.t_us - self._last_seen_t_us) & 0xFFFFFFFF
        if advance >= 2**31:
            return False
        return advance > 0 or isinstance(frame, HeartbeatFrame)

    def _accept_sequence(self, frame: Frame) -> None:
        self._expected_seq = (frame.seq + 1) & 0xFF
        if not isinstance(frame, HelloFrame):
            self._last_seen_t_us = frame.t_us
