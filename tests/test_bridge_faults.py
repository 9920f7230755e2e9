"""Faults of the serial path (issue 17, items 1 and 2), each with a reproducer: a device restart
whose HELLO is lost, an old frame arriving after a restart HELLO, a frozen device, and paths that
can never be a serial port. Real components: the firmware's encoder, the host decoder, and the
emulated tablet on a real pty read through pyserial; no mocks."""
import os
import time

import numpy as np
import pytest

from conftest import collect_samples, wait_event
from firmware_bridge import inkstream
from firmware_bridge.emulator import EmulatedTablet, EmulatorConfig
from firmware_bridge.firmware import inkstream_protocol as device
from firmware_bridge.reader import (CONNECTED, DEVICE_RESTARTED, OPEN_FAILED, RESUMED, STALLED, STOPPED,
                                    ReconnectPolicy)
from firmware_bridge.sources import open_source

WAIT = 15.0  # seconds before a wait gives up and the test fails (not a timing assertion)
TIP = device.FLAG_TIP | device.FLAG_PROXIMITY


def _inks():
    t = np.arange(60) * 0.01
    stroke = np.stack([10 * np.arange(60.0), 50 + 20 * np.sin(t * 8), t, np.zeros(60)], axis=1)
    stroke[-1, 3] = 1.0
    return [(stroke, 10.0)]






# -- item 1: device restarts, decoder level (exact) -------------------------------------------

def _old_session(decoder):
    """600 s into a session (seq 40...): three samples, all delivered."""
    old = device.FrameEncoder(seq=37)
    wire = old.hello(1000, 1000, 255, 10.0, 200, "dev", session=1)
    frames = [old.sample(600_000_000 + k * 5000, 100 + k, 1, 0, TIP) for k in range(3)]
    got = decoder.feed(wire + b"".join(frames))
    assert [s.x for s in got] == [100, 101, 102]
    return frames


def test_a_restart_whose_hello_is_lost_asks_the_device_and_recovers():
    decoder = inkstream.InkstreamDecoder()
    _old_session(decoder)
    new = device.FrameEncoder()
    new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)  # the boot HELLO, lost on the wire
    lost_run = b"".join(new.sample(2_000 + k * 5000, 200 + k, 1, 0, TIP) for k in range(3))
    assert decoder.feed(lost_run) == []  # a clock that went back: stale, for now
    assert decoder.describe_wanted  # ... so the host asks the device to describe itself
    decoder.describe_sent()
    assert not decoder.describe_wanted
    answer = new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)
    frames = decoder.feed_frames(answer + b"".join(new.sample(20_000 + k * 5000, 300 + k, 1, 0, TIP)
                                                   for k in range(3)))
    assert frames[0].restart and decoder.restarts == 1
    samples = [decoder.to_pen_sample(f) for f in frames[1:]]
    assert [s.x for s in samples] == [300, 301, 302]
    # host time stays monotone and continuous: one period after the last old sample
    assert [s.t for s in samples] == pytest.approx([0.015, 0.02, 0.025])


def test_an_old_frame_after_a_restart_hello_is_not_delivered_again_and_new_samples_flow():
    decoder = inkstream.InkstreamDecoder()
    old_frames = _old_session(decoder)
    new = device.FrameEncoder()
    wire = new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)
    wire += old_frames[-1]  # the old session's last sample again, after the restart HELLO
    wire += b"".join(new.sample(1_000 + k * 5000, 200 + k, 1, 0, TIP) for k in range(5))
    samples = decoder.feed(wire)
    assert [s.x for s in samples] == [200, 201, 202, 203, 204]
    assert decoder.restarts == 1 and decoder.errors.stale == 1
    assert [s.t for s in samples] == pytest.approx([0.015, 0.02, 0.025, 0.03, 0.035])


def test_a_late_old_frame_after_a_restart_is_resolved_by_asking_the_device():
    """An old frame never seen before (it was counted lost) arrives after the restart HELLO: it
    cannot be told from a new one, so it is taken, and the new frames then look stale. The
    device's answer to DESCRIBE (its live seq) re-anchors the stream; time never goes back."""
    decoder = inkstream.InkstreamDecoder()
    old = device.FrameEncoder(seq=37)
    wire = old.hello(1000, 1000, 255, 10.0, 200, "dev", session=1)
    wire += b"".join(old.sample(600_000_000 + k * 5000, 100 + k, 1, 0, TIP) for k in range(3))
    late = old.sample(600_015_000, 103, 1, 0, TIP)  # held up somewhere
    wire += old.sample(600_020_000, 104, 1, 0, TIP)
    new = device.FrameEncoder()
    wire += new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2) + late
    wire += b"".join(new.sample(1_000 + k * 5000, 200 + k, 1, 0, TIP) for k in range(3))
    samples = decoder.feed(wire)
    assert [s.x for s in samples] == [100, 101, 102, 104, 103]  # 103 once, then the new ones stale
    assert decoder.describe_wanted
    decoder.describe_sent()
    answer = new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)
    samples += decoder.feed(answer + b"".join(new.sample(30_000 + k * 5000, 300 + k, 1, 0, TIP) for k in range(3)))
    assert [s.x for s in samples][5:] == [300, 301, 302] and decoder.restarts == 1
    ts = [s.t for s in samples]
    assert all(b > a for a, b in zip(ts, ts[1:]))


