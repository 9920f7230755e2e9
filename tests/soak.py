"""Soak test (not run by pytest or CI): pen input for a long time through both live paths, memory watched.

One process runs two live servers, as ``inkstream serve`` would:

* ``emulator``: an emulated tablet on a pseudo-terminal replays the demo's real handwriting at the
  writers' speed, looping, read through the serial path (the reader thread, the inkstream
  protocol), with a WebSocket viewer connected that reads every update;
* ``browser``: a WebSocket client writes the same ink on the page (pen messages at the writers'
  speed, as a browser would send them), with the same client reading every update.

Every ``--every`` seconds it records the process's resident memory. At the end it prints one JSON
line: minutes run, pen samples and lines recognised on each path, messages the viewers read, and
resident memory after the warm-up, at the end, at most, and its least-squares slope in MB per hour
after the warm-up (flat memory: a slope near 0). Run it from the repository root::

    python tests/soak.py --minutes 60
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.app.sources import DEMO_SAMPLES, open_pen_source  # noqa: E402
from runtime.app.ui.server import LiveServer, ServerConfig  # noqa: E402
from runtime.ink import load_corpus  # noqa: E402
from runtime.recognizer import StreamingRecognizer  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


class Viewer:
    """A WebSocket client on a thread of its own: reads every message; optionally writes ink."""

    def __init__(self, url: str, inks: list | None = None):
        self.url, self.inks = url, inks
        self.messages = 0
        self.samples_sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        from websockets.asyncio.client import connect

        async with connect(self.url, max_size=None) as ws:
            reader = asyncio.create_task(self._read(ws))
            if self.inks:
                await self._write(ws)
            else:
                while not self.stop.is_set():
                    await asyncio.sleep(0.2)
            reader.cancel()

    async def _read(self, ws):
        async for _ in ws:
            self.messages += 1

    async def _write(self, ws):
        clock = 0.0  # the page's time keeps running from ink to ink, as on a real page
        while not self.stop.is_set():
            for points in self.inks:
                start = time.monotonic()
                t0 = points[0, 2]
                for a in range(0, len(points), 4):  # about what a browser batches per frame
                    rows = points[a:a + 4]
                    due = start + (rows[0, 2] - t0)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    message = []
                    for x, y, t, up in rows:
                        message.append([float(x), float(y), (clock + t - t0) * 1000.0, 1])
                        if up > 0.5:
                            message.append([float(x), float(y), (clock + t - t0) * 1000.0, 0])
                    await ws.send(json.dumps({"type": "pen", "samples": message}))
                    self.samples_sent += len(message)
                    if self.stop.is_set():
                        return
                clock += points[-1, 2] - t0 + 3.0  # a pause: the line ends
                await asyncio.sleep(3.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory readings")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before the memory baseline")
    parser.add_argument("--decoder", default="word", help="the recognizer's decoder (default: word, the default)")
    args = parser.parse_args()

    recognizer = StreamingRecognizer(decoder=args.decoder)
    corpus = load_corpus(DEMO_SAMPLES)
    inks = [corpus.points(i).astype(np.float64) for i in range(len(corpus))]
    serial = LiveServer(open_pen_source("emulator", loop=True), recognizer, ServerConfig(port=0)).start_in_thread()
    page = LiveServer(open_pen_source("browser"), recognizer,
                      ServerConfig(port=0, messages_per_s=1000.0, message_burst=1000)).start_in_thread()
    viewers = [Viewer(f"ws://127.0.0.1:{serial.port}/ws"), Viewer(f"ws://127.0.0.1:{page.port}/ws", inks)]
    for v in viewers:
        v.thread.start()
    start = time.monotonic()
    readings = []
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            readings.append((elapsed / 60.0, rss_mb()))
            time.sleep(min(args.every, max(0.0, args.minutes * 60 - elapsed)))
        readings.append(((time.monotonic() - start) / 60.0, rss_mb()))
    finally:
        for v in viewers:
            v.stop.set()
        for v in viewers:
            v.thread.join(10)
        report = {
            "minutes": round((time.monotonic() - start) / 60.0, 2),
            "serial": {"samples": serial.session.samples_received, "lines": len(serial.session.history)
                       and serial.session.history[-1]["line"] + 1, "viewer_messages": viewers[0].messages,
                       "serial_errors": serial.live.source.errors.total_bad_frames()},
            "page": {"samples_sent": viewers[1].samples_sent, "samples": page.session.samples_received,
                     "lines": len(page.session.history) and page.session.history[-1]["line"] + 1,
                     "viewer_messages": viewers[1].messages},
        }
        serial.stop()
        page.stop()
    after = [(m, r) for m, r in readings if m >= args.warmup] or readings
    minutes, mb = np.array([m for m, _ in after]), np.array([r for _, r in after])
    slope = float(np.polyfit(minutes, mb, 1)[0] * 60.0) if len(after) > 2 else float("nan")
    report["rss_mb"] = {"after_warmup": round(float(mb[0]), 1), "end": round(float(mb[-1]), 1),
                        "max": round(float(max(r for _, r in readings)), 1), "slope_mb_per_hour": round(slope, 2),
                        "readings": len(readings)}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
