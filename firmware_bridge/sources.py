"""Pen sources: one shape for every way pen samples reach the host.

A :class:`PenSource` yields :class:`~firmware_bridge.samples.PenSample` objects in time order
(``read(timeout)`` for a batch, or iterate), exposes ``info`` (a
:class:`~firmware_bridge.samples.DeviceInfo` once the device has described itself), ``errors``
(a snapshot of :class:`~firmware_bridge.samples.ErrorCounters`) and ``events`` (a queue of
:class:`~firmware_bridge.reader.ReaderEvent`; empty for files), and is closed with
:meth:`close` or a ``with`` block.

Serial sources run a :class:`~firmware_bridge.reader.ReconnectingReader` thread. When the port
vanishes while the pen is down they deliver one synthetic "pen left" sample (tip up,
proximity out) so open strokes end; after reconnecting they ask the device to describe itself
and start again. An inkstream device that restarts without the port going away (a UART bridge
stays open) announces a new session in its HELLO: the source then ends the open stroke the same
way, puts a ``device_restarted`` event on ``events``, and sends DESCRIBE + START again. When that
HELLO was lost, the stale frames that follow make the source ask (DESCRIBE, at most every
``RESYNC_INTERVAL``); the answer reveals the restart (see ``inkstream.InkstreamDecoder``).
An inkstream device sends a heartbeat at least once a second: no frame for ``stall_timeout``
seconds puts a ``stalled`` event on ``events`` (and ends the open stroke), frames again a
``resumed`` one.

A path that can never be a serial port (a directory, a regular file, a folder that does not exist
outside ``/dev``) raises ValueError when the source is made; a character device that is not a
terminal ends the reader with that message. A missing device in an existing folder, or anywhere
under ``/dev`` (udev makes ``/dev/serial/by-id`` when the first adapter is plugged in), is retried.
"""
from __future__ import annotations

import math
import os
import queue
import stat
import threading
import time
from typing import Callable, Iterator, Optional, Union

import numpy as np
import serial

from . import inkstream, isdv4
from .reader import (DEVICE_RESTARTED, RESUMED, STALLED, PortProtocol, PortUnusable, ReconnectingReader,
                     ReconnectPolicy, ReaderEvent)
from .replay import estimate_rate_hz, resample_points, validate_points
from .samples import DeviceInfo, ErrorCounters, PenSample

__all__ = ["PenSource", "InkstreamSerialSource", "IsdV4SerialSource", "FileReplaySource", "open_source",
           "serial_path_problem"]

READ_TIMEOUT = 0.05  # serial read timeout: how quickly the reader notices stop()
STALL_TIMEOUT = 3.0  # seconds without a frame (heartbeats come at least every second): stalled
RESYNC_INTERVAL = 0.5  # the least time between two DESCRIBEs sent to recover from stale frames


def serial_path_problem(path: str, probe_tty: bool = False) -> Optional[str]:
    """Why ``path`` can never be a serial port (one line), or None when it is one or may become
    one (a device not plugged in yet). Only looks at the file system unless ``probe_tty``, which
    opens a character device once to ask whether it is a terminal (call it after pyserial's open
    failed, not before: opening a port can reset the board behind it)."""
    if os.name != "posix":
        return None  # COM ports have no file system entry to judge
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) and not parent.startswith("/dev/"):
            return f"{path}: there is no folder {parent}, so it can never be a serial port"
        return None  # not plugged in yet (or a dangling /dev/serial/by-id link)
    except NotADirectoryError:
        return f"{path}: part of the path is a file, not a folder, so it can never be a serial port"
    except OSError:
        return None  # e.g. no permission to look: let the open report it
    if stat.S_ISDIR(mode):
        return f"{path} is a directory, not a serial port"
    if stat.S_ISREG(mode):
        return (f"{path} is a regular file, not a serial port (writing to a device path while nothing "
                "was plugged in leaves one: remove it)")
    if not stat.S_ISCHR(mode):
        return f"{path} is not a character device, so not a serial port"
    if probe_tty:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None  # busy, gone or no permission: worth retrying
        try:
            if not os.isatty(fd):
                return f"{path} is a character device but not a terminal, so not a serial port"
        finally:
            os.close(fd)
    return None


