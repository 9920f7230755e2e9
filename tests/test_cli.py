"""The inkstream command line: every subcommand answers --help."""
import subprocess
import sys

import pytest

from runtime.cli import SUBCOMMANDS
from conftest import REPO


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name):
    r = subprocess.run([sys.executable, "-m", "runtime.cli", name, "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: inkstream " + name in r.stdout


def test_no_command_prints_help_and_fails():
    r = subprocess.run([sys.executable, "-m", "runtime.cli"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "train" in r.stdout
