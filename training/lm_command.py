"""``inkstream lm``: build the language models the decoders ship with (the ``train`` extra).

* ``inkstream lm words``: the word trigram (modified Kneser-Ney, ARPA) from running text
  (:mod:`training.word_lm`);
* ``inkstream lm chars``: the character n-gram model from wordfreq's word frequencies
  (:mod:`runtime.lm`);
* ``inkstream lm neural``: the character LSTM that rescores a line's final readings
  (:mod:`training.neural_lm`).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from training import neural_lm, word_lm


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lm_kind", metavar="KIND", required=True)
    words = sub.add_parser("words", help="the word n-gram LM of the word decoder",
                           description=word_lm.__doc__.split("\n\n")[0])
    word_lm.configure(words)
    chars = sub.add_parser("chars", help="the character n-gram LM of the beam and word decoders")
    from runtime.lm import default_lm_path

    chars.add_argument("--out", default=str(default_lm_path()), help="file to write (default: the shipped one)")
    chars.add_argument("--words", type=int, default=200_000, help="number of most frequent words")
    chars.add_argument("--order", type=int, default=6)
    chars.add_argument("--tokens", type=float, default=1e7, help="size of the imagined text the counts come from")
    chars.add_argument("--min-history-count", type=float, default=10.0)
    chars.add_argument("--lang", default="en")
    neural = sub.add_parser("neural", help="the line LSTM LM that rescores the word decoder's final readings",
                            description=neural_lm.__doc__.split("\n\n")[0])
    neural_lm.configure(neural)


def run(args) -> int:
    if args.lm_kind == "words":
        return word_lm.run(args)
    if args.lm_kind == "neural":
        return neural_lm.run(args)
    from runtime.lm import build_char_lm, save_lm, word_counts_from_wordfreq

    counts = word_counts_from_wordfreq(args.words, args.lang, args.tokens)
    arrays = build_char_lm(counts, args.order, args.min_history_count)
    save_lm(args.out, arrays)
    print(f"{args.out}: order {args.order}, {len(counts)} words, {len(arrays['histories'])} histories, "
          f"{os.path.getsize(Path(args.out)) / 1e6:.2f} MB")
    return 0
