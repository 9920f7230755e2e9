"""``inkstream serve``: the live recognition page, over HTTP and WebSocket from one process.

One ``websockets`` server does both: its ``process_request`` hook answers plain HTTP GETs with
the static page (``static/``) and a read-only ``/api/state``, and lets ``/ws`` upgrade to a
WebSocket. Every viewer gets the same broadcast (see :mod:`runtime.app.ui.session` for the
messages); recognition runs on the session's worker thread, never on the event loop.

Safety: binds 127.0.0.1 unless told otherwise; when bound to a loopback address the ``Host``
header must name a loopback host with the served port (no DNS rebinding); a WebSocket
``Origin``, when present, must be the page's own ``http://host:port``; incoming messages are
capped in size (``max_size``) and rate (a token bucket per connection); a malformed message
gets an ``error`` reply and nothing else changes. If recognition fails (the session's worker
died), ``pen`` and ``clear`` get an ``error`` naming the failure and ``hello`` carries it.

A page names itself in the WebSocket URL (``/ws?writer=KEY``, 8 to 64 of ``A-Za-z0-9_-``, kept
by the page across reconnects and server restarts); a client that does not is one writer per
connection. With ``--source browser`` each page that writes is a writer with its own stream and
lines (see :mod:`runtime.app.ui.session`); its first pen message is answered ``{"type": "you",
"writer": id}`` and ``hello`` carries ``writer`` for a page that already wrote.

Messages from the page: ``{"type": "pen", "samples": [[x, y, t, tip, pressure?], ...]}`` (only
when the source is ``browser``), ``{"type": "end_line"}`` (the writer ends its line: the "End
line" button or Enter), ``{"type": "clear"}``, ``{"type": "gradient", "line": N}`` (answered to
that page alone, see :mod:`runtime.app.ui.gradient`), ``{"type": "ping", "t": ms}``.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Optional
import re
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from firmware_bridge.samples import PenSample
from runtime.app.config import add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.app.sources import SPEC_HELP, LiveSource, open_pen_source
from runtime.app.ui.gradient import GradientBusy, GradientService
from runtime.app.ui.session import RecognitionSession, SessionConfig, TooManyWriters, finite_number
from runtime.recognizer import StreamingRecognizer

__all__ = ["ServerConfig", "LiveServer", "open_server", "serve_until_interrupted", "configure", "run"]

log = logging.getLogger("inkstream.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {  # URL path -> (file, content type); nothing else is ever read from disk
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
WS_PATH = "/ws"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
COORD_LIMIT = 1e7  # no pen reports coordinates or times beyond this
WRITER_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what a page may call itself


@dataclass(frozen=True)
class ServerConfig:
    """Where to listen and what to accept from pages.

    ``max_message_bytes``: larger WebSocket messages close that connection (code 1009).
    ``messages_per_s`` / ``message_burst``: token bucket per connection; over it a message is
    dropped with an error reply. ``max_samples_per_message``: pen samples in one message.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    max_message_bytes: int = 64 * 1024
    messages_per_s: float = 120.0
    message_burst: int = 240
    max_samples_per_message: int = 512

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port must be in 0..65535, got {self.port}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"ServerConfig.max_message_bytes must be >= 1024, got {self.max_message_bytes}")
        if not (self.messages_per_s > 0 and self.message_burst >= 1):
            raise ValueError("ServerConfig.messages_per_s must be > 0 and message_burst >= 1")
        if self.max_samples_per_message < 1:
            raise ValueError("ServerConfig.max_samples_per_message must be >= 1")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class GradientRequest:
    """A page asked for the gradient of line ``line`` (whose rows are ``rows``)."""

    line: int
    rows: object


