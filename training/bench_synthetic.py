"""How fast the synthetic generator is, next to the feature extraction that consumes its output.

Prints samples/s and points/s for lines of about 8 words, then the cost of
``runtime.features.extract`` on the same samples and the ratio between the two: a ratio below 1
means the generator is cheaper than the features it feeds.

    python -m training.bench_synthetic [--count 200] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

from runtime.features import extract
from training.synthetic import SynthConfig, SyntheticInk


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="lines to generate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    generator = SyntheticInk(SynthConfig(kind="line", words_per_line=(7, 9)), seed=args.seed)
    generator.sample(0)  # load fonts and the vocabulary outside the timing

    start = time.perf_counter()
    samples = [generator.sample(i) for i in range(args.count)]
    generate_s = time.perf_counter() - start
    points = sum(len(p) for p, _ in samples)

    start = time.perf_counter()
    frames = sum(len(extract(p)) for p, _ in samples)
    extract_s = time.perf_counter() - start

    print(f"generator: {args.count / generate_s:8.1f} samples/s  {points / generate_s:10.0f} points/s  "
          f"({points / args.count:.0f} points per line)")
    print(f"features:  {args.count / extract_s:8.1f} samples/s  {points / extract_s:10.0f} points/s  "
          f"({frames / args.count:.0f} frames per line)")
    print(f"generator time / feature time = {generate_s / extract_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
