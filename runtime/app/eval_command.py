"""``inkstream eval``: CER and WER of a model on corpus files, through the streaming runtime.

The measuring is :func:`runtime.evaluate.evaluate`; this module is its command line.
"""
from __future__ import annotations

import argparse
import json
import sys

from runtime.app.config import add_recognizer_arguments, config_from_args
from runtime.app.errors import USER_ERRORS, fail
from runtime.evaluate import SUSPECT_TIME_STEP_S, evaluate, evaluate_paragraphs
from runtime.recognizer import OFFLINE, EndpointConfig

__all__ = ["configure", "run"]

PROG = "inkstream eval"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="+", metavar="DATA",
                        help="corpus .npz file(s), IAM-OnDB root folder(s) or ink files (.inkml, IAM-OnDB .xml)")
    add_recognizer_arguments(parser, endpoints=False)
    parser.add_argument("--forms", default=None, help="IAM-OnDB split list (form ids) to evaluate")
    parser.add_argument("--split", default=None, help="only this split of npz files that carry a split array (e.g. val)")
    parser.add_argument("--writers", default=None,
                        help="only these writers, comma-separated (e.g. held-out writers of a corpus)")
    parser.add_argument("--limit", type=int, default=None, help="at most N samples per DATA")
    parser.add_argument("--burst", type=int, default=2, help="pen samples per accept/decode call (0 = whole sample)")
    parser.add_argument("--endpoints", action=argparse.BooleanOptionalAction, default=None,
                        help="cut every sample into lines by the device's endpoint rules (joined by a space); "
                             "--no-endpoints: none. Default: only samples that may wrap over several written "
                             "lines (kind text, or not said: InkML), not one line, word or character")
    parser.add_argument("--paragraphs", action="store_true",
                        help="instead: write each form's lines one after the other (IAM-OnDB npz) and report how "
                             "the endpoint rules cut them into lines")
    parser.add_argument("--line-gap", type=float, default=2.0, metavar="S",
                        help="with --paragraphs: seconds between one line's end and the next one's start (default 2)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print reference and hypothesis per sample")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")


def run(args) -> int:
    def show(sample_id, ref, hyp):
        print(f"{sample_id}\n  ref: {ref}\n  hyp: {hyp}")

    if args.paragraphs:
        return _run_paragraphs(args)
    try:
        config = config_from_args(args, endpoint=OFFLINE)
        rec = config.build_recognizer()
        writers = None if args.writers is None else [w.strip() for w in args.writers.split(",") if w.strip()]
        if writers is not None and not writers:
            raise ValueError(f"--writers {args.writers!r} names no writer")
        res = evaluate(rec, args.data, burst=args.burst, limit=args.limit, forms=args.forms, split=args.split,
                       writers=writers, on_sample=show if args.verbose else None,
                       endpoints="auto" if args.endpoints is None else args.endpoints)
    except USER_ERRORS as exc:  # a bad model, data file or option: InkFormatError, ModelFileError
        return fail(PROG, exc)
    if not res["samples"]:  # a CER over nothing would read as a perfect score
        return fail(PROG, f"no samples to evaluate in {', '.join(map(str, args.data))} with these filters")
    res.update(model=rec.model.path, decoder=config.decoder.name, decoder_options=config.decoder.kwargs(),
               burst=args.burst, data=[str(d) for d in args.data])
    feed = "whole sample per call" if args.burst <= 0 else f"bursts of {args.burst} pen samples, decode after each"
    print(f"model {res['model']}  decoder {config.decoder.name}  feed: {feed}")
    print(f"samples {res['samples']}  chars {res['chars']}  words {res['words']}  pen samples {res['pen_samples']}")
    rules = {None: "by kind", True: "--endpoints", False: "--no-endpoints"}[args.endpoints]
    print(f"lines: {res['samples_with_rules']} samples read with the endpoint rules ({rules}), "
          f"{res['samples_cut']} of them cut into several lines")
    if res["samples_time_suspect"]:
        print(f"{PROG}: warning: {res['samples_time_suspect']} samples read with the endpoint rules have a median "
              f"step between time stamps over {SUSPECT_TIME_STEP_S} s: the time column looks like another unit than "
              f"seconds (milliseconds?), so pauses look long and lines are cut too often; convert it, or "
              f"--no-endpoints", file=sys.stderr)
    print(f"CER {res['cer']:.4f}  WER {res['wer']:.4f}  (punctuation set apart on both sides: "
          f"CER {res['cer_apart']:.4f}  WER {res['wer_apart']:.4f})")
    if res["samples_per_s"]:
        rtf = f"{res['rtf']:.4f}" if res["rtf"] is not None else "n/a (no time stamps)"
        print(f"throughput {res['samples_per_s']:.0f} pen samples/s  real-time factor {rtf}")
    if args.json:
        print(json.dumps(res))
    return 0


def _run_paragraphs(args) -> int:
    unused = [flag for flag, value in (("--split", args.split), ("--writers", args.writers), ("--forms", args.forms),
                                       ("--endpoints" if args.endpoints else "--no-endpoints", args.endpoints is not None))
              if value]
    if unused:
        return fail(PROG, f"{unused[0]} does not apply with --paragraphs (forms are whole files' writers)")
    try:
        config = config_from_args(args, endpoint=EndpointConfig())
        rec = config.build_recognizer()
        results = [evaluate_paragraphs(rec, path, line_gap_s=args.line_gap, burst=args.burst, limit=args.limit)
                   for path in args.data]
    except USER_ERRORS as exc:
        return fail(PROG, exc)
    empty = [str(path) for path, res in zip(args.data, results) if not res["lines"]]
    if empty:  # a share of nothing would read as a perfect score
        return fail(PROG, f"no lines to write in {', '.join(empty)} with these options")
    for path, res in zip(args.data, results):
        print(f"{path}: {res['forms']} forms, {res['lines']} lines written {args.line_gap:g} s apart; cut exactly "
              f"{res['lines_exact']} ({100 * (res['lines_exact_share'] or 0):.1f} %); boundaries found "
              f"{res['boundaries_found']} of {res['boundaries']}, extra cuts {res['extra_cuts']}; CER {res['cer']:.4f}")
    if args.json:
        print(json.dumps(results))
    return 0
