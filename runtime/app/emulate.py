"""``inkstream emulate``: an emulated serial tablet on a pseudo-terminal.

Prints the pty device path as the first line of stdout (then flushes), so a script can start
this, read one line, and open the path with ``serial:PATH`` or ``isdv4:PATH``. Then it replays
the ink files as a device would, until the replay ends (or forever with ``--loop``), and prints
a one-line summary to stderr.

INK files: corpus ``.npz``, ``.inkml``, IAM-OnDB ``.xml`` line files or an IAM-OnDB folder
(through :func:`runtime.formats.ink_io.read_ink_file`). In every file ``--ids`` picks samples first, then
``--limit`` keeps at most N of them.
"""
from __future__ import annotations

import argparse
import signal
import sys

import numpy as np

from firmware_bridge.emulator import EmulatedTablet, EmulatorConfig, PROTOCOLS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inks", nargs="+", metavar="INK", help="ink files (.npz corpus, .inkml, IAM-OnDB .xml or folder)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="inkstream", help="wire protocol (default: inkstream)")
    parser.add_argument("--rate", type=float, default=None, metavar="HZ",
                        help="resample the ink in time at HZ (default: the ink's own timing)")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X", help="replay X times real speed (default 1)")
    parser.add_argument("--loop", action="store_true", help="start over after the last ink, forever")
    parser.add_argument("--noise", type=float, default=0.0, metavar="P",
                        help="corrupt each sent byte with probability P (flip, drop or insert)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for --noise")
    parser.add_argument("--autostart", action="store_true",
                        help="stream without waiting for the host's start command")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N samples per file (after --ids)")
    parser.add_argument("--ids", default=None, help="comma-separated sample ids to take from .npz files")


def load_inks(paths, limit=None, ids=None) -> list[tuple[np.ndarray, float]]:
    """``(points, units_per_mm)`` for every chosen sample of every file, in order.
    Raises FileNotFoundError / runtime.ink.InkFormatError / ValueError naming the problem."""
    from runtime.ink import load_corpus  # runtime.ink is numpy only

    wanted = set(ids.split(",")) if ids else None
    inks = []
    for path in paths:
        if str(path).lower().endswith(".npz"):
            corpus = load_corpus(path)
            chosen = [i for i in range(len(corpus)) if wanted is None or str(corpus.ids[i]) in wanted]
            for i in chosen[:limit]:
                inks.append((corpus.points(i).astype(np.float64), float(corpus.units_per_mm[i])))
            continue
        from runtime.formats.ink_io import read_ink_file
        chosen = [ink for ink in read_ink_file(path) if wanted is None or ink.id in wanted]
        for ink in chosen[:limit]:  # --ids first, then --limit, as for .npz files
            inks.append((ink.to_points(), float(ink.units_per_mm)))
    if not inks:
        raise ValueError(f"no ink to replay in {list(map(str, paths))}" + (f" with --ids {ids}" if ids else ""))
    return inks


def run(args) -> int:
    try:
        config = EmulatorConfig(protocol=args.protocol, rate_hz=args.rate, speed=args.speed, loop=args.loop,
                                noise=args.noise, autostart=args.autostart, seed=args.seed)
        inks = load_inks(args.inks, args.limit, args.ids)
        tablet = EmulatedTablet(inks, config)
    except (OSError, ValueError) as exc:  # InkFormatError is a ValueError
        print(f"inkstream emulate: {exc}", file=sys.stderr)
        return 2
    print(tablet.open(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: tablet.stop())
    try:
        tablet.run()
    except KeyboardInterrupt:
        pass
    finally:
        tablet.drain(timeout=2.0)  # let the host read the tail before the pty goes away
        tablet.close()
    s = tablet.stats
    print(f"inkstream emulate: sent {s.samples_sent} samples in {s.frames_sent} reports "
          f"({s.bytes_sent} bytes, {s.bytes_corrupted} corrupted, {s.bytes_dropped_unread} dropped unread), "
          f"{len(s.commands)} host commands, {s.loops} loops", file=sys.stderr)
    return 0
