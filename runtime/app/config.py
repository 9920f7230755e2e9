"""One config tree for what a command runs, with one way to add its flags and one way to read them.

Every command that recognises (``eval``, ``recognize``, ``serve``, ``demo``, ``bench``) describes
its recognizer with an :class:`AppConfig`: the model file, the decoder and its options
(:class:`DecoderConfig`), the endpoint rules and the threads. :func:`add_recognizer_arguments`
puts the matching flags on a parser, :func:`config_from_args` builds the frozen tree from the
parsed flags (refusing options that do not apply), and :meth:`AppConfig.build_recognizer` makes
the recognizer. Decoder options left unset keep the decoder's own defaults, so the defaults live
in one place: the decoder.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Optional

from runtime.recognizer import DECODERS, DEFAULT_DECODER, EndpointConfig, StreamingRecognizer

__all__ = ["DecoderOption", "DECODER_OPTIONS", "DecoderConfig", "AppConfig", "add_recognizer_arguments",
           "config_from_args"]


@dataclass(frozen=True)
class DecoderOption:
    """A decoder option as a flag: ``--flag`` sets keyword ``name`` of the decoders in ``decoders``."""

    flag: str
    name: str
    type: Callable
    help: str
    decoders: tuple = ("beam",)


# Every decoder option the command line knows (a decoder's defaults are in the decoder).
BEAMS = ("beam", "word")
DECODER_OPTIONS = (
    DecoderOption("--beam-width", "beam_width", int, "hypotheses kept per frame", BEAMS),
    DecoderOption("--prune-beam", "prune_beam", float,
                  "a new hypothesis this far (log) below the best is not made", BEAMS),
    DecoderOption("--lm-weight", "lm_weight", float, "scale of the character LM (0 = none)", BEAMS),
    DecoderOption("--insertion-bonus", "insertion_bonus", float, "bonus per character", BEAMS),
    DecoderOption("--lm", "lm_path", str, "character LM file (default: the shipped one)", BEAMS),
    DecoderOption("--lexicon", "lexicon", str, "word list file; in-lexicon words get a bonus"),
    DecoderOption("--lexicon-bonus", "lexicon_bonus", float, "bonus per in-lexicon word"),
    DecoderOption("--word-lm", "word_lm_path", str, "word n-gram LM, ARPA (default: the shipped one)", ("word",)),
    DecoderOption("--word-weight", "word_weight", float, "scale of the word LM at each word's end", ("word",)),
    DecoderOption("--oov-penalty", "oov_penalty", float, "added for a word the word LM does not know", ("word",)),
    DecoderOption("--case-weight", "case_weight", float,
                  "scale of the case model (capitals at sentence starts, words in one case; 0 = off)", ("word",)),
    DecoderOption("--word-case", "word_case_path", str,
                  "word case table: words written with a capital inside sentences (default: the shipped one)",
                  ("word",)),
    DecoderOption("--word-case-weight", "word_case_weight", float,
                  "scale of the word case table (names keep their capitals; 0 = off)", ("word",)),
    DecoderOption("--line-lm", "line_lm_path", str, "line LM for the second pass, ONNX (default: the shipped one)",
                  BEAMS),
    DecoderOption("--line-lm-weight", "line_lm_weight", float,
                  "scale of the line LM when a line's final readings are rescored (0 = no second pass)", BEAMS),
    DecoderOption("--line-lm-nbest", "line_lm_nbest", int, "how many of a line's best readings it rescores", BEAMS),
    DecoderOption("--line-lm-margin", "line_lm_margin", float,
                  "... of those at most this far (log) below the best", BEAMS),
    DecoderOption("--line-lm-char-bonus", "line_lm_char_bonus", float,
                  "line LM bonus per character (the LM has no end of line)", BEAMS),
    DecoderOption("--words", "user_words", str,
                  "user words: a file of names and terms, one a line, optionally TAB and a boost", ("word",)),
    DecoderOption("--words-boost", "user_word_boost", float, "boost of user words given without one", ("word",)),
)


@dataclass(frozen=True)
class DecoderConfig:
    """A decoder by name and the options given for it (``((name, value), ...)``, sorted)."""

    name: str = DEFAULT_DECODER
    options: tuple = ()

    def __post_init__(self):
        if self.name not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {self.name!r}")
        known = {o.name: o for o in DECODER_OPTIONS}
        for key, _ in self.options:
            if key not in known:
                raise ValueError(f"unknown decoder option {key!r}")
            if self.name not in known[key].decoders:
                raise ValueError(f"{known[key].flag} only applies to --decoder {' or '.join(known[key].decoders)}"
                                 f" (not {self.name})")

    @classmethod
    def of(cls, name: str = DEFAULT_DECODER, **options) -> "DecoderConfig":
        return cls(name, tuple(sorted((k, v) for k, v in options.items() if v is not None)))

    def kwargs(self) -> dict:
        return dict(self.options)


@dataclass(frozen=True)
class AppConfig:
    """What a command recognises with: model, decoder, endpoint rules, onnxruntime threads."""

    model: Optional[str] = None  # None: the shipped model
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    threads: int = 1

    def __post_init__(self):
        if self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}")

    def build_recognizer(self) -> StreamingRecognizer:
        return StreamingRecognizer(self.model, decoder=self.decoder.name, endpoint=self.endpoint,
                                   threads=self.threads, decoder_options=self.decoder.kwargs())


def add_recognizer_arguments(parser: argparse.ArgumentParser, endpoints: bool = True, threads: bool = True) -> None:
    """``--model``, ``--decoder`` and its options, ``--threads``; with ``endpoints`` also ``--pause``
    and ``--no-line-break`` (commands that cut live input into lines)."""
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    parser.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER,
                        help=f"CTC decoder (default: {DEFAULT_DECODER})")
    for option in DECODER_OPTIONS:
        parser.add_argument(option.flag, dest=option.name, type=option.type, default=None,
                            help=f"{'/'.join(option.decoders)}: {option.help}")
    if endpoints:
        parser.add_argument("--pause", type=float, default=EndpointConfig.pause_s, metavar="S",
                            help=f"after a pen-up pause of S seconds the next stroke must continue the line (to "
                                 f"its right, near its height) or it starts a new one (default {EndpointConfig.pause_s})")
        parser.add_argument("--long-pause", type=float, default=EndpointConfig.long_pause_s, metavar="S",
                            help=f"a pen-up pause of S seconds ends the line (default {EndpointConfig.long_pause_s:g})")
        parser.add_argument("--no-line-break", action="store_true",
                            help="do not end a line when the writer starts a new one")
    if threads:
        parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")


def config_from_args(args, endpoint: Optional[EndpointConfig] = None) -> AppConfig:
    """The :class:`AppConfig` of parsed flags. ``endpoint`` overrides the endpoint flags (eval and
    bench read whole lines: :data:`runtime.recognizer.OFFLINE`). Raises ``ValueError`` with a message
    for the user on options that do not fit together."""
    decoder = DecoderConfig.of(args.decoder, **{o.name: getattr(args, o.name, None) for o in DECODER_OPTIONS})
    if endpoint is None:
        if hasattr(args, "pause"):
            if not args.pause > 0:
                raise ValueError(f"--pause must be > 0, got {args.pause}")
            if not args.long_pause > 0:
                raise ValueError(f"--long-pause must be > 0, got {args.long_pause}")
            endpoint = EndpointConfig(pause_s=args.pause, long_pause_s=args.long_pause,
                                      line_break=not args.no_line_break)
        else:
            endpoint = EndpointConfig()
    return AppConfig(model=args.model, decoder=decoder, endpoint=endpoint, threads=getattr(args, "threads", 1))

