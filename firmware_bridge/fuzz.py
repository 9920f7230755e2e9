"""Standalone fuzzer for the pen protocol decoders.

    inkstream fuzz --seconds 30 [--seed 1]

For a fixed time it throws inputs at the inkstream and ISDV4 decoders (random bytes, a valid
stream truncated, bit-flipped, with bytes dropped/inserted, frames duplicated or reordered, fed
in random chunk sizes) and checks the guarantees stated in ``inkstream.py`` and ``isdv4.py``.
The inkstream ``restart`` kind plays host and device together: a session, then a device restart
whose boot HELLO may be lost and may be followed by a late copy of an old frame, with the host
sending DESCRIBE whenever the decoder asks (answered after 0-3 frames); no sample may come twice,
time may not go back, and the new session must be delivered after a bounded number of frames.
Prints the number of inputs tried per kind and the outcomes; exits 1 if any check failed.
"""
from __future__ import annotations

import argparse
import collections
import random
import time

from . import inkstream, isdv4
from .firmware import inkstream_protocol as device

KINDS = ("random", "truncate", "flip", "drop_insert", "dup_reorder")
INKSTREAM_KINDS = KINDS + ("restart",)
ANSWER_DELAY = 3  # the device answers DESCRIBE after 0..ANSWER_DELAY more frames


def _inkstream_stream(rng):
    enc = device.FrameEncoder(seq=rng.randrange(256))
    wires = [enc.hello(4095, 4095, 255, 40.0, 200, "fuzz", rng.randrange(65536))]
    frames = []
    t = rng.randrange(2**32)
    for _ in range(rng.randrange(1, 30)):
        t = (t + rng.randrange(1, 20000)) & 0xFFFFFFFF
        fields = (t, rng.randrange(4096), rng.randrange(4096), rng.randrange(256), rng.choice((0, 2, 3, 7, 11)))
        frames.append(inkstream.SampleFrame(enc.seq, *fields))
        wires.append(enc.sample(*fields))
    return wires, frames


def _isdv4_stream(rng):
    packets, wires = [], []
    for _ in range(rng.randrange(1, 30)):
        p = isdv4.IsdV4PenPacket(rng.randrange(30001), rng.randrange(20001), rng.randrange(1024),
                                 rng.random() < 0.7, True, rng.random() < 0.1, rng.random() < 0.1)
        packets.append(p)
        wires.append(isdv4.encode_pen_packet(p.x, p.y, p.pressure, p.tip, p.proximity, p.switch1, p.switch2))
    return wires, packets


def _damage(kind, rng, wires):
    data = bytearray(b"".join(wires))
    if kind == "random":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))), None
    if kind == "truncate":
        a = rng.randrange(len(data) + 1)
        b = rng.randrange(a, len(data) + 1)
        return bytes(data[a:b]), 0
    if kind == "flip":
        n = rng.randrange(1, 4)
        for _ in range(n):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), n
    if kind == "drop_insert":
        if rng.random() < 0.5:
            del data[rng.randrange(len(data))]
        else:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        return bytes(data), 1
    order = list(range(len(wires)))
    for _ in range(rng.randrange(1, 5)):
        i, j = rng.randrange(len(order)), rng.randrange(len(order))
        if rng.random() < 0.5:
            order.insert(j, order[i])
        else:
            order[i], order[j] = order[j], order[i]
    return b"".join(wires[k] for k in order), 0


def _feed_chunked(feed, data, rng):
    out, pos = [], 0
    while pos < len(data):
        n = rng.randrange(1, 80)
        out += feed(data[pos:pos + n])
        pos += n
    return out


def _subsequence(got, sent):
    it = iter(sent)
    return all(any(g == s for s in it) for g in got)


