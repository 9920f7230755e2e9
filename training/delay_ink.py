"""The packaged ink on which ``inkstream bench`` measures emission delay.

    python -m training.delay_ink [--out runtime/samples/delay_ink.npz] [--count 32] [--seed 0]

Synthetic lines (:class:`~training.synthetic.SyntheticInk`, short lines of the default font mix,
read out by a 200 Hz device clock) written as a corpus ``.npz`` (``runtime.ink.load_corpus`` reads
it, so ``inkstream eval`` does too) with one more array: ``glyphs``, per pen sample the index of
the non-space character of its line's text that the sample belongs to. The bench reads this file
instead of rendering, because the edge install has neither the fonts' word list (``wordfreq``) nor
torch. The file depends only on ``(count, seed)``; a test re-renders the first lines and compares.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.synthetic import AugmentConfig, SynthConfig, SyntheticInk, SyntheticSample

__all__ = ["DELAY_INK_CONFIG", "DEFAULT_PATH", "delay_ink_samples", "write_delay_ink", "main"]

# short lines keep the file small; a 200 Hz clock is the pen rate the bench feeds at
DELAY_INK_CONFIG = SynthConfig(kind="line", words_per_line=(2, 5), augment=AugmentConfig(sample_rate_hz=(200.0, 200.0)))
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "runtime" / "samples" / "delay_ink.npz"
DEFAULT_COUNT = 24
DEFAULT_SEED = 0


def delay_ink_samples(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[SyntheticSample]:
    """The first ``count`` lines of the delay ink of ``seed``, each with its per-sample ``glyphs``."""
    generator = SyntheticInk(DELAY_INK_CONFIG, seed=seed)
    return [generator.sample_info(i) for i in range(count)]


def write_delay_ink(path=DEFAULT_PATH, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> int:
    """Write the delay ink to ``path`` (corpus ``.npz`` plus ``glyphs``); returns its size in bytes."""
    samples = delay_ink_samples(count, seed)
    offsets = np.zeros(len(samples) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s.points) for s in samples])
    np.savez_compressed(
        path,
        points=np.concatenate([s.points for s in samples]).astype(np.float32),
        offsets=offsets,
        texts=np.array([s.text for s in samples]),
        ids=np.array([f"delay-{seed}-{i}" for i in range(len(samples))]),
        writers=np.array([f"synth-{s.font}" for s in samples]),
        units_per_mm=np.full(len(samples), DELAY_INK_CONFIG.units_per_mm, np.float32),
        kind=np.array(["line"] * len(samples)),
        glyphs=np.concatenate([s.glyphs for s in samples]).astype(np.int16),
    )
    return Path(path).stat().st_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.delay_ink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_PATH), help=f"file to write (default {DEFAULT_PATH})")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"lines (default {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    size = write_delay_ink(args.out, args.count, args.seed)
    print(f"wrote {args.count} lines to {args.out} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
