"""An emulated pen tablet on a pseudo-terminal, for tests and demos without hardware.

:class:`EmulatedTablet` opens a pty (``tablet.path`` is the tty a host opens with pyserial) and
replays ink as a device would: in the ``inkstream`` protocol (frames from the firmware's own
encoder, ``firmware/inkstream_protocol.py``) or as a Wacom ``isdv4`` digitizer. It answers host
commands (inkstream START/STOP/DESCRIBE; ISDV4 ``*``/``1``/``0``), streams only after a start
command unless ``autostart``, scales ink into the device's coordinate range, sends a pen-left
report after each stroke, and can corrupt outgoing bytes (flip, drop or insert) with
probability ``noise`` per byte. :meth:`EmulatedTablet.reboot` restarts the device while the pty
stays open (as over a UART bridge): new session, seq and clock from 0, a boot HELLO, and no
streaming until the next start command (unless ``autostart``); it can also lose that HELLO on the
wire or send a stale copy of the old session's last sample after it (faults a host must survive).
:meth:`EmulatedTablet.freeze` hangs the device with the port open (nothing sent, nothing read,
no heartbeats) until :meth:`EmulatedTablet.thaw`.

Timing: the device clock runs ``speed`` times faster than the wall clock; the ink's own times
(or times resampled at ``rate_hz``) are device times. inkstream SAMPLE timestamps are therefore
the ink's timing, whatever the speed.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pty
import random
import select
import struct
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from . import isdv4
from .firmware import inkstream_protocol as device_protocol
from .replay import DeviceArea, PenEvent, estimate_rate_hz, lay_out_on_device, pen_events, resample_points, validate_points

__all__ = ["EmulatorConfig", "EmulatedTablet", "EmulatorStats", "INKSTREAM_AREA", "ISDV4_AREA", "corrupt_bytes"]

PROTOCOLS = ("inkstream", "isdv4")
INKSTREAM_AREA = DeviceArea(x_max=65535, y_max=65535, units_per_mm=200.0, pressure_max=1023)
ISDV4_AREA = DeviceArea(x_max=30000, y_max=20000, units_per_mm=isdv4.UNITS_PER_MM, pressure_max=1023)
PEN_PRESSURE = 0.6  # corpora carry no pressure: a steady 60 % while the tip is down
MAX_PENDING = 4096  # bytes unread by the host; beyond this output is dropped, as a UART would


@dataclass(frozen=True)
class EmulatorConfig:
    protocol: str = "inkstream"
    rate_hz: Optional[float] = None   # None: the ink's own timing
    speed: float = 1.0
    loop: bool = False
    noise: float = 0.0
    autostart: bool = False
    seed: Optional[int] = None
    gap_between_inks: float = 0.5     # device seconds of "pen away" between two inks
    heartbeat_period: float = 1.0     # wall seconds (inkstream only)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be a probability in [0, 1], got {self.noise}")


@dataclass
class EmulatorStats:
    samples_sent: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    bytes_corrupted: int = 0
    bytes_dropped_unread: int = 0
    commands: list = field(default_factory=list)
    loops: int = 0
    reboots: int = 0


def corrupt_bytes(data: bytes, probability: float, rng: random.Random) -> tuple[bytes, int]:
    """Each byte, with ``probability``: one bit flipped, dropped, or preceded by a random byte.
    Returns the new bytes and how many corruptions were made."""
    if probability <= 0:
        return data, 0
    out = bytearray()
    count = 0
    for byte in data:
        if rng.random() < probability:
            count += 1
            kind = rng.randrange(3)
            if kind == 0:
                out.append(byte ^ (1 << rng.randrange(8)))
            elif kind == 1:
                pass
            else:
                out.append(rng.randrange(256))
                out.append(byte)
        else:
            out.append(byte)
    return bytes(out), count


class EmulatedTablet:
    """Replays ``inks`` (a list of ``(points, units_per_mm)``; points ``(N, 4)``) on a pty.

    ``open()`` creates the pty; ``start()`` runs the device on a thread; ``run()`` runs it in the
    calling thread until the replay ends (never, with ``loop``) or ``stop()``. ``finished`` is
    set when the last report has been written. ``close()`` stops and closes both pty ends, which
    a host sees as the device vanishing.
    """

    def __init__(self, inks: Sequence[tuple], config: EmulatorConfig = EmulatorConfig()):
        self.config = config
        self.area = INKSTREAM_AREA if config.protocol == "inkstream" else ISDV4_AREA
        self.stats = EmulatorStats()
        self.finished = threading.Event()
        self._rng = random.Random(config.seed)
        self._events, self.rate_hz = self._schedule(inks)
        self._master: Optional[int] = None
        self._slave: Optional[int] = None
        self.path: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._encoder = device_protocol.FrameEncoder()
        self._commands = device_protocol.CommandReader()
        self._streaming = config.autostart
        self._session = self._rng.randrange(1, 1 << 16)  # a new one per emulator, as per boot
        self._reboot_requested = threading.Event()
        self._reboot_faults = (False, False)  # (lose the boot HELLO, replay the last old sample)
        self._frozen = threading.Event()
        self._last_sample_wire = b""
        self.last_sample_sent: Optional[PenEvent] = None  # the report _last_sample_wire carries

    # -- the replay schedule ---------------------------------------------------------------
    def _schedule(self, inks: Sequence[tuple]) -> tuple[list[PenEvent], float]:
        events: list[PenEvent] = []
        rates = []
        t = 0.0
        inks = [(validate_points(points, f"ink {k}"), upm) for k, (points, upm) in enumerate(inks)]
        if self.config.rate_hz:
            inks = [(resample_points(p, self.config.rate_hz) if len(p) else p, upm) for p, upm in inks]
        # written down the tablet, a line below the last, as a writer fills a page
        for (points, _), xy in zip(inks, lay_out_on_device(inks, self.area)):
            if len(points) == 0:
                continue
            rate = self.config.rate_hz or estimate_rate_hz(points)
            rates.append(rate)
            ink_events = pen_events(points, xy, t, 1.0 / rate)
            events.extend(ink_events)
            t = ink_events[-1].t + self.config.gap_between_inks
        if not events:
            raise ValueError("nothing to replay: every ink is empty")
        self._cycle = t  # device seconds from the first report to the start of the next loop
        return events, float(np.median(rates))

    # -- pty -------------------------------------------------------------------------------
    def open(self) -> str:
        """Create the pty and return the path a host should open."""
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)  # binary-safe: no echo, no CR/LF translation
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        return self.path

    def _pending(self) -> int:
        """Bytes written but not yet read by the host (we hold the slave end, so we can ask)."""
        buf = fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def _write(self, data: bytes, frames: int = 1) -> None:
        data, corrupted = corrupt_bytes(data, self.config.noise, self._rng)
        self.stats.bytes_corrupted += corrupted
        if self._pending() + len(data) > MAX_PENDING:
            self.stats.bytes_dropped_unread += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
        self.stats.bytes_sent += len(data)
        self.stats.frames_sent += frames

    # -- device behaviour --------------------------------------------------------------------
    def _hello(self) -> bytes:
        a = self.area
        return self._encoder.hello(a.x_max, a.y_max, a.pressure_max, a.units_per_mm,
                                   int(round(self.rate_hz)), "inkstream emulator", self._session)

    def _handle_input(self, data: bytes) -> None:
        if self.config.protocol == "inkstream":
            for command in self._commands.feed(data):
                self.stats.commands.append(command)
                if command == device_protocol.CMD_DESCRIBE:
                    self._write(self._hello())
                elif command == device_protocol.CMD_START:
                    self._streaming = True
                elif command == device_protocol.CMD_STOP:
                    self._streaming = False
            return
        for byte in data:
            command = bytes((byte,))
            self.stats.commands.append(command)
            if command == isdv4.QUERY:
                a = self.area
                self._write(isdv4.encode_query_reply(a.x_max, a.y_max, a.pressure_max, 60, 60, (1, 2)))
            elif command == isdv4.START:
                self._streaming = True
            elif command in (isdv4.STOP, b"&"):
                self._streaming = False

    def _report(self, event: PenEvent, device_t: float) -> bytes:
        pressure = int(round(PEN_PRESSURE * self.area.pressure_max)) if event.tip else 0
        if self.config.protocol == "isdv4":
            return isdv4.encode_pen_packet(event.x, event.y, pressure, event.tip, event.proximity)
        flags = (device_protocol.FLAG_TIP if event.tip else 0) | (device_protocol.FLAG_PROXIMITY if event.proximity else 0)
        return self._encoder.sample(int(round(device_t * 1e6)), event.x, event.y, pressure, flags)

    def reboot(self, hello_lost: bool = False, replay_last: bool = False) -> None:
        """Restart the emulated device (thread-safe; done by the device loop): see the module doc.
        ``hello_lost``: the boot HELLO never reaches the host (a UART reader that joined late).
        ``replay_last``: after the boot HELLO the old session's last SAMPLE frame arrives again,
        byte for byte (a late or duplicated frame)."""
        self._reboot_faults = (hello_lost, replay_last)
        self._reboot_requested.set()

    def freeze(self) -> None:
        """Hang the device (thread-safe): the port stays open, nothing is sent or read."""
        self._frozen.set()

    def thaw(self) -> None:
        """End :meth:`freeze`: the device goes on where it was (its clock kept running)."""
        self._frozen.clear()

    def _do_reboot(self) -> None:
        hello_lost, replay_last = self._reboot_faults
        old = self._session
        while self._session == old:
            self._session = self._rng.randrange(1, 1 << 16)
        self._encoder = device_protocol.FrameEncoder()
        self._commands = device_protocol.CommandReader()
        self._streaming = self.config.autostart
        self.stats.reboots += 1
        if self.config.protocol == "inkstream":
            hello = self._hello()  # the boot HELLO (seq 0) is made even when it is lost
            if not hello_lost:
                self._write(hello)
            if replay_last and self._last_sample_wire:
                self._write(self._last_sample_wire)

    def run(self) -> None:
        if self._master is None:
            self.open()
        boot = time.monotonic()
        device_clock = lambda: (time.monotonic() - boot) * self.config.speed  # noqa: E731
        index = 0
        offset: Optional[float] = None   # device time of schedule time 0 in the current pass
        next_heartbeat = time.monotonic() + self.config.heartbeat_period
        while not self._stop.is_set():
            if self._frozen.is_set():
                self._stop.wait(0.01)
                next_heartbeat = time.monotonic() + self.config.heartbeat_period
                continue
            if self._reboot_requested.is_set():
                self._reboot_requested.clear()
                self._do_reboot()
                boot = time.monotonic()  # the device clock starts over
                index, offset = 0, None
                self.finished.clear()
            now_dev = device_clock()
            if self._streaming and not self.finished.is_set():
                if offset is None:  # (re)started: the next report is due now
                    offset = now_dev - self._events[index].t
                burst = bytearray()
                count = 0
                while index < len(self._events) and self._events[index].t + offset <= now_dev:
                    event = self._events[index]
                    report = self._report(event, event.t + offset)
                    burst += report
                    self._last_sample_wire, self.last_sample_sent = report, event
                    count += 1
                    index += 1
                if burst:
                    self._write(bytes(burst), count)
                    self.stats.samples_sent += count
                if index == len(self._events):
                    if self.config.loop:
                        index = 0
                        offset += self._cycle
                        self.stats.loops += 1
                    else:
                        self.finished.set()
            elif not self._streaming:
                offset = None
            if self.config.protocol == "inkstream" and time.monotonic() >= next_heartbeat:
                self._write(self._encoder.heartbeat(int(now_dev * 1e6), self._streaming))
                next_heartbeat += self.config.heartbeat_period
            # Sleep until the next report is due or the host says something.
            wait = 0.05
            if self._streaming and offset is not None and index < len(self._events) and not self.finished.is_set():
                wait = min(wait, max(0.0, (self._events[index].t + offset - device_clock()) / self.config.speed))
            readable, _, _ = select.select([self._master], [], [], wait)
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        continue  # no host has the tty open right now
                    raise
                self._handle_input(data)
            if self.finished.is_set() and not self.config.loop and self._thread is None:
                return

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until the host has read everything written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._slave is None or self._pending() == 0:
                return True
            time.sleep(0.01)
        return False

    def start(self) -> "EmulatedTablet":
        """Open (if needed) and run on a daemon thread; returns self."""
        if self._master is None:
            self.open()
        self._thread = threading.Thread(target=self.run, name="emulated-tablet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def close(self) -> None:
        """Stop and close both ends of the pty: to the host, the device was unplugged."""
        self.stop()
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass  # already closed
        self._master = self._slave = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
