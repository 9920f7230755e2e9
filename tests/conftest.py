"""Shared test helpers: where the fixtures and the team's shared data live; reading a pen source."""
import queue
import signal
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a subprocess a test stops with SIGINT: a runner started in the
    background of a shell ignores SIGINT and its children inherit that, so Python would install no
    KeyboardInterrupt; Ctrl-C in a terminal is never ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def need_shared(*parts) -> Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the team's shared data at {p} (absent on this machine)")
    return p


def collect_samples(source, until, timeout: float = 15.0):
    """Samples read from ``source`` until ``until(samples)`` holds or ``timeout`` seconds pass."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got) and time.monotonic() < deadline:
        got += source.read(timeout=0.1)
    return got


def wait_event(source, state: str, timeout: float = 15.0):
    """The first event of ``source`` in ``state``; fails naming the states seen after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            event = source.events.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(event.state)
        if event.state == state:
            return event
    pytest.fail(f"no '{state}' event within {timeout} s (saw {seen})")