def check_inkstream_restart(rng):
    decoder = inkstream.InkstreamDecoder()
    delivered = []

    def feed(wire):
        for f in _feed_chunked(decoder.feed_frames, wire, rng):
            if isinstance(f, inkstream.SampleFrame):
                delivered.append(decoder.to_pen_sample(f))

    def hello(enc, session):
        return enc.hello(4095, 4095, 255, 40.0, 200, "fuzz", session)

    tip = device.FLAG_TIP | device.FLAG_PROXIMITY
    old, t = device.FrameEncoder(seq=rng.randrange(256)), rng.randrange(2**32)
    session = rng.randrange(65536)
    feed(hello(old, session))
    old_wires = []
    for k in range(rng.randrange(1, 40)):  # x = k identifies an old sample, 1000 + k a new one
        t = (t + rng.randrange(1, 20000)) & 0xFFFFFFFF
        old_wires.append(old.sample(t, k, 0, 100, tip) if rng.random() < 0.9 else old.heartbeat(t, True))
    feed(b"".join(old_wires))
    decoder.describe_wanted = False  # nothing went wrong so far (the host would have asked anyway)
    new_session = (session + rng.randrange(1, 65536)) & 0xFFFF
    new = device.FrameEncoder()
    boot = hello(new, new_session)
    hello_lost = rng.random() < 0.5
    if not hello_lost:
        feed(boot)
    if rng.random() < 0.5:
        feed(rng.choice(old_wires[-8:]))  # a late copy of an old frame
    t, n_new = rng.randrange(2_000_000), rng.randrange(5, 60)
    answer_in, first_hello = None, None if hello_lost else 0
    for k in range(n_new):
        if decoder.describe_wanted and answer_in is None:
            decoder.describe_sent()
            answer_in = rng.randrange(ANSWER_DELAY + 1)
        if answer_in == 0:
            answer_in = None
            feed(hello(new, new_session))
            first_hello = k if first_hello is None else first_hello
        elif answer_in is not None:
            answer_in -= 1
        t += rng.randrange(1, 20000)
        feed(new.sample(t, 1000 + k, 0, 100, tip))
    xs = [int(s.x) for s in delivered]
    if len(set(xs)) != len(xs):
        return "FAIL: a sample delivered twice"
    if any(b.t < a.t for a, b in zip(delivered, delivered[1:])):
        return "FAIL: time went back"
    new_xs = [x for x in xs if x >= 1000]
    if new_xs != sorted(new_xs) or xs[:len(xs) - len(new_xs)] != sorted(xs[:len(xs) - len(new_xs)]):
        return "FAIL: samples out of order"
    # Recovered within a bounded time: after the new session's first HELLO reached the host, at
    # most one more DESCRIBE round trip (an old frame taken for a new one) may be lost.
    bound = (n_new if first_hello is None else first_hello) + 2 * (ANSWER_DELAY + 2)
    if n_new - len(new_xs) > bound or (first_hello is not None and 1000 + n_new - 1 not in new_xs):
        return "FAIL: the new session was not recovered"
    return "ok" if len(new_xs) == n_new else "ok (frames dropped)"


def check_inkstream(kind, rng):
    if kind == "restart":
        return check_inkstream_restart(rng)
    wires, frames = _inkstream_stream(rng)
    data, _ = _damage(kind, rng, wires)
    decoder = inkstream.InkstreamDecoder()
    got = [f for f in _feed_chunked(decoder.feed_frames, data, rng) if isinstance(f, inkstream.SampleFrame)]
    if kind == "random":
        return "ok"  # no crash is the property (any accepted frame passed its CRC)
    if not _subsequence(got, frames):
        return "FAIL: a sample that was not sent, or out of order"
    return "ok" if len(got) == len(frames) else "ok (frames dropped)"


def check_isdv4(kind, rng):
    wires, packets = _isdv4_stream(rng)
    if kind == "flip":  # isdv4 promises its bound for one damaged byte only
        data = bytearray(b"".join(wires))
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        data = bytes(data)
    else:
        data, _ = _damage(kind, rng, wires)
    decoder = isdv4.IsdV4Decoder(clock=lambda: 0.0)
    got = [p for p in _feed_chunked(decoder.feed_packets, data, rng) if isinstance(p, isdv4.IsdV4PenPacket)]
    if kind == "random":
        return "ok" if all(p.proximity or not p.tip for p in got) else "FAIL: tip without proximity"
    if kind in ("flip", "drop_insert"):
        same = len(got) == len(packets) and sum(a != b for a, b in zip(got, packets)) <= 1
        one_less = len(got) == len(packets) - 1 and any(got == packets[:i] + packets[i + 1:] for i in range(len(packets)))
        if not (same or one_less):
            return "FAIL: one damaged byte affected more than one packet"
    elif kind == "truncate" and not all(p in packets for p in got):
        return "FAIL: truncation invented a packet"
    return "ok"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to fuzz (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="the random seed (default: a fresh one, printed)")


def run(args) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    outcomes = collections.Counter()
    tried = collections.Counter()
    started = time.monotonic()
    deadline = started + args.seconds
    while time.monotonic() < deadline:
        for name, check, kinds in (("inkstream", check_inkstream, INKSTREAM_KINDS), ("isdv4", check_isdv4, KINDS)):
            kind = rng.choice(kinds)
            tried[name, kind] += 1
            outcomes[name, check(kind, rng)] += 1
    elapsed = time.monotonic() - started
    total = sum(tried.values())
    print(f"seed {seed}, {total} inputs in {elapsed:.0f} s ({total / max(elapsed, 1e-9):.0f} per second)")
    for (name, kind), n in sorted(tried.items()):
        print(f"  tried {name:9s} {kind:12s} {n}")
    for (name, outcome), n in sorted(outcomes.items()):
        print(f"  {name:9s} {outcome}: {n}")
    return 1 if any(o.startswith("FAIL") for _, o in outcomes) else 0
