"""Decoders and encoders of the serial pen protocols, checked against committed test vectors."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import framing, inkstream, isdv4
from firmware_bridge.firmware import inkstream_protocol as device
from firmware_bridge.replay import DeviceArea, fit_to_device, pen_events, resample_points
from firmware_bridge.samples import PenSample, StrokeRowAssembler
from firmware_bridge.sources import FileReplaySource, open_source

VECTORS = json.loads((Path(__file__).parent / "fixtures" / "bridge" / "inkstream_vectors.json").read_text())


def _encode_like_device(v):
    f = v["fields"]
    enc = device.FrameEncoder(seq=f["seq"])
    if f["type"] == "hello":
        return enc.hello(f["x_max"], f["y_max"], f["pressure_max"], f["units_per_mm"], f["rate_hz"], f["name"], f["session"])
    if f["type"] == "sample":
        return enc.sample(f["t_us"], f["x"], f["y"], f["pressure"], f["flags"])
    return enc.heartbeat(f["t_us"], f["streaming"])


def test_crc_check_value_matches_on_both_sides():
    check = VECTORS["crc16_check"]
    assert framing.crc16_ccitt(check["ascii"].encode()) == check["crc"] == 0x29B1
    assert device.crc16_ccitt(check["ascii"].encode()) == check["crc"]


@pytest.mark.parametrize("vector", VECTORS["device_to_host"], ids=lambda v: v["name"])
def test_firmware_encoder_produces_the_vector_bytes(vector):
    assert _encode_like_device(vector).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["device_to_host"], ids=lambda v: v["name"])
def test_host_decoder_reads_each_vector(vector):
    decoder = inkstream.InkstreamDecoder()
    (frame,) = decoder.feed_frames(bytes.fromhex(vector["hex"]))
    f = dict(vector["fields"])
    kind = f.pop("type")
    assert type(frame).__name__ == {"hello": "HelloFrame", "sample": "SampleFrame", "heartbeat": "HeartbeatFrame"}[kind]
    for key, value in f.items():
        got = getattr(frame, key)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, key


def test_host_decoder_reads_the_vectors_as_a_stream_byte_by_byte():
    vectors = VECTORS["device_to_host"]
    for part in (vectors[:5], vectors[5:]):  # seq 0..4, then 255 -> 0 across the wrap
        decoder = inkstream.InkstreamDecoder()
        stream = b"".join(bytes.fromhex(v["hex"]) for v in part)
        frames = [f for b in stream for f in decoder.feed_frames(bytes((b,)))]
        assert [f.seq for f in frames] == [v["fields"]["seq"] for v in part]
        assert decoder.errors.total_bad_frames() == 0 and decoder.errors.lost == 0


@pytest.mark.parametrize("vector", VECTORS["host_to_device"], ids=lambda v: v["name"])
def test_host_command_encoder_matches_vectors_and_device_reads_them(vector):
    wire = inkstream.encode_command(vector["command"], vector["seq"])
    assert wire.hex() == vector["hex"]
    assert device.CommandReader().feed(wire) == [vector["command"]]


def test_device_command_reader_skips_corrupt_commands_and_counts_them():
    reader = device.CommandReader()
    good = inkstream.encode_command(inkstream.START)
    bad = bytearray(good)
    bad[1] ^= 0x01
    assert reader.feed(bytes(bad) + b"\x07" * 200 + b"\x00" + good) == [device.CMD_START]
    assert reader.errors == 2


def test_cobs_round_trip_and_both_implementations_agree():
    rng = np.random.default_rng(1)
    for n in (0, 1, 253, 254, 255, 600):
        data = bytes(rng.integers(0, 3, n, dtype=np.uint8))  # many zeros
        enc = framing.cobs_encode(data)
        assert 0 not in enc and enc == device.cobs_encode(data)
        assert framing.cobs_decode(enc) == data == device.cobs_decode(enc)
    with pytest.raises(framing.CobsError):
        framing.cobs_decode(b"\x05\x01")


def test_framer_drops_and_counts_oversize_frames_without_growing():
    framer = framing.CobsFramer(max_frame=8)
    frames = framer.feed(b"\x01" * 100) + framer.feed(b"\x00abc\x00\x00")
    assert frames == [b"abc"] and framer.oversize == 1


def test_decoder_counts_each_kind_of_bad_frame_and_yields_no_sample():
    enc = device.FrameEncoder()
    hello = enc.hello(1000, 1000, 255, 10.0, 100)
    good = [enc.sample(i * 10_000, 10 + i, 20, 100, 3) for i in range(5)]
    crc_bad = bytearray(good[1])
    crc_bad[3] ^= 0x01  # a data byte (byte 5 would be a COBS code byte: a framing error)
    out_of_range = enc.sample(60_000, 5000, 20, 100, 3)
    unknown = device.wrap_payload(0x7E, enc.seq, b"\x01")
    short = device.wrap_payload(device.FRAME_SAMPLE, (enc.seq + 1) & 0xFF, b"\x01\x02")
    stream = hello + good[0] + bytes(crc_bad) + good[2] + good[2] + good[4] + out_of_range + unknown + short
    decoder = inkstream.InkstreamDecoder()
    samples = decoder.feed(stream)
    assert [s.x for s in samples] == [10, 12, 14]
    e = decoder.errors
    assert (e.crc, e.stale, e.lost, e.out_of_range, e.unknown_type, e.malformed) == (1, 1, 2, 1, 1, 1)
    assert samples[0].pressure == pytest.approx(100 / 255) and samples[0].tip and samples[0].proximity


def test_decoder_unwraps_the_32_bit_device_clock():
    enc = device.FrameEncoder()
    decoder = inkstream.InkstreamDecoder()
    samples = decoder.feed(enc.sample(2**32 - 5000, 1, 1, 0, 3) + enc.sample(5000, 2, 1, 0, 3))
    assert [s.t for s in samples] == pytest.approx([0.0, 0.01])


# A pen packet worked out by hand from the layout in REFERENCE.md:
# x=5000 -> b1=9, b2=0x62, low bits 0; y=3001 -> b3=5, b4=0x6E, low bits 1; pressure=700 -> b5=0x3C, high 5.
ISDV4_PACKET = bytes.fromhex("a1 09 62 05 6e 3c 0d 00 00")


def test_isdv4_packet_worked_by_hand_decodes_and_encodes():
    decoder = isdv4.IsdV4Decoder(clock=lambda: 10.0)
    (packet,) = decoder.feed_packets(ISDV4_PACKET)
    assert (packet.x, packet.y, packet.pressure, packet.tip, packet.proximity) == (5000, 3001, 700, True, True)
    assert isdv4.encode_pen_packet(5000, 3001, 700, tip=True) == ISDV4_PACKET


def test_isdv4_query_reply_sets_ranges_and_range_check_drops_samples():
    decoder = isdv4.IsdV4Decoder(clock=lambda: 0.0)
    decoder.query_sent()
    reply = isdv4.encode_query_reply(4000, 3000, 255, 60, 60, (1, 2))
    assert len(reply) == 11 and reply[0] == 0xC0
    samples = decoder.feed(reply + ISDV4_PACKET + isdv4.encode_pen_packet(100, 200, 50, tip=True))
    assert decoder.info.x_max == 4000 and decoder.info.version == "1.2" and decoder.info.units_per_mm == 100
    assert [(s.x, s.y) for s in samples] == [(100, 200)] and decoder.errors.out_of_range == 1


def test_isdv4_query_reply_is_accepted_only_while_a_query_is_outstanding_and_sane():
    decoder = isdv4.IsdV4Decoder(clock=lambda: 0.0)
    pen = isdv4.encode_pen_packet(100, 200, 50, tip=True)
    # Unsolicited (noise shaped like a reply): ignored, so it cannot set x_max = 0.
    assert decoder.feed(isdv4.encode_query_reply(0, 0, 0) + pen)[0].x == 100
    assert decoder.info is None and decoder.errors.extra["unsolicited_query_reply"] == 1
    decoder.query_sent()
    decoder.feed(isdv4.encode_query_reply(0, 3000, 255))  # a zero maximum is not a sane reply
    assert decoder.info is None and decoder.errors.malformed == 1 and decoder.query_outstanding
    decoder.feed(isdv4.encode_query_reply(4000, 3000, 255))
    assert decoder.info.x_max == 4000 and not decoder.query_outstanding
    # A second reply after the first one (no new query) is noise too.
    samples = decoder.feed(isdv4.encode_query_reply(1, 1, 1) + pen)
    assert decoder.info.x_max == 4000 and [(s.x, s.y) for s in samples] == [(100, 200)]
    assert decoder.errors.extra["unsolicited_query_reply"] == 2
    decoder.query_sent()
    decoder.query_done()  # the host gave up waiting: a late reply is ignored
    decoder.feed(isdv4.encode_query_reply(9, 9, 9))
    assert decoder.info.x_max == 4000 and decoder.errors.extra["unsolicited_query_reply"] == 3


def test_isdv4_resyncs_on_header_bits_and_skips_touch_packets():
    decoder = isdv4.IsdV4Decoder(clock=lambda: 0.0)
    a = isdv4.encode_pen_packet(1, 2, 3, tip=True)
    b = isdv4.encode_pen_packet(4, 5, 6, tip=False)
    touch = bytes((0x90, 1, 2, 3, 4))
    samples = decoder.feed(b"\x05\x06" + a[:5] + touch + b + a)
    assert [(s.x, s.tip) for s in samples] == [(4, False), (1, True)]
    assert decoder.errors.stray_bytes == 2 and decoder.errors.framing == 1 and decoder.ignored_touch == 1


def test_isdv4_spaces_packets_of_one_chunk_at_the_nominal_rate():
    now = [5.0]
    decoder = isdv4.IsdV4Decoder(clock=lambda: now[0], nominal_rate_hz=100.0)
    packet = isdv4.encode_pen_packet(1, 1, 1, tip=True)
    first = decoder.feed(packet * 3)
    now[0] = 4.995  # arrives sooner than the nominal period: clamped, never decreasing
    second = decoder.feed(packet)
    assert [s.t for s in first + second] == pytest.approx([0.0, 0.01, 0.02, 0.02])


def test_stroke_row_assembler_emits_pen_up_when_the_pen_lifts():
    assembler = StrokeRowAssembler()
    down = [PenSample(i, 0, i / 100, tip=True) for i in range(3)]
    assert assembler.accept(down[0]) == []
    assert assembler.accept(down[1]) == [(0.0, 0.0, 0.0, 0.0)]
    assert assembler.accept(down[2]) == [(1.0, 0.0, 0.01, 0.0)]
    assert assembler.accept(PenSample(2, 0, 0.03, tip=False, proximity=False)) == [(2.0, 0.0, 0.02, 1.0)]
    assert assembler.accept(PenSample(2, 0, 0.04, tip=False)) == []
    assembler.accept(PenSample(9, 9, 0.05, tip=True))
    assert assembler.flush() == [(9.0, 9.0, 0.05, 1.0)] and assembler.flush() == []


def _two_strokes():
    pts = np.zeros((10, 4))
    pts[:, 0] = np.arange(10) * 2.0
    pts[:, 1] = np.arange(10) % 3
    pts[:, 2] = np.arange(10) * 0.01
    pts[4, 3] = pts[9, 3] = 1
    return pts


def test_file_replay_source_round_trips_through_the_row_assembler():
    pts = _two_strokes()
    source = FileReplaySource(pts, units_per_mm=5.0)
    rows = StrokeRowAssembler().accept_many(source.read())
    assert np.allclose(np.array(rows), pts) and source.ended and source.info.units_per_mm == 5.0


def test_resample_keeps_stroke_ends_and_rate():
    pts = _two_strokes()
    out = resample_points(pts, 50.0)
    assert np.allclose(np.diff(out[:3, 2]), 0.02) and out[:, 3].sum() == 2


def test_fit_to_device_keeps_physical_size_or_uses_nominal_height():
    area = DeviceArea(30000, 20000, 100.0, 1023)
    pts = _two_strokes()
    xy = fit_to_device(pts, 10.0, area)  # 18 units at 10/mm = 1.8 mm = 180 device units
    assert xy[:, 0].max() - xy[:, 0].min() == 180 and xy.min() >= 1000
    xy_nan = fit_to_device(pts, math.nan, area)  # 2 units high drawn 10 mm = 1000 units high
    assert xy_nan[:, 1].max() - xy_nan[:, 1].min() == 1000
    events = pen_events(pts, xy, 0.0, 0.01)
    assert [e.tip for e in events].count(False) == 2 and all(b.t >= a.t for a, b in zip(events, events[1:]))


def test_open_source_rejects_bad_specs_with_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'tcp'"):
        open_source("tcp:localhost")
    with pytest.raises(ValueError, match="expected serial:PATH"):
        open_source("serial")
    with pytest.raises(ValueError, match="load_points"):
        open_source("file:ink.inkml")
    np.save(tmp_path / "p.npy", _two_strokes())
    source = open_source(f"file:{tmp_path / 'p.npy'}")
    assert len(source.read()) == 12
    source = open_source("file:x", load_points=lambda path: (_two_strokes(), 7.0))
    assert source.info.units_per_mm == 7.0


def test_new_session_hello_restarts_sequence_and_clock_but_a_replayed_hello_does_not():
    old = device.FrameEncoder(seq=40)
    hello_old = old.hello(1000, 1000, 255, 10.0, 100, "dev", session=1)
    a = old.sample(9_000_000, 1, 1, 0, 3)
    rebooted = device.FrameEncoder(seq=0)
    hello_new = rebooted.hello(1000, 1000, 255, 10.0, 100, "dev", session=2)
    b = rebooted.sample(1_000, 2, 2, 0, 3)  # clock and seq started over
    decoder = inkstream.InkstreamDecoder()
    samples = decoder.feed(hello_old + a + hello_old + a + hello_new + b)
    assert [s.x for s in samples] == [1, 2]
    assert decoder.errors.stale == 2  # the replayed HELLO and the replayed sample
    # The time origin is rebased: t stays monotone, the new session starts one period (1/100 s) on.
    assert [s.t for s in samples] == pytest.approx([0.0, 0.01]) and decoder.restarts == 1


@pytest.mark.parametrize("old_t_us", [9_000_000, 3_000_000_000])  # back in time / "a 2^32 wrap"
def test_device_restart_keeps_time_monotone_and_continuous_and_is_flagged(old_t_us):
    old = device.FrameEncoder(seq=200)
    stream = old.hello(1000, 1000, 255, 10.0, 200, "dev", session=1)
    stream += b"".join(old.sample(old_t_us + i * 5000, i, 1, 0, 3) for i in range(3))
    new = device.FrameEncoder(seq=0)
    stream += new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)
    stream += b"".join(new.sample(777 + i * 5000, 10 + i, 1, 0, 3) for i in range(3))
    stream += new.hello(1000, 1000, 255, 10.0, 200, "dev", session=2)  # answer to DESCRIBE: no restart
    stream += new.sample(777 + 3 * 5000, 13, 1, 0, 3)
    for chunked in (False, True):
        decoder = inkstream.InkstreamDecoder()
        if chunked:  # frames first, converted afterwards in order: same result
            frames = [f for b in stream for f in decoder.feed_frames(bytes((b,)))]
            samples = [decoder.to_pen_sample(f) for f in frames if isinstance(f, inkstream.SampleFrame)]
        else:
            frames = decoder.feed_frames(stream)
            samples = [decoder.to_pen_sample(f) for f in frames if isinstance(f, inkstream.SampleFrame)]
        hellos = [f for f in frames if isinstance(f, inkstream.HelloFrame)]
        assert [h.restart for h in hellos] == [False, True, False] and decoder.restarts == 1
        assert [s.x for s in samples] == [0, 1, 2, 10, 11, 12, 13]
        assert [s.t for s in samples] == pytest.approx([0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03])
        assert decoder.errors.stale == 0 and decoder.errors.lost == 0
    decoder.reset()  # a reconnect: time starts again from 0
    assert decoder.feed(device.FrameEncoder().sample(5, 1, 1, 0, 3))[0].t == 0.0


def test_firmware_touch_filter_debounces_and_reports_pressure():
    from firmware_bridge.firmware import touch

    f = touch.TouchFilter()
    firm = (30000, 20000, 30000, 40000)   # small contact resistance
    open_ = (30000, 20000, 0, 0)          # no contact
    assert f.update(*firm) is None        # one touching reading is not yet a touch
    x, y, pressure, tip, prox = f.update(*firm)
    assert tip and prox and 0 < pressure <= touch.PRESSURE_MAX
    assert f.update(*open_) is None and f.update(*firm)[3]  # a one-reading bounce does not lift
    assert f.update(30000 + 2 * touch.MAX_JUMP, 20000, 30000, 40000) is None  # glitch skipped
    assert [f.update(*open_) for _ in range(3)][-1] == (30000, 20000, 0, False, False)
