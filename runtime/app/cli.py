"""The ``inkstream`` command line.

Each subcommand lives in the module that owns its work and exposes two functions:
``configure(parser)`` adds its arguments, ``run(args) -> int`` does the job. Modules are imported
only when their subcommand runs, so the edge install (no torch) still answers ``--help`` and
``train``/``export`` say how to install what they need.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help, extra that provides its dependencies)
SUBCOMMANDS = {
    "train": ("training.train", "train the online LSTM-CTC model", "train"),
    "average": ("training.average", "average the weights of several checkpoints of one run", "train"),
    "export": ("export.onnx_export", "export a checkpoint to ONNX (+ int8 copy)", "train"),
    "eval": ("runtime.app.eval_command", "CER/WER of a model through the streaming runtime", None),
    "bench": ("runtime.app.bench", "measure the streaming runtime's speed", None),
    "recognize": ("runtime.app.recognize", "recognise live pen input from a serial tablet or a file", None),
    "emulate": ("runtime.app.emulate", "an emulated serial tablet on a pseudo-terminal", None),
    "serve": ("runtime.app.ui.server", "serve the live recognition web page", None),
    "demo": ("runtime.app.ui.demo", "the demo: emulated tablet -> recognizer -> web page", None),
    "synth": ("training.synthetic", "write synthetic handwriting samples", "train"),
    "lm": ("training.lm_command", "build the word or character language model", "train"),
    "pack": ("training.pack", "write a training data folder small enough to carry to a GPU machine", "train"),
    "fuzz": ("firmware_bridge.fuzz", "fuzz the serial protocol decoders (counts failures)", None),
}


def _load(name: str):
    module, _, extra = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if extra and exc.name and exc.name.split(".")[0] in {"torch", "onnx", "onnxscript", "tqdm", "matplotlib", "wordfreq"}:
            raise SystemExit(
                f"inkstream {name} needs the '{extra}' extra ({exc.name} is missing): "
                f"pip install 'inkstream[{extra}]'") from exc
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inkstream", description="Streaming online handwriting recognition.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text, _) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only == name:
            _load(name).configure(p)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        command = None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C in a command without its own handling: one line, no traceback
        print(f"inkstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
