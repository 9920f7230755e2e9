"""Property-based fuzzing of the inkstream and ISDV4 decoders (hypothesis).

inkstream: no input crashes the decoder, and under damage (truncation, bit flips, duplicated or
reordered frames) every frame it yields is one the device really sent, in sending order.
(CRC-16/CCITT detects every error of up to 3 bits and every burst up to 16 bits; for wider damage
a false accept has odds of about 1 in 65536 per damaged frame, on top of the COBS and exact
length checks, so these properties are stated for the damage the tests make.)
ISDV4 (no checksum): no input crashes it, every sample is within the announced ranges, and one
damaged byte changes or removes at most the one packet it falls in.
"""
import math

from hypothesis import HealthCheck, given, settings, strategies as st

from firmware_bridge import inkstream, isdv4
from firmware_bridge.firmware import inkstream_protocol as device

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sample_fields = st.tuples(st.integers(0, 4095), st.integers(0, 4095), st.integers(0, 255),
                          st.sampled_from([0, 2, 3, 7, 11]))


@st.composite
def device_streams(draw, min_samples=1, max_samples=25):
    """(list of frame wire bytes, list of the SampleFrames they carry); the first is a HELLO."""
    fields = draw(st.lists(sample_fields, min_size=min_samples, max_size=max_samples))
    enc = device.FrameEncoder(seq=draw(st.integers(0, 255)))
    wires = [enc.hello(4095, 4095, 255, 40.96, 200, "fuzz")]
    frames = []
    t_us = draw(st.integers(0, 2**32 - 1))
    for x, y, p, flags in fields:
        t_us = (t_us + 5000) & 0xFFFFFFFF
        seq = enc.seq
        wires.append(enc.sample(t_us, x, y, p, flags))
        frames.append(inkstream.SampleFrame(seq, t_us, x, y, p, flags))
    return wires, frames


def _samples(decoder, data):
    return [f for f in decoder.feed_frames(data) if isinstance(f, inkstream.SampleFrame)]


def _is_ordered_subsequence(got, sent):
    it = iter(sent)
    return all(any(g == s for s in it) for g in got)


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=20))
def test_inkstream_random_bytes_never_crash_in_any_chunking(data, cuts):
    decoder = inkstream.InkstreamDecoder()
    pos = 0
    for size in cuts + [len(data)]:
        for f in decoder.feed_frames(data[pos:pos + size]):
            assert isinstance(f, (inkstream.HelloFrame, inkstream.SampleFrame, inkstream.HeartbeatFrame))
        pos += size
    assert len(decoder._framer._buffer) <= inkstream.MAX_ENCODED


@FUZZ
@given(device_streams())
def test_inkstream_truncation_at_every_offset(stream):
    wires, frames = stream
    data = b"".join(wires)
    ends = [sum(len(w) for w in wires[:i + 1]) for i in range(len(wires))]
    for k in range(len(data) + 1):
        head = _samples(inkstream.InkstreamDecoder(), data[:k])
        complete = sum(1 for e in ends[1:] if e <= k)  # sample frames whose delimiter is inside
        assert head == frames[:complete]
        tail = _samples(inkstream.InkstreamDecoder(), data[k:])
        assert _is_ordered_subsequence(tail, frames)
        assert len(tail) >= sum(1 for i, e in enumerate(ends[1:]) if e - len(wires[i + 1]) >= k)


@FUZZ
@given(device_streams(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=3))
def test_inkstream_bit_flips_never_yield_a_corrupted_sample(stream, flips):
    wires, frames = stream
    data = bytearray(b"".join(wires))
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    decoder = inkstream.InkstreamDecoder()
    got = _samples(decoder, bytes(data))
    assert _is_ordered_subsequence(got, frames)
    # One flip spoils at most two frames (it can turn a delimiter into data, merging two).
    assert len(got) >= len(frames) - 2 * len(flips) - 1  # -1: the HELLO itself may be hit