class PenSource:
    """The shape every pen source has (see the module docstring)."""

    info: Optional[DeviceInfo] = None
    # device restarts that read() went past (a serial source counts them; see read)
    session_breaks: int = 0
    # monotonic time the oldest sample of the last non-empty read() reached this host, where the
    # source knows it (a page's samples wait in a queue); None: the read itself is the arrival
    read_arrival: Optional[float] = None

    def __init__(self) -> None:
        self.events: "queue.Queue[ReaderEvent]" = queue.Queue()

    def read(self, timeout: Optional[float] = None) -> list[PenSample]:
        """Samples available now; waits up to ``timeout`` seconds (None: forever) for the first
        one. Returns [] on timeout and once the source has ended or was closed; a serial source
        also stops at a device restart (see ``session_breaks``), possibly with []."""
        raise NotImplementedError

    @property
    def ended(self) -> bool:
        """True when no more samples will come (closed, file exhausted, reader gave up)."""
        raise NotImplementedError

    @property
    def errors(self) -> ErrorCounters:
        return ErrorCounters()

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[PenSample]:
        while not self.ended:
            yield from self.read(timeout=0.2)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# In the sample queue: the device started a new session here (it rebooted), so the ink before and
# after it belongs to different lines; read() stops at it and counts it in `session_breaks`
_SESSION_BREAK = object()


class _SerialPenSource(PenSource, PortProtocol):
    """Common part of the serial sources: the reader thread, the sample queue, pen-lift on loss."""

    def __init__(self, path: str, baudrate: int, decoder, policy: ReconnectPolicy,
                 on_event: Optional[Callable[[ReaderEvent], None]], start_reader: bool = True):
        PenSource.__init__(self)
        problem = serial_path_problem(path)
        if problem:
            raise ValueError(problem)
        self.path = path
        self.baudrate = baudrate
        self.decoder = decoder
        self._samples: "queue.Queue[PenSample]" = queue.Queue()  # and _SESSION_BREAK markers
        self.session_breaks = 0  # device restarts read so far; each one ends a read() (see read)
        self._pen_down = False
        self._last_sample: Optional[PenSample] = None
        self._lock = threading.Lock()  # decoder counters are read from other threads
        self._closed = False
        self.reader = ReconnectingReader(self._open_port, self, policy, on_event)
        self.events = self.reader.events
        if start_reader:
            self.reader.start()

    def _open_port(self) -> serial.Serial:
        try:
            return serial.Serial(self.path, self.baudrate, timeout=READ_TIMEOUT, write_timeout=1.0)
        except (serial.SerialException, OSError) as exc:
            problem = serial_path_problem(self.path, probe_tty=True)
            if problem:
                raise PortUnusable(problem) from exc
            raise

    @property
    def info(self) -> Optional[DeviceInfo]:
        return self.decoder.info

    @property
    def errors(self) -> ErrorCounters:
        with self._lock:
            return self.decoder.errors.snapshot()

    @property
    def ended(self) -> bool:
        return self._samples.empty() and (self._closed or not self.reader.is_alive())

    def _deliver(self, samples: list[PenSample]) -> None:
        for s in samples:
            self._samples.put(s)
            self._last_sample = s
            self._pen_down = s.tip

    def data_received(self, data: bytes) -> None:
        with self._lock:
            samples = self.decoder.feed(data)
        self._deliver(samples)

    def _pen_left(self) -> None:
        """End an open stroke with a synthetic pen-left sample at the last position and time."""
        if self._pen_down and self._last_sample is not None:
            s = self._last_sample
            self._deliver([PenSample(s.x, s.y, s.t, 0.0, tip=False, proximity=False, buttons=0)])

    def connection_lost(self, exc) -> None:
        self._pen_left()
        with self._lock:
            self.decoder.reset()

    def read(self, timeout: Optional[float] = None) -> list[PenSample]:
        """The samples queued so far (waiting up to ``timeout`` for the first). A read stops at a
        device restart and counts it in ``session_breaks``: when that count grew, the restart
        came after the samples this read returned and before the next read's."""
        out = []
        try:
            if self.ended:
                return out
            item = self._samples.get(timeout=timeout)
            while item is not _SESSION_BREAK:
                out.append(item)
                item = self._samples.get_nowait()
            self.session_breaks += 1
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # first, so a restart seen meanwhile does not send START again
        self._send_stop()
        self.reader.stop()

    def _send_stop(self) -> None:
        pass


