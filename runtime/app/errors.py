"""User-facing errors of the command line: one line on stderr, exit status 2.

A bad model, data file, spec or option raises ``OSError`` or ``ValueError`` (``InkFormatError`` and
``ModelFileError`` are ``ValueError``\\ s) below this layer; the commands catch exactly these
(:data:`USER_ERRORS`) and report them with :func:`fail`, never as a traceback.
"""
from __future__ import annotations

import sys

__all__ = ["USER_ERRORS", "user_message", "fail"]

USER_ERRORS = (OSError, ValueError)
EXIT_USAGE = 2


def user_message(exc: BaseException) -> str:
    """``exc`` as one line for a user (a bare ``FileNotFoundError`` from the ink readers only
    names the path; the model and LM readers say it themselves)."""
    if isinstance(exc, FileNotFoundError) and not exc.strerror and "does not exist" not in str(exc):
        return f"{exc}: no such file or folder"
    return " ".join(str(exc).split()) or type(exc).__name__


def fail(prog: str, problem) -> int:
    """Print ``prog: problem`` (an exception or a message) on stderr; returns the exit status 2."""
    text = user_message(problem) if isinstance(problem, BaseException) else str(problem)
    print(f"{prog}: {text}", file=sys.stderr, flush=True)
    return EXIT_USAGE