@FUZZ
@given(device_streams(min_samples=2), st.data())
def test_inkstream_duplicated_and_reordered_frames(stream, data):
    wires, frames = stream
    order = list(range(len(wires)))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["dup", "swap", "repeat_block"]))
        i = data.draw(st.integers(0, len(order) - 1))
        j = data.draw(st.integers(0, len(order) - 1))
        if op == "dup":
            order.insert(j, order[i])
        elif op == "swap":
            order[i], order[j] = order[j], order[i]
        else:
            lo, hi = min(i, j), max(i, j) + 1
            order[hi:hi] = order[lo:hi]
    decoder = inkstream.InkstreamDecoder()
    got = _samples(decoder, b"".join(wires[k] for k in order))
    assert _is_ordered_subsequence(got, frames)  # no duplicates, never back in time
    assert len(set(got)) == len(got)


@st.composite
def isdv4_streams(draw):
    packets = draw(st.lists(st.builds(
        isdv4.IsdV4PenPacket, st.integers(0, 30000), st.integers(0, 20000), st.integers(0, 1023),
        st.booleans(), st.just(True), st.booleans(), st.booleans(), st.integers(0, 127), st.integers(0, 127)),
        min_size=1, max_size=20))
    wires = [isdv4.encode_pen_packet(p.x, p.y, p.pressure, p.tip, p.proximity, p.switch1, p.switch2, p.tilt_x, p.tilt_y)
             for p in packets]
    return wires, packets


def _pens(decoder, data):
    return [p for p in decoder.feed_packets(data) if isinstance(p, isdv4.IsdV4PenPacket)]


@FUZZ
@given(st.binary(max_size=2000))
def test_isdv4_random_bytes_never_crash_and_respect_announced_ranges(data):
    decoder = isdv4.IsdV4Decoder(clock=lambda: 0.0)
    decoder.query_sent()
    decoder.feed_packets(isdv4.encode_query_reply(30000, 20000, 1023))
    samples = decoder.feed(data)  # a reply-shaped burst in here must not change the ranges
    assert (decoder.info.x_max, decoder.info.y_max, decoder.info.pressure_max) == (30000, 20000, 1023)
    assert len(samples) <= sum(1 for b in data if b & 0x80)
    for s in samples:
        assert 0 <= s.x <= 30000 and 0 <= s.y <= 20000 and 0 <= s.pressure <= 1
        assert s.proximity or not s.tip
        assert not math.isnan(s.t)


@FUZZ
@given(isdv4_streams())
def test_isdv4_truncation_at_every_offset_gives_a_prefix(stream):
    wires, packets = stream
    data = b"".join(wires)
    for k in range(len(data) + 1):
        assert _pens(isdv4.IsdV4Decoder(), data[:k]) == packets[:k // 9]
        tail = _pens(isdv4.IsdV4Decoder(), data[k:])
        assert tail == packets[len(packets) - len(tail):]


def _at_most_one_packet_differs(got, sent):
    if len(got) == len(sent):
        return sum(g != s for g, s in zip(got, sent)) <= 1
    if len(got) == len(sent) - 1:
        return any(got == sent[:i] + sent[i + 1:] for i in range(len(sent)))
    return False


@FUZZ
@given(isdv4_streams(), st.integers(0, 10**6), st.sampled_from(["flip", "drop", "insert"]), st.integers(0, 255))
def test_isdv4_one_damaged_byte_affects_at_most_one_packet(stream, pos, kind, value):
    wires, packets = stream
    data = bytearray(b"".join(wires))
    pos %= len(data)
    if kind == "flip":
        data[pos] ^= 1 << (value % 8)
    elif kind == "drop":
        del data[pos]
    else:
        data.insert(pos, value)
    assert _at_most_one_packet_differs(_pens(isdv4.IsdV4Decoder(), bytes(data)), packets)


def test_fuzzer_restart_kind_short_run():
    """CI's share of the fuzzer's ``restart`` kind (device restarts, lost boot HELLOs, late old
    frames, DESCRIBE answers): the long run is ``python -m firmware_bridge.fuzz``."""
    import collections
    import random

    from firmware_bridge import fuzz

    rng = random.Random(17)
    outcomes = collections.Counter(fuzz.check_inkstream("restart", rng) for _ in range(300))
    assert not [o for o in outcomes if o.startswith("FAIL")], outcomes
    assert outcomes["ok (frames dropped)"] > 0  # the lost-HELLO cases did happen


def test_the_fuzz_command_counts_its_inputs_and_passes():
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "fuzz", "--seconds", "1", "--seed", "3"],
                       cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("seed 3, ") and " inputs in " in r.stdout and "FAIL" not in r.stdout
