"""The serial path end to end over real pseudo-terminals: emulated tablet <-> pyserial <-> reader
thread <-> decoder <-> PenSource. No mocks; waits are bounded loops that fail when data never comes."""
import math
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import collect_samples, wait_event
from firmware_bridge.emulator import INKSTREAM_AREA, ISDV4_AREA, EmulatedTablet, EmulatorConfig
import serial

from firmware_bridge.reader import (CONNECTED, DEVICE_RESTARTED, DISCONNECTED, STOPPED, PortProtocol,
                                    ReconnectingReader, ReconnectPolicy)
from firmware_bridge.replay import lay_out_on_device, pen_events
from firmware_bridge.samples import StrokeRowAssembler
from firmware_bridge.sources import open_source
from runtime.ink import load_corpus

FIXTURES = Path(__file__).parent / "fixtures" / "bridge"
ROOT = Path(__file__).resolve().parents[1]
WAIT = 15.0  # seconds before a wait gives up and the test fails (not a timing assertion)


def _inks():
    corpus = load_corpus(FIXTURES / "tiny_corpus.npz")
    return [(corpus.points(i).astype(np.float64), float(corpus.units_per_mm[i])) for i in range(len(corpus))]


def _expected_reports(area):
    """(x, y, tip, proximity) of every report the emulator sends for the fixture, in order."""
    out = []
    inks = _inks()
    for (points, _), xy in zip(inks, lay_out_on_device(inks, area)):  # a line below the last
        out += [(e.x, e.y, e.tip, e.proximity) for e in pen_events(points, xy, 0.0, 0.01)]
    return out