class MessageError(ValueError):
    """A page sent something this server does not accept; the text goes back to it."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LiveServer:
    """Serves one :class:`RecognitionSession` to any number of viewers.

    ``await server.serve()`` runs until :meth:`stop`; ``start_in_thread()`` runs it on a thread
    of its own (tests, the demo) and returns once the port is bound (``server.port``).
    """

    def __init__(self, live: LiveSource, recognizer: StreamingRecognizer, config: ServerConfig = ServerConfig(),
                 session_config: Optional[SessionConfig] = None):
        self.live = live
        self.recognizer = recognizer
        self.config = config
        session_config = session_config or SessionConfig(clock_speed=live.clock_speed)
        # pages that write each get a writer of their own; a device is the session's one writer
        self.session = RecognitionSession(None if live.accepts_pen_input else live.source, recognizer,
                                          self._publish_from_worker, session_config, live.name)
        self.viewers: set = set()
        self.gradient = GradientService(recognizer.model.path)
        self.port: Optional[int] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopped: Optional[asyncio.Event] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self.errors_sent = 0

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}/"

    def _host_allowed(self, host_header: Optional[str]) -> bool:
        if not host_header:
            return False
        name, _, port = host_header.rpartition(":")
        if not name or port != str(self.port):
            return False
        if _is_loopback(self.config.host):  # a page on another name is a rebinding attempt
            return name in LOOPBACK_NAMES
        return True

    # ---- HTTP --------------------------------------------------------------------------------
    def _response(self, status: HTTPStatus, body: bytes, content_type: str, host: str = "") -> Response:
        headers = Headers()
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(body))
        headers["Cache-Control"] = "no-store"  # a restarted server serves the new page
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Content-Security-Policy"] = (
            f"default-src 'self'; connect-src 'self' ws://{host}; img-src 'self' data:; frame-ancestors 'none'")
        headers["Connection"] = "close"
        return Response(status.value, status.phrase, headers, body)

    def _process_request(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        hosts, origins = request.headers.get_all("Host"), request.headers.get_all("Origin")
        if len(hosts) > 1 or len(origins) > 1:  # which one would a proxy or a browser have meant?
            log.warning("refused a request with %d Host and %d Origin headers", len(hosts), len(origins))
            return self._response(HTTPStatus.BAD_REQUEST, b"one Host and at most one Origin header\n",
                                  "text/plain; charset=utf-8")
        host = hosts[0] if hosts else ""
        if not self._host_allowed(host):
            return self._response(HTTPStatus.FORBIDDEN, b"unexpected Host header\n", "text/plain; charset=utf-8")
        path = urlsplit(request.path).path
        if path == WS_PATH:
            origin = origins[0] if origins else None
            # Browsers always send Origin; tools without one are not a cross-site risk.
            if origin is not None and origin != f"http://{host}":
                return self._response(HTTPStatus.FORBIDDEN, b"origin not allowed\n", "text/plain; charset=utf-8")
            return None  # go on with the WebSocket handshake
        if path == "/api/state":
            body = json.dumps(self._hello()).encode()
            return self._response(HTTPStatus.OK, body, "application/json", host)
        if path in STATIC_FILES:
            name, content_type = STATIC_FILES[path]
            return self._response(HTTPStatus.OK, (STATIC_DIR / name).read_bytes(), content_type, host)
        return self._response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    # ---- WebSocket ---------------------------------------------------------------------------
    def _hello(self, key: Optional[str] = None) -> dict:
        info = self.recognizer.model.info
        return {
            "type": "hello",
            "source": self.live.name,
            "pen_input": self.live.accepts_pen_input,
            "writer": None if key is None else self.session.find_writer(key),  # this page's, once it wrote
            "memory_cells": self.session.memory_cells,
            "model": {"layers": info.num_layers, "hidden": info.hidden_size,
                      "training_steps": info.metadata.get("training_steps"),
                      "val_cer": info.metadata.get("val_cer")},
            "limits": {"max_samples_per_message": self.config.max_samples_per_message,
                       "max_message_bytes": self.config.max_message_bytes,
                       "messages_per_s": self.config.messages_per_s},
            "server_ms": time.time() * 1000.0,
            "failure": self._failure_text(),
            "state": self.session.snapshot(),
        }

    def _failure_text(self) -> Optional[str]:
        failure = self.session.failure
        return None if failure is None else f"recognition stopped: {failure!r}"

    async def _handler(self, ws: ServerConnection) -> None:
        bucket = TokenBucket(self.config.messages_per_s, self.config.message_burst)
        last_rate_error = 0.0
        # A page names itself (?writer=KEY, kept across reconnects and server restarts) so its ink
        # stays one writer's; a client that does not gets a writer for this connection.
        key = parse_qs(urlsplit(ws.request.path).query).get("writer", [""])[0]
        if not WRITER_KEY.fullmatch(key):
            key = f"connection-{id(ws)}"
        gradient: Optional[asyncio.Task] = None
        self.viewers.add(ws)
        try:
            await ws.send(json.dumps(self._hello(key)))
            async for message in ws:
                if not bucket.take():
                    now = time.monotonic()
                    if now - last_rate_error >= 1.0:  # one notice per second, not one per message
                        last_rate_error = now
                        await self._send_error(ws, "rate limit: message dropped")
                    continue
                try:
                    reply = self._on_message(message, key)
                except MessageError as exc:
                    await self._send_error(ws, str(exc))
                    continue
                if isinstance(reply, GradientRequest):  # computed off the loop, one at a time per page
                    if gradient is not None and not gradient.done():
                        await self._send_error(ws, "gradient: the last one asked for is still being computed")
                        continue
                    try:
                        answer = self.gradient.submit(reply.line, reply.rows)
                    except GradientBusy as exc:
                        await self._send_error(ws, str(exc))
                        continue
                    gradient = asyncio.create_task(self._send_when_done(ws, answer))
                elif reply is not None:
                    await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self.viewers.discard(ws)
            if gradient is not None:
                gradient.cancel()

    async def _send_when_done(self, ws: ServerConnection, answer) -> None:
        try:
            await ws.send(json.dumps(await answer))
        except ConnectionClosed:
            pass

    async def _send_error(self, ws: ServerConnection, text: str) -> None:
        self.errors_sent += 1
        await ws.send(json.dumps({"type": "error", "message": text}))

    def _on_message(self, message, key: str) -> Optional[dict]:
        """Handle one message from a page; MessageError for anything malformed."""
        if isinstance(message, bytes):
            raise MessageError("binary messages are not accepted; send JSON text")
        try:
            data = json.loads(message)
        except ValueError as exc:  # includes integers with more digits than Python converts
            raise MessageError(f"not JSON: {exc}") from None
        except RecursionError:
            log.warning("refused a message nested too deeply to parse")
            raise MessageError("not JSON this page sends: nested too deeply") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise MessageError("expected a JSON object with a string 'type'")
        kind = data["type"]
        if kind in ("clear", "pen", "end_line") and self.session.failure is not None:
            raise MessageError(self._failure_text())
        if kind == "ping":
            t = data.get("t")
            if not finite_number(t):
                raise MessageError("ping: 't' must be a number (client milliseconds)")
            return {"type": "pong", "t": t, "server_ms": time.time() * 1000.0}
        if kind == "clear":
            self.session.request_clear()
            return None
        if kind == "end_line":  # the writer says the line is over (a button, a key)
            if not self.live.accepts_pen_input:
                self.session.request_finish_line()
            elif (writer := self.session.find_writer(key)) is not None:  # this page's own line
                self.session.request_finish_line(writer)
            return None
        if kind == "gradient":  # the network view's fourth row, for one line
            line = data.get("line")
            if not isinstance(line, int) or isinstance(line, bool):
                raise MessageError("gradient: 'line' must be a line number")
            rows = self.session.line_rows(line)
            if rows is None:
                raise MessageError(f"gradient: no line {line} (it may have left the history)")
            return GradientRequest(line, rows)
        if kind == "pen":
            if not self.live.accepts_pen_input:
                raise MessageError(f"pen input is only accepted with --source browser (this source: {self.live.name})")
            samples = self._pen_samples(data.get("samples"))
            try:
                writer, source, joined = self.session.writer_source(key)
            except (TooManyWriters, RuntimeError) as exc:
                raise MessageError(self._failure_text() or str(exc)) from None
            if not source.push(samples):
                raise MessageError(self._failure_text() or "recognition is behind: pen samples dropped")
            return {"type": "you", "writer": writer} if joined else None
        raise MessageError(f"unknown message type {kind!r} (pen, end_line, clear, gradient, ping)")

    def _pen_samples(self, rows) -> list:
        if not isinstance(rows, list) or not rows:
            raise MessageError("pen: 'samples' must be a non-empty list of [x, y, t, tip, pressure?]")
        if len(rows) > self.config.max_samples_per_message:
            raise MessageError(f"pen: at most {self.config.max_samples_per_message} samples per message, got {len(rows)}")
        samples = []
        for k, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) in (4, 5) and all(finite_number(v) for v in row)
                    and all(abs(v) <= COORD_LIMIT for v in row[:3]) and row[3] in (0, 1)):
                raise MessageError(f"pen: sample {k} must be [x, y, t, tip 0|1, pressure?] of finite numbers")
            pressure = float(row[4]) if len(row) == 5 else math.nan
            samples.append(PenSample(float(row[0]), float(row[1]), float(row[2]), pressure, tip=bool(row[3])))
        return samples

    # ---- broadcasting --------------------------------------------------------------------------
    def _publish_from_worker(self, message: dict) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._broadcast, json.dumps(message))
            except RuntimeError:
                pass  # the loop closed between the check and the call: shutting down

    def _broadcast(self, text: str) -> None:
        broadcast(self.viewers, text)

    # ---- running -------------------------------------------------------------------------------
    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            async with serve(self._handler, self.config.host, self.config.port,
                             process_request=self._process_request,
                             max_size=self.config.max_message_bytes, max_queue=32,
                             close_timeout=2.0) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.session.start()
                self._ready.set()
                await self._stopped.wait()
        finally:  # also when the port cannot be bound: the emulator and the reader thread stop
            self.session.close()
            self.live.close()
            self.gradient.close()

    def start_in_thread(self, timeout: float = 10.0) -> "LiveServer":
        errors: list = []

        def main():
            try:
                asyncio.run(self.serve())
            except Exception as exc:  # e.g. the port is in use: hand it to the caller
                errors.append(exc)
                self._ready.set()

        self._thread = threading.Thread(target=main, name="inkstream-ui", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the UI server did not start")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, stopped = self.loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(10.0)


# ---- command line --------------------------------------------------------------------------------
def add_server_arguments(parser) -> None:
    defaults = ServerConfig()
    parser.add_argument("--host", default=defaults.host,
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"port (default {defaults.port}; 0: any free)")
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="keep every finished line in DIR as InkML with its text; a restart shows them again")


def configure(parser) -> None:
    parser.add_argument("--source", required=True, metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed for file: and emulator sources")
    add_server_arguments(parser)
    add_recognizer_arguments(parser)
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")


def serve_until_interrupted(server: LiveServer, open_browser: bool, prog: str = "inkstream serve") -> int:
    """Run ``server`` in the foreground until Ctrl-C; print the URL (and open a browser).
    Returns 0, or 2 with a message when the address cannot be bound."""
    async def main():
        task = asyncio.create_task(server.serve())
        while server.port is None and not task.done():
            await asyncio.sleep(0.02)
        if task.done():
            return await task
        print(f"inkstream: serving {server.live.name} on {server.url} (open it in a web browser; Ctrl-C stops)",
              flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        await task

    code = 0
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("inkstream: stopped")
    except OSError as exc:  # e.g. address in use: before serving, so nothing ran yet
        if server.port is not None:
            raise
        print(f"{prog}: cannot listen on {server.config.host}:{server.config.port}: {exc}", file=sys.stderr)
        code = 2
    finally:
        server.session.close()
        server.live.close()
    return code


def open_server(args, spec: str, loop: bool = False, prog: str = "inkstream serve") -> Optional[LiveServer]:
    """The recognizer, the source and the server the command line asks for; None (after a message
    on stderr) when the model, the options or the source are wrong."""
    live = None
    try:
        config = ServerConfig(host=args.host, port=args.port)
        app_config = config_from_args(args)
        recognizer = app_config.build_recognizer()
        live = open_pen_source(spec, speed=args.speed, loop=loop)
        for note in live.notes:
            print(f"{prog}: {note}", file=sys.stderr, flush=True)
        session_config = SessionConfig(clock_speed=live.clock_speed, save_dir=args.save)
        return LiveServer(live, recognizer, config, session_config)
    except USER_ERRORS as exc:
        if live is not None:
            live.close()
        fail(prog, exc)
        return None


def run(args) -> int:
    server = open_server(args, args.source)
    if server is None:
        return 2
    return serve_until_interrupted(server, open_browser=args.open)