class InkstreamSerialSource(_SerialPenSource):
    """A device speaking the inkstream protocol (``PROTOCOL.md``), e.g. the RP2040 firmware.

    On every (re)connect it sends DESCRIBE then START; on close it sends STOP. When a HELLO
    announces a new session (the device restarted while the port stayed open) it ends the open
    stroke, emits a ``device_restarted`` event and sends DESCRIBE then START again (unless closing).
    Stale frames (a restart whose HELLO was lost, or an old frame taken after one) make it send
    DESCRIBE, at most every ``RESYNC_INTERVAL``; a heartbeat saying "not streaming" more than
    ``stall_timeout`` after the last START makes it send DESCRIBE + START. No frame for
    ``stall_timeout`` seconds (None: never) emits ``stalled``, ends the open stroke and sends
    DESCRIBE + START every ``stall_timeout`` while it lasts; the next frame emits ``resumed``.
    USB-CDC ignores the baud rate, a UART bridge needs the firmware's (115200).
    """

    # Defaults of the state below (set again per instance in __init__; the reader thread owns it).
    stall_timeout: Optional[float] = STALL_TIMEOUT
    _last_frame_at = 0.0
    _stalled_since: Optional[float] = None
    _last_describe = -math.inf
    _last_start = -math.inf

    def __init__(self, path: str, baudrate: int = 115200, policy: ReconnectPolicy = ReconnectPolicy(),
                 on_event: Optional[Callable[[ReaderEvent], None]] = None,
                 stall_timeout: Optional[float] = STALL_TIMEOUT):
        if stall_timeout is not None and not stall_timeout > 0:
            raise ValueError(f"stall_timeout must be > 0 seconds (or None), got {stall_timeout}")
        self.stall_timeout = stall_timeout
        self._command_seq = 0
        self._last_frame_at = time.monotonic()  # reader thread only, like the three below
        self._stalled_since: Optional[float] = None
        self._last_describe = -math.inf  # when a recovery DESCRIBE was last sent
        self._last_start = -math.inf  # when START was last sent
        super().__init__(path, baudrate, inkstream.InkstreamDecoder(), policy, on_event)

    def _command(self, command: int) -> bytes:
        wire = inkstream.encode_command(command, self._command_seq)
        self._command_seq = (self._command_seq + 1) & 0xFF
        return wire

    def connection_made(self, port) -> None:
        self._last_frame_at = self._last_start = time.monotonic()
        self._stalled_since = None
        port.write(self._command(inkstream.DESCRIBE) + self._command(inkstream.START))

    def _describe_and_start(self, start: bool = True) -> None:
        """Ask the device to describe itself (its answer re-anchors the decoder) and start it."""
        if self._closed:
            return  # closing: a restarted device must not be started again
        now = time.monotonic()
        with self._lock:
            self.decoder.describe_sent()
        self._last_describe = now
        wire = self._command(inkstream.DESCRIBE)
        if start:
            self._last_start = now
            wire += self._command(inkstream.START)
        self.reader.write(wire)

    def data_received(self, data: bytes) -> None:
        with self._lock:
            seen_before = self.decoder.frames_ok + self.decoder.errors.stale
            frames = self.decoder.feed_frames(data)
            alive = self.decoder.frames_ok + self.decoder.errors.stale > seen_before
            describe_wanted = self.decoder.describe_wanted
        now = time.monotonic()
        if alive:
            self._last_frame_at = now
            if self._stalled_since is not None:
                self.reader.notify(RESUMED, f"frames again after {now - self._stalled_since:.1f} s")
                self._stalled_since = None
        samples = []
        for frame in frames:
            if isinstance(frame, inkstream.SampleFrame):
                with self._lock:
                    samples.append(self.decoder.to_pen_sample(frame))
            elif isinstance(frame, inkstream.HelloFrame) and frame.restart:
                self._deliver(samples)  # everything from before the restart, in order
                samples = []
                self._pen_left()
                self._samples.put(_SESSION_BREAK)
                self.reader.notify(DEVICE_RESTARTED, f"new session 0x{frame.session:04x}")
                self._describe_and_start()  # a restarted device waits for START again
            elif (isinstance(frame, inkstream.HeartbeatFrame) and not frame.streaming and self.stall_timeout
                  and now - self._last_start > self.stall_timeout):
                self._describe_and_start()  # it forgot START: it restarted unheard, or START was lost
        self._deliver(samples)
        if describe_wanted and now - self._last_describe >= RESYNC_INTERVAL:
            self._describe_and_start(start=False)  # stale frames: did the device restart unheard?

    def tick(self, now: float) -> None:
        if self.stall_timeout is None:
            return
        if self._stalled_since is None and now - self._last_frame_at > self.stall_timeout:
            self._stalled_since = self._last_frame_at
            self._pen_left()
            self.reader.notify(STALLED, f"no frame for {self.stall_timeout:g} s, heartbeats stopped: the "
                                        "device is frozen or unpowered, or the baud rate is wrong")
            self._describe_and_start()
        elif self._stalled_since is not None and now - self._last_describe > self.stall_timeout:
            self._describe_and_start()  # keep asking: a device that comes back waits for START

    def _send_stop(self) -> None:
        self.reader.write(self._command(inkstream.STOP))