def _readline(proc, timeout=WAIT):
    """First stdout line of ``proc``; fails (after killing it) when none comes within ``timeout``."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate(timeout=WAIT)
        pytest.fail(f"no line on stdout within {timeout} s; stderr: {err!r}")
    return proc.stdout.readline()


@pytest.mark.parametrize("protocol,scheme,area", [("inkstream", "serial", INKSTREAM_AREA), ("isdv4", "isdv4", ISDV4_AREA)])
def test_clean_replay_through_a_real_pty_gives_every_report(protocol, scheme, area):
    expected = _expected_reports(area)
    with EmulatedTablet(_inks(), EmulatorConfig(protocol=protocol, speed=8.0)) as tablet:
        tablet.start()
        with open_source(f"{scheme}:{tablet.path}") as source:
            got = collect_samples(source, lambda g: len(g) >= len(expected))
            assert [(int(s.x), int(s.y), s.tip, s.proximity) for s in got] == expected
            assert source.info.x_max == area.x_max and source.info.units_per_mm == area.units_per_mm
            assert source.errors.total_bad_frames() == 0 and source.errors.lost == 0
            assert all(b.t >= a.t for a, b in zip(got, got[1:]))
            rows = StrokeRowAssembler().accept_many(got)
            assert len(rows) == sum(len(p) for p, _ in _inks()) and sum(r[3] for r in rows) == 5
    if protocol == "inkstream":  # device timestamps carry the ink's timing whatever the speed
        assert got[1].t - got[0].t == pytest.approx(0.01, abs=2e-6)


@pytest.mark.parametrize("protocol,scheme,area", [("inkstream", "serial", INKSTREAM_AREA), ("isdv4", "isdv4", ISDV4_AREA)])
def test_noise_is_counted_and_inkstream_never_yields_a_corrupted_sample(protocol, scheme, area):
    expected = _expected_reports(area)
    config = EmulatorConfig(protocol=protocol, speed=8.0, noise=0.01, seed=7, loop=True)
    with EmulatedTablet(_inks(), config) as tablet:
        tablet.start()
        with open_source(f"{scheme}:{tablet.path}") as source:
            got = collect_samples(source, lambda g: len(g) >= 2 * len(expected))
            errors = source.errors
    assert tablet.stats.bytes_corrupted > 0
    assert errors.total_bad_frames() + errors.stray_bytes > 0
    clean = set(expected)
    reports = [(int(s.x), int(s.y), s.tip, s.proximity) for s in got]
    if protocol == "inkstream":
        assert all(r in clean for r in reports) and errors.lost > 0
    # Most reports still arrive intact, whatever the protocol.
    assert sum(r in clean for r in reports) >= 0.8 * len(reports) and len(reports) >= len(expected)


def test_reader_reconnects_when_the_port_vanishes_and_comes_back(tmp_path):
    link = tmp_path / "ttyTablet"
    policy = ReconnectPolicy(first_delay=0.05, max_delay=0.2)
    first = EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True)).start()
    os.symlink(first.path, link)
    source = open_source(f"serial:{link}", policy=policy)
    try:
        wait_event(source, CONNECTED)
        assert collect_samples(source, lambda g: any(s.tip for s in g))
        first.close()  # unplugged mid-stroke
        wait_event(source, DISCONNECTED)
        # While unplugged the open stroke is closed by a synthetic pen-left sample.
        tail = collect_samples(source, lambda g: any(not s.proximity for s in g), timeout=2.0)
        assert tail and not tail[-1].tip
        second = EmulatedTablet(_inks(), EmulatorConfig(speed=4.0)).start()
        tmp = tmp_path / "ttyTablet.new"
        os.symlink(second.path, tmp)
        os.replace(tmp, link)  # the device re-enumerates at the same path
        wait_event(source, CONNECTED)
        again = collect_samples(source, lambda g: sum(s.tip for s in g) >= 10)
        assert sum(s.tip for s in again) >= 10 and again[0].t == 0.0  # clock restarted for the new device
        assert 0x12 in second.stats.commands and 0x10 in second.stats.commands  # described and started again
        second.close()
    finally:
        source.close()
        first.close()
    assert not source.reader.is_alive()


def test_emulate_cli_prints_the_path_first_and_replays_the_fixture():
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.app.cli", "emulate", "--protocol", "isdv4", "--speed", "8", "--ids", "loops",
         str(FIXTURES / "tiny_corpus.npz")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = _readline(proc).strip()
        assert path.startswith("/dev/"), proc.stderr.read() if proc.poll() is not None else path
        with open_source(f"isdv4:{path}") as source:
            got = collect_samples(source, lambda g: len(g) >= 123)  # 3 strokes x 40 points + 3 pen-left reports
        assert len(got) == 123 and sum(not s.tip for s in got) == 3
        assert proc.wait(timeout=WAIT) == 0
        assert "sent 123 samples" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_inkstream_device_restart_on_an_open_port_resumes_the_stream_with_monotone_time():
    """A UART bridge keeps the port open across a device reset: the host must restart the
    stream itself when the boot HELLO (new session) comes, and t must not jump or go back."""
    with EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True)) as tablet:
        tablet.start()
        with open_source(f"serial:{tablet.path}") as source:
            got = collect_samples(source, lambda g: sum(s.tip for s in g) >= 10)
            assert sum(s.tip for s in got) >= 10
            starts_before = tablet.stats.commands.count(0x10)
            tablet.reboot()
            event = wait_event(source, DEVICE_RESTARTED)
            assert "new session" in event.detail
            n = len(got)
            got += collect_samples(source, lambda g: sum(s.tip for s in g) >= 10)
            assert sum(s.tip for s in got[n:]) >= 10  # streaming again after the restart
            assert tablet.stats.commands.count(0x10) > starts_before and tablet.stats.reboots == 1
            assert source.decoder.restarts == 1
    ts = [s.t for s in got]
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert max(b - a for a, b in zip(ts, ts[1:])) < 60  # no ~71-minute jump from a false unwrap


class _BrokenPort:
    port = "broken"
    in_waiting = 0

    def read(self, n):
        raise serial.SerialException("unplugged")

    def close(self):
        pass


class _RaisingOnLost(PortProtocol):
    def connection_lost(self, exc):
        raise RuntimeError("bug in connection_lost")


def _raising_on_event(event):
    if event.state != STOPPED:
        raise RuntimeError("bug in on_event")


@pytest.mark.parametrize("protocol,on_event", [(_RaisingOnLost(), None), (PortProtocol(), _raising_on_event)],
                         ids=["connection_lost", "on_event"])
def test_reader_records_a_failure_and_emits_stopped_whatever_raises(protocol, on_event):
    reader = ReconnectingReader(_BrokenPort, protocol, ReconnectPolicy(first_delay=0.01, max_delay=0.01), on_event)
    reader.start()
    reader.join(WAIT)
    assert not reader.is_alive(), "the reader thread kept running after a bug"
    events = []
    while not reader.events.empty():
        events.append(reader.events.get_nowait())
    assert events and events[-1].state == STOPPED and "RuntimeError" in events[-1].detail
    assert isinstance(reader.failure, RuntimeError)


def test_emulate_load_inks_applies_ids_before_limit_for_ink_files(monkeypatch):
    import runtime.formats.ink_io
    from runtime.app.emulate import load_inks

    class FakeInk:
        units_per_mm = 10.0

        def __init__(self, ident):
            self.id = ident

        def to_points(self):
            return np.array([[float(len(self.id)), 0.0, 0.0, 1.0]])

    monkeypatch.setattr(runtime.formats.ink_io, "read_ink_file", lambda path: [FakeInk("a"), FakeInk("bb"), FakeInk("ccc")])
    inks = load_inks(["lines.inkml"], limit=1, ids="ccc")  # before the fix: [:1] kept only "a", then no match
    assert [p[0, 0] for p, _ in inks] == [3.0]
    assert [p[0, 0] for p, _ in load_inks(["lines.inkml"], limit=2, ids="a,ccc")] == [1.0, 3.0]


def test_emulate_cli_rejects_a_bad_option_with_a_message():
    proc = subprocess.run([sys.executable, "-m", "runtime.app.cli", "emulate", "--noise", "2", str(FIXTURES / "tiny_corpus.npz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 2 and "noise must be a probability" in proc.stderr and proc.stdout == ""


def test_emulate_loads_inkml_from_the_shared_raw_sample():
    from runtime.app.emulate import load_inks

    inkml = ROOT.parent / "shared" / "data" / "imadocsen" / "raw-sample" / "data" / "sentences" / "writer3" / "sentence1.inkml"
    if not inkml.exists():
        pytest.skip(f"shared data not found at {inkml}")
    (points, upm), = load_inks([inkml])
    assert points.shape == (3300, 4) and int(points[:, 3].sum()) == 31


def test_a_device_restart_ends_the_line_in_the_live_loop():
    """The decoder keeps time continuous across a reboot, so neither the clock rule nor a pause can
    end the line there: the restart marker in the sample queue must, in order among the samples."""
    from runtime.app.live import LiveRecognition
    from runtime.recognizer import EndpointConfig, StreamingRecognizer

    rec = StreamingRecognizer(endpoint=EndpointConfig(pause_s=1e9, long_pause_s=1e9, line_break=False))  # no other endpoint
    finals, events = [], []
    with EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True)) as tablet:
        tablet.start()
        with open_source(f"serial:{tablet.path}") as source:
            live = LiveRecognition(source, rec, clock_speed=4.0, on_final=lambda r, n: finals.append((r, n)),
                                   on_event=events.append)
            deadline = time.monotonic() + WAIT
            while live.rows_received < 50 and time.monotonic() < deadline:
                live.poll(0.05)
            assert live.rows_received >= 50 and not finals
            before = live.rows_received
            tablet.reboot()
            deadline = time.monotonic() + WAIT
            while not finals and time.monotonic() < deadline:
                live.poll(0.05)
            assert source.session_breaks == 1
            assert len(finals) == 1  # the line ended at the restart
            # it holds the ink from before the restart only (rows read before reboot() was asked
            # for, plus what the device sent until it went down)
            assert finals[0][1] >= before and finals[0][1] <= live.rows_received
            deadline = time.monotonic() + WAIT
            after = live.rows_received
            while live.rows_received < after + 50 and time.monotonic() < deadline:
                live.poll(0.05)
            assert live.rows_received >= after + 50 and len(finals) == 1  # the new session is one open line
            assert any(e.state == DEVICE_RESTARTED for e in events)


def test_a_restart_then_a_disconnect_read_late_still_gives_each_session_its_own_line():
    """The reader reports a loss after queueing a restart and more ink, all between a poll's read
    and its event drain: the drain must split at the restart, not merge the second session's ink
    with what comes after the reconnect. Real frames through the real decoder; no reader thread,
    so the order of events is exact."""
    from firmware_bridge import inkstream
    from firmware_bridge.firmware import inkstream_protocol as device
    from firmware_bridge.reader import ReconnectPolicy
    from firmware_bridge.sources import InkstreamSerialSource, _SerialPenSource
    from runtime.app.live import LiveRecognition
    from runtime.recognizer import EndpointConfig, StreamingRecognizer

    class UnstartedSource(InkstreamSerialSource):
        def __init__(self):
            self._command_seq = 0
            _SerialPenSource.__init__(self, "unused", 115200, inkstream.InkstreamDecoder(), ReconnectPolicy(),
                                      None, start_reader=False)

    def session(number, x0, n):
        enc = device.FrameEncoder()
        wire = enc.hello(4000, 4000, 255, 10.0, 200, "dev", session=number)
        tip = device.FLAG_TIP | device.FLAG_PROXIMITY
        # each boot's clock differs (a copy of an old frame to the microsecond is a late one)
        t0 = 1000 * number
        wire += b"".join(enc.sample(t0 + k * 5000, x0 + 30 * k, 2000 + int(200 * math.sin(k / 3)), 100, tip)
                         for k in range(n))
        return wire + enc.sample(t0 + n * 5000, x0 + 30 * n, 2000, 0, device.FLAG_PROXIMITY)  # pen up

    source = UnstartedSource()
    finals = []
    live = LiveRecognition(source, StreamingRecognizer(endpoint=EndpointConfig(pause_s=1e9, long_pause_s=1e9, line_break=False)),
                           on_final=lambda r, n: finals.append(n))
    source.data_received(session(1, 0, 30))
    source.data_received(session(2, 0, 20))  # a new session: the device rebooted
    source.connection_lost(None)
    source.reader.notify(DISCONNECTED, "unplugged")
    live._drain_events()  # what poll() does after its reads
    assert source.session_breaks == 1 and len(finals) == 2  # one line per session
    source.data_received(session(2, 0, 25))  # after the reconnect (the same session)
    live.poll(0)
    assert len(finals) == 2 and live.stream.samples > 0  # the new ink is an open line of its own
