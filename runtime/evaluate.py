"""``inkstream eval``: CER and WER of a model, measured through the streaming runtime.

Every sample goes through the same path as on the device: an :class:`InkStream` is fed pen
samples in bursts of ``--burst`` (default 2, what a serial reader at 200 Hz hands over every
10 ms), and the recognizer decodes after every burst; at the end ``input_finished`` and a last
decode. ``--burst 0`` feeds each sample whole (the offline path; the final text is the same).

By default a sample is one line of text, so the endpoint rule is off. With ``--endpoints`` the
device's rule is applied: when a line ends the stream is reset and the lines are joined by a space.

CER is character edit distance / reference characters; WER the same over space-separated words
(both fractions). Throughput is pen samples per second of processing (features, model, decoder)
and the real-time factor is processing time / ink duration.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional

import numpy as np

from runtime.live import setup_error_message
from runtime.metrics import ErrorCounter
from runtime.recognizer import DEFAULT_DECODER, EndpointConfig, StreamingRecognizer

NO_ENDPOINTS = EndpointConfig(pause_s=1e9, line_break=False)


def recognize_streaming(rec: StreamingRecognizer, points: np.ndarray, burst: int = 2) -> str:
    """Text of one sample fed in bursts of ``burst`` pen samples, decoding after each (0 = whole).

    Lines cut by the recognizer's endpoint rule are joined with a space.
    """
    stream = rec.create_stream()
    lines = []
    step = len(points) if burst <= 0 else burst
    for start in range(0, len(points), max(step, 1)):
        stream.accept_samples(points[start:start + step])
        rec.decode_stream(stream)
        while rec.is_endpoint(stream):  # a chunk may hold several line breaks
            lines.append(rec.get_result(stream).text)
            rec.reset(stream)
            rec.decode_stream(stream)
    stream.input_finished()
    rec.decode_stream(stream)
    lines.append(rec.get_result(stream).text)
    return " ".join(t for t in lines if t)


def evaluate(rec: StreamingRecognizer, datasets, burst: int = 2, limit: Optional[int] = None, forms=None,
             split: Optional[str] = None, writers=None, on_sample=None) -> dict:
    """Run every sample of ``datasets`` (paths) through ``rec``; returns the figures as a dict.

    Every data set is opened and its filters checked before the first sample is evaluated, so a
    bad one fails at once, not after the others have run."""
    from runtime.ink_io import iter_corpus_samples  # the readers load only when evaluating

    sources = [iter_corpus_samples(path, forms=forms, split=split, writers=writers) for path in datasets]
    counter = ErrorCounter()
    pen_samples = 0
    ink_seconds = 0.0
    busy = 0.0
    for samples in sources:
        for n, (points, text, sample_id) in enumerate(samples):
            if limit is not None and n >= limit:
                break
            points = np.ascontiguousarray(points, dtype=np.float64)
            t0 = time.perf_counter()
            hyp = recognize_streaming(rec, points, burst)
            busy += time.perf_counter() - t0
            counter.add(text, hyp)
            pen_samples += len(points)
            ink_seconds += float(points[-1, 2] - points[0, 2]) if len(points) else 0.0
            if on_sample is not None:
                on_sample(sample_id, text, hyp)
    return {
        "cer": counter.cer, "wer": counter.wer, "samples": counter.samples, "chars": counter.chars,
        "words": counter.words, "char_errors": counter.char_errors, "word_errors": counter.word_errors,
        "pen_samples": pen_samples, "seconds": busy,
        "samples_per_s": pen_samples / busy if busy > 0 else None,
        "rtf": busy / ink_seconds if ink_seconds > 0 else None,
    }


def add_decoder_arguments(parser: argparse.ArgumentParser) -> None:
    """Decoder options shared by ``eval`` and other commands (map one to one onto the decoders)."""
    parser.add_argument("--decoder", choices=("greedy", "beam"), default=DEFAULT_DECODER,
                        help=f"CTC decoder (default: {DEFAULT_DECODER}, the prefix beam search with the character LM)")
    parser.add_argument("--beam-width", type=int, default=None, help="beam: hypotheses kept per frame")
    parser.add_argument("--lm-weight", type=float, default=None, help="beam: scale of the character LM (0 = none)")
    parser.add_argument("--insertion-bonus", type=float, default=None, help="beam: bonus per character")
    parser.add_argument("--lm", default=None, help="beam: character LM file (default: the shipped one)")
    parser.add_argument("--lexicon", default=None, help="beam: word list file; in-lexicon words get a bonus")
    parser.add_argument("--lexicon-bonus", type=float, default=None, help="beam: bonus per in-lexicon word")


PROG = "inkstream eval"


def decoder_options(args) -> dict:
    """The beam options given on the command line (unset ones keep the decoder's defaults)."""
    if args.decoder != "beam":
        given = [k for k in ("beam_width", "lm_weight", "insertion_bonus", "lm", "lexicon", "lexicon_bonus")
                 if getattr(args, k) is not None]
        if given:
            raise SystemExit(f"--{given[0].replace('_', '-')} only applies to --decoder beam")
        return {}
    names = {"beam_width": "beam_width", "lm_weight": "lm_weight", "insertion_bonus": "insertion_bonus",
             "lm": "lm_path", "lexicon": "lexicon", "lexicon_bonus": "lexicon_bonus"}
    return {opt: getattr(args, arg) for arg, opt in names.items() if getattr(args, arg) is not None}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="+", metavar="DATA", help="corpus .npz file(s) or IAM-OnDB root folder(s)")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    add_decoder_arguments(parser)
    parser.add_argument("--forms", default=None, help="IAM-OnDB split list (form ids) to evaluate")
    parser.add_argument("--split", default=None, help="only this split of npz files that carry a split array (e.g. val)")
    parser.add_argument("--writers", default=None,
                        help="only these writers, comma-separated (e.g. held-out writers of a corpus)")
    parser.add_argument("--limit", type=int, default=None, help="at most N samples per DATA")
    parser.add_argument("--burst", type=int, default=2, help="pen samples per accept/decode call (0 = whole sample)")
    parser.add_argument("--endpoints", action="store_true", help="apply the endpoint rule (cut lines, join by space)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--verbose", "-v", action="store_true", help="print reference and hypothesis per sample")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def run(args) -> int:
    endpoint = EndpointConfig() if args.endpoints else NO_ENDPOINTS
    def show(sample_id, ref, hyp):
        print(f"{sample_id}\n  ref: {ref}\n  hyp: {hyp}")

    try:
        rec = StreamingRecognizer(args.model, decoder=args.decoder, endpoint=endpoint, threads=args.threads,
                                  decoder_options=decoder_options(args))
        writers = None if args.writers is None else [w.strip() for w in args.writers.split(",") if w.strip()]
        if writers is not None and not writers:
            raise ValueError(f"--writers {args.writers!r} names no writer")
        res = evaluate(rec, args.data, burst=args.burst, limit=args.limit, forms=args.forms, split=args.split,
                       writers=writers, on_sample=show if args.verbose else None)
    except (OSError, ValueError) as exc:  # a bad model, data file or option: InkFormatError, ModelFileError
        print(f"{PROG}: {setup_error_message(exc)}", file=sys.stderr)
        return 2
    if not res["samples"]:  # a CER over nothing would read as a perfect score
        print(f"{PROG}: no samples to evaluate in {', '.join(map(str, args.data))} with these filters", file=sys.stderr)
        return 2
    res.update(model=rec.model.path, decoder=args.decoder, decoder_options=decoder_options(args),
               burst=args.burst, data=[str(d) for d in args.data])
    feed = "whole sample per call" if args.burst <= 0 else f"bursts of {args.burst} pen samples, decode after each"
    print(f"model {res['model']}  decoder {args.decoder}  feed: {feed}")
    print(f"samples {res['samples']}  chars {res['chars']}  words {res['words']}  pen samples {res['pen_samples']}")
    print(f"CER {res['cer']:.4f}  WER {res['wer']:.4f}")
    if res["samples_per_s"]:
        rtf = f"{res['rtf']:.4f}" if res["rtf"] is not None else "n/a (no time stamps)"
        print(f"throughput {res['samples_per_s']:.0f} pen samples/s  real-time factor {rtf}")
    if args.json:
        print(json.dumps(res))
    return 0