class IsdV4SerialSource(_SerialPenSource):
    """A Wacom ISDV4 / W8001 digitizer. On connect: stop ('0'), settle, query ('*') at 38400
    baud, then at 19200 when no reply came; then start ('1'). Without any reply it still starts
    (coordinates stay unchecked, ``info`` stays None) and counts ``errors.extra['no_query_reply']``.
    Query replies are accepted only while the query is outstanding (see :mod:`.isdv4`)."""

    def __init__(self, path: str, policy: ReconnectPolicy = ReconnectPolicy(),
                 on_event: Optional[Callable[[ReaderEvent], None]] = None,
                 stop_settle: float = 0.25, reply_timeout: float = 0.5):
        self.stop_settle = stop_settle
        self.reply_timeout = reply_timeout
        super().__init__(path, isdv4.BAUD_RATES[0], isdv4.IsdV4Decoder(), policy, on_event)

    def connection_made(self, port) -> None:
        for baud in isdv4.BAUD_RATES:
            port.baudrate = baud
            port.write(isdv4.STOP)
            time.sleep(self.stop_settle)  # the digitizer keeps sending briefly after '0'
            port.reset_input_buffer()
            with self._lock:
                self.decoder.info = None
                self.decoder.query_sent()
            port.write(isdv4.QUERY)
            deadline = time.monotonic() + self.reply_timeout
            while time.monotonic() < deadline:
                data = port.read(port.in_waiting or 1)
                with self._lock:
                    self.decoder.feed_packets(data)
                    if self.decoder.info is not None:
                        break
            if self.decoder.info is not None:
                self.baudrate = baud
                break
        else:
            with self._lock:
                extra = self.decoder.errors.extra
                extra["no_query_reply"] = extra.get("no_query_reply", 0) + 1
        with self._lock:
            self.decoder.query_done()  # a reply arriving later is noise, not new ranges
        port.write(isdv4.START)

    def _send_stop(self) -> None:
        self.reader.write(isdv4.STOP)


