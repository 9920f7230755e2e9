"""Shared test helpers: where the fixtures and the team's shared data live."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


def need_shared(*parts) -> Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the team's shared data at {p} (absent on this machine)")
    return p