def test_asking_the_device_changes_nothing_when_the_stream_was_right():
    """A plain duplicate also makes the host ask; an answer that continues the stream keeps its clock."""
    decoder = inkstream.InkstreamDecoder()
    frames = _old_session(decoder)
    assert decoder.feed(frames[-1]) == [] and decoder.describe_wanted
    decoder.describe_sent()
    enc = device.FrameEncoder(seq=41)
    samples = decoder.feed(enc.hello(1000, 1000, 255, 10.0, 200, "dev", session=1)
                           + enc.sample(600_050_000, 110, 1, 0, TIP))
    assert [s.x for s in samples] == [110] and samples[0].t == pytest.approx(0.05)
    assert decoder.restarts == 0


# -- item 1: device restarts over a real pty ------------------------------------------------------

@pytest.mark.parametrize("fault", ["hello_lost", "replay_last"])
def test_a_device_restart_with_a_lost_hello_or_a_late_old_frame_recovers_over_a_pty(fault):
    with EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True, seed=3)) as tablet:
        tablet.start()
        with open_source(f"serial:{tablet.path}") as source:
            got = collect_samples(source, lambda g: sum(s.tip for s in g) >= 10)
            # the late frame's seq lies "ahead" of the new session's: the case that was taken
            deadline = time.monotonic() + WAIT
            while fault == "replay_last" and not 20 <= tablet._encoder.seq <= 100 and time.monotonic() < deadline:
                got += source.read(timeout=0.01)
            tablet.reboot(**{fault: True})
            event = wait_event(source, DEVICE_RESTARTED, timeout=5.0)
            assert "new session" in event.detail
            n = len(got)
            got += collect_samples(source, lambda g: sum(s.tip for s in g) >= 10, timeout=5.0)
            assert sum(s.tip for s in got[n:]) >= 10, "no ink after the restart"
            assert source.decoder.restarts == 1 and source.session_breaks == 1
            # the new session's frames were not dropped while its clock was behind the old one
            assert source.errors.stale <= 3, source.errors
            if fault == "replay_last":  # and the old frame was not delivered a second time
                replayed = tablet.last_sample_sent
                first_new = next(s for s in got[n:] if s.proximity)  # after the synthetic pen-left
                assert (int(first_new.x), int(first_new.y)) != (replayed.x, replayed.y)
    ts = [s.t for s in got]
    assert all(b >= a for a, b in zip(ts, ts[1:]))


# -- item 2: a frozen device ----------------------------------------------------------------------

def test_a_frozen_device_is_reported_stalled_and_resumed():
    with EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True, heartbeat_period=0.2)) as tablet:
        tablet.start()
        with open_source(f"serial:{tablet.path}", stall_timeout=0.6) as source:
            wait_event(source, CONNECTED)
            assert sum(s.tip for s in collect_samples(source, lambda g: sum(s.tip for s in g) >= 10)) >= 10
            tablet.freeze()
            event = wait_event(source, STALLED, timeout=5.0)
            assert "no frame" in event.detail and "heartbeat" in event.detail
            tail = collect_samples(source, lambda g: False, timeout=0.3)
            assert not tail or not tail[-1].tip  # the open stroke was ended
            tablet.thaw()
            event = wait_event(source, RESUMED, timeout=5.0)
            assert collect_samples(source, lambda g: sum(s.tip for s in g) >= 10, timeout=5.0)


# -- item 2: paths that can never be a serial port -------------------------------------------------

@pytest.mark.parametrize("kind", ["directory", "regular_file", "missing_parent"])
def test_a_path_that_can_never_be_a_serial_port_fails_at_once(tmp_path, kind):
    path = {"directory": tmp_path, "regular_file": tmp_path / "ttyUSB0", "missing_parent": tmp_path / "no" / "ttyUSB0"}[kind]
    if kind == "regular_file":
        path.write_bytes(b"left by `echo > /dev/ttyUSB0` while nothing was plugged in")
    expected = {"directory": "is a directory", "regular_file": "is a regular file", "missing_parent": "no folder"}[kind]
    for scheme in ("serial", "isdv4"):
        with pytest.raises(ValueError, match=expected) as info:
            open_source(f"{scheme}:{path}")
        assert "serial port" in str(info.value) and "\n" not in str(info.value)


def test_a_character_device_that_is_not_a_terminal_ends_the_reader_with_a_message():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    source = open_source("serial:/dev/null", policy=ReconnectPolicy(first_delay=0.01, max_delay=0.02))
    try:
        event = wait_event(source, OPEN_FAILED)
        assert "not a terminal" in event.detail
        source.reader.join(WAIT)
        assert not source.reader.is_alive() and source.ended
        states = []
        while not source.events.empty():
            states.append(source.events.get_nowait())
        assert states[-1].state == STOPPED and "not a terminal" in states[-1].detail
        assert source.reader.gave_up and source.reader.failure is None
    finally:
        source.close()


def test_a_missing_device_in_an_existing_folder_is_retried_until_it_appears(tmp_path):
    link = tmp_path / "ttyUSB0"
    source = open_source(f"serial:{link}", policy=ReconnectPolicy(first_delay=0.02, max_delay=0.05))
    try:
        failures = 0
        deadline = time.monotonic() + WAIT
        while failures < 3 and time.monotonic() < deadline:
            failures += wait_event(source, OPEN_FAILED).state == OPEN_FAILED
        assert source.reader.is_alive()
        with EmulatedTablet(_inks(), EmulatorConfig(speed=4.0, loop=True)) as tablet:
            tablet.start()
            os.symlink(tablet.path, link)  # plugged in
            wait_event(source, CONNECTED)
            assert collect_samples(source, lambda g: sum(s.tip for s in g) >= 5)
    finally:
        source.close()