class FileReplaySource(PenSource):
    """Replays an ``(N, 4)`` points array (``x, y, t, pen_up_after``) as pen samples.

    With ``rate_hz`` the strokes are resampled in time at that rate; otherwise the array's own
    times are used. After each stroke comes one pen-left sample (tip up, proximity out).
    ``realtime=True`` paces delivery by ``t / speed``; otherwise everything is available at once.
    A read returns at most ``MAX_BATCH`` samples, made from the array as they are read, so a huge
    file costs the array and no more, and a caller's loop (Ctrl-C, SIGTERM) runs between reads.
    ``info`` describes the array (ranges from its maxima, pressure unknown).
    """

    MAX_BATCH = 2048

    def __init__(self, points: np.ndarray, rate_hz: Optional[float] = None, units_per_mm: float = math.nan,
                 realtime: bool = False, speed: float = 1.0):
        super().__init__()
        points = validate_points(points)
        if rate_hz is not None:
            points = resample_points(points, rate_hz)
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        rate = rate_hz or estimate_rate_hz(points)
        self.info = DeviceInfo("file", int(math.ceil(points[:, 0].max())) if len(points) else 0,
                               int(math.ceil(points[:, 1].max())) if len(points) else 0, 0,
                               units_per_mm, rate, "file replay")
        self._points = points
        self._lift_s = 1.0 / rate
        self._next = 0  # the next row of points to deliver
        self._lift: Optional[PenSample] = None  # a pen-left sample due before that row
        self._realtime = realtime
        self._speed = speed
        self._start: Optional[float] = None
        self._closed = False

    @property
    def ended(self) -> bool:
        return self._closed or (self._next >= len(self._points) and self._lift is None)

    def _next_time(self) -> float:
        return self._lift.t if self._lift is not None else float(self._points[self._next, 2])

    def _take(self, until: float) -> list[PenSample]:
        """The samples due at source time ``until`` (at most MAX_BATCH), pen-left samples included."""
        out: list[PenSample] = []
        points, n = self._points, len(self._points)
        while len(out) < self.MAX_BATCH and not self.ended and self._next_time() <= until:
            if self._lift is not None:
                out.append(self._lift)
                self._lift = None
                continue
            x, y, t, up = (float(v) for v in points[self._next])
            out.append(PenSample(x, y, t, math.nan, tip=True, proximity=True))
            self._next += 1
            if up > 0.5 or self._next == n:  # the stroke ends (or the file does, the pen still down)
                # one sampling period later, but never after the next stroke's first sample: a lift
                # stamped later than what follows would read as the device's clock going back
                lift_t = t + self._lift_s if self._next == n else min(t + self._lift_s, float(points[self._next, 2]))
                self._lift = PenSample(x, y, lift_t, math.nan, tip=False, proximity=False)
        return out

    def read(self, timeout: Optional[float] = None) -> list[PenSample]:
        if self.ended:
            return []
        if not self._realtime:
            return self._take(math.inf)
        now = time.monotonic()
        if self._start is None:
            self._start = now - self._next_time() / self._speed
        due = self._start + self._next_time() / self._speed
        wait = due - now
        if wait > 0:
            if timeout is not None and wait > timeout:
                time.sleep(timeout)
                return []
            time.sleep(wait)
            now = time.monotonic()
        return self._take((now - self._start) * self._speed)

    def close(self) -> None:
        self._closed = True


PointsLoader = Callable[[str], Union[np.ndarray, tuple]]


def _load_npy(path: str):
    return np.load(path, allow_pickle=False)


def open_source(spec: str, load_points: Optional[PointsLoader] = None, **options) -> PenSource:
    """Open a pen source from a spec string.

    - ``serial:PATH``  inkstream protocol device (:class:`InkstreamSerialSource`)
    - ``isdv4:PATH``   Wacom ISDV4 digitizer (:class:`IsdV4SerialSource`)
    - ``file:PATH``    :class:`FileReplaySource`. ``load_points(PATH)`` must return an ``(N, 4)``
      array or ``(array, units_per_mm)``; without it only ``.npy`` arrays load. (The runtime
      owns the ink formats, so it passes its loader in: this package never imports runtime.)

    ``options`` go to the source's constructor (e.g. ``policy=``, ``rate_hz=``, ``realtime=``).
    Raises ValueError naming the spec when it is not understood.
    """
    scheme, sep, path = spec.partition(":")
    if not sep or not path:
        raise ValueError(f"pen source spec {spec!r}: expected serial:PATH, isdv4:PATH or file:PATH")
    if scheme == "serial":
        return InkstreamSerialSource(path, **options)
    if scheme == "isdv4":
        return IsdV4SerialSource(path, **options)
    if scheme == "file":
        if load_points is None:
            if not path.endswith(".npy"):
                raise ValueError(f"pen source spec {spec!r}: only .npy arrays load without a "
                                 "load_points callable (the runtime passes one for ink files)")
            load_points = _load_npy
        loaded = load_points(path)
        points, upm = (loaded if isinstance(loaded, tuple) else (loaded, math.nan))
        return FileReplaySource(validate_points(points, path), units_per_mm=upm, **options)
    raise ValueError(f"pen source spec {spec!r}: unknown kind {scheme!r} (serial, isdv4 or file)")
