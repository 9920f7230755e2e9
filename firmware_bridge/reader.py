"""A thread that owns a serial port, reads it, and reconnects when the port goes away.

Shaped after pyserial's ``serial.threaded``: a :class:`PortProtocol` receives
``connection_made / data_received / connection_lost``; :class:`ReconnectingReader` owns the port
(like ``ReaderThread``) but, unlike it, reopens the port with exponential backoff after a USB
unplug instead of ending. State changes go to ``reader.events`` (a queue of
:class:`ReaderEvent`) and to an optional callback. The last event is always ``stopped``.
An ``open_port`` that raises :class:`PortUnusable` (the path can never be a serial port) ends the
reader at once, with that message, instead of retrying forever.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import serial

__all__ = ["PortProtocol", "ReaderEvent", "ReconnectPolicy", "ReconnectingReader",
           "CONNECTING", "CONNECTED", "OPEN_FAILED", "DISCONNECTED", "STOPPED", "DEVICE_RESTARTED",
           "STALLED", "RESUMED", "PortUnusable"]

CONNECTING, CONNECTED, OPEN_FAILED, DISCONNECTED, STOPPED = (
    "connecting", "connected", "open_failed", "disconnected", "stopped")
# Sent by a protocol (not the reader) when the device restarted while the port stayed open
# (inkstream: a HELLO with a new session). Consumers should end the current line/stroke.
DEVICE_RESTARTED = "device_restarted"
# Sent by a protocol whose device promises a heartbeat (inkstream) when no frame came for its stall
# timeout while the port stayed open (the device froze, lost power behind a UART bridge, or runs at
# another baud rate), and when frames come again.
STALLED, RESUMED = "stalled", "resumed"


class PortUnusable(Exception):
    """Raised by ``open_port`` when the path can never be a serial port (a directory, a regular
    file, a character device that is not a terminal): retrying is pointless."""


class PortProtocol:
    """Callbacks run on the reader thread. ``connection_made`` may talk to the port
    synchronously (handshakes); an exception from it counts as a lost connection."""

    def connection_made(self, port: serial.SerialBase) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """``exc`` is None after a requested stop, else what broke the connection."""

    def tick(self, now: float) -> None:
        """Called after every read while connected (so at least once per read timeout, whether
        bytes came or not), with ``time.monotonic()``: for timers such as a heartbeat watch."""


@dataclass(frozen=True)
class ReaderEvent:
    state: str           # CONNECTING, CONNECTED, OPEN_FAILED, DISCONNECTED, STOPPED or DEVICE_RESTARTED
    detail: str = ""
    attempt: int = 0     # failed opens in a row so far
    time: float = 0.0    # time.monotonic() when it happened


@dataclass(frozen=True)
class ReconnectPolicy:
    """Delays between open attempts: ``first_delay * factor**k`` capped at ``max_delay``.
    ``max_attempts`` failed opens in a row end the reader (None: try forever)."""

    first_delay: float = 0.1
    max_delay: float = 2.0
    factor: float = 2.0
    max_attempts: Optional[int] = None

    def __post_init__(self):
        if not (self.first_delay > 0 and self.max_delay >= self.first_delay and self.factor >= 1):
            raise ValueError(f"ReconnectPolicy: need 0 < first_delay <= max_delay and factor >= 1, got {self}")

    def delay(self, failures: int) -> float:
        return min(self.first_delay * self.factor ** max(failures - 1, 0), self.max_delay)


class ReconnectingReader(threading.Thread):
    """Opens the port with ``open_port()`` (which should set a read timeout of about 0.1 s so
    :meth:`stop` is noticed), feeds ``protocol``, and reopens after errors until :meth:`stop`.

    Errors from pyserial and the OS (``SerialException``, ``OSError``) mean "port gone" and lead
    to a reconnect; any other exception (from the protocol's callbacks, including
    ``connection_lost``, or from ``on_event``) is a bug: it is stored in ``failure``, reported
    with a ``stopped`` event carrying the message, and the thread ends (never silently). The
    ``stopped`` event is always the last one, however the thread ends. When the reader gave up
    (``open_port`` raised :class:`PortUnusable`, or ``policy.max_attempts`` failed opens),
    ``gave_up`` says why and the ``stopped`` event carries it.
    """

    def __init__(self, open_port: Callable[[], serial.SerialBase], protocol: PortProtocol,
                 policy: ReconnectPolicy = ReconnectPolicy(),
                 on_event: Optional[Callable[[ReaderEvent], None]] = None, name: str = "inkstream-serial"):
        super().__init__(name=name, daemon=True)
        self._open_port = open_port
        self.protocol = protocol
        self.policy = policy
        self.events: "queue.Queue[ReaderEvent]" = queue.Queue()
        self._on_event = on_event
        self._stop_requested = threading.Event()
        self._port: Optional[serial.SerialBase] = None
        self._write_lock = threading.Lock()
        self.connected = threading.Event()
        self.failure: Optional[BaseException] = None  # set when a protocol bug ended the thread
        self.gave_up: Optional[str] = None  # why the reader stopped retrying, when it did

    def _emit(self, state: str, detail: str = "", attempt: int = 0) -> None:
        event = ReaderEvent(state, detail, attempt, time.monotonic())
        self.events.put(event)
        if self._on_event is not None:
            self._on_event(event)

    def notify(self, state: str, detail: str = "") -> None:
        """Put a protocol-level event (e.g. DEVICE_RESTARTED) on ``events`` and the callback."""
        self._emit(state, detail)

    def write(self, data: bytes) -> bool:
        """Send bytes if connected; False when there is no port right now."""
        with self._write_lock:
            port = self._port
            if port is None:
                return False
            try:
                port.write(data)
                return True
            except (serial.SerialException, OSError):
                return False

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # connection_lost or on_event raised: a bug, never silent
            if self.failure is None:
                self.failure = exc
        finally:
            detail = (f"protocol error: {self.failure!r}" if self.failure is not None
                      else f"gave up: {self.gave_up}" if self.gave_up else "")
            event = ReaderEvent(STOPPED, detail, 0, time.monotonic())
            self.events.put(event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception as exc:
                    if self.failure is None:
                        self.failure = exc

    def _run(self) -> None:
        failures = 0
        while not self._stop_requested.is_set():
            self._emit(CONNECTING, attempt=failures)
            try:
                port = self._open_port()
            except PortUnusable as exc:
                self.gave_up = str(exc)
                self._emit(OPEN_FAILED, f"{exc}; not retrying", failures + 1)
                break
            except (serial.SerialException, OSError, ValueError) as exc:
                failures += 1
                self._emit(OPEN_FAILED, str(exc), failures)
                if self.policy.max_attempts is not None and failures >= self.policy.max_attempts:
                    self.gave_up = f"{failures} failed opens in a row, the last: {exc}"
                    break
                self._stop_requested.wait(self.policy.delay(failures))
                continue
            failures = 0
            error: Optional[BaseException] = None
            try:
                with self._write_lock:
                    self._port = port
                self.protocol.connection_made(port)
                self.connected.set()
                self._emit(CONNECTED, str(getattr(port, "port", "")))
                while not self._stop_requested.is_set():
                    data = port.read(port.in_waiting or 1)
                    if data:
                        self.protocol.data_received(data)
                    self.protocol.tick(time.monotonic())
            except (serial.SerialException, OSError) as exc:
                error = exc
            except Exception as exc:  # a bug, not a cable: report it and end
                self.failure = exc
                error = exc
            finally:
                self.connected.clear()
                with self._write_lock:
                    self._port = None
                try:
                    port.close()
                except Exception:
                    pass  # the device is already gone; nothing more to release
            self.protocol.connection_lost(None if self._stop_requested.is_set() and error is None else error)
            if self.failure is not None:
                return  # run() reports it with the stopped event
            if not self._stop_requested.is_set():
                self._emit(DISCONNECTED, str(error))
                self._stop_requested.wait(self.policy.first_delay)

    def stop(self, timeout: float = 3.0) -> None:
        """Ask the thread to end, close the port, and wait for it (idempotent)."""
        self._stop_requested.set()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            try:
                port.cancel_read()
            except Exception:
                pass  # closing races with the reader; the read timeout ends the loop anyway
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()
