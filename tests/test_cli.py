"""The inkstream command line: every subcommand answers --help."""
import subprocess
import sys

import pytest

from runtime.app.cli import SUBCOMMANDS
from conftest import REPO


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name):
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", name, "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: inkstream " + name in r.stdout


def test_no_command_prints_help_and_fails():
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "train" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["eval", "no/such/file.npz"], "no/such/file.npz: no such file or folder"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--forms", "README.md"], "--forms"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--model", "README.md"], "README.md: onnxruntime cannot load it"),
    (["eval", "README.md"], "README.md"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--writers", "nobody"], "no writer named 'nobody'"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--writers", ","], "names no writer"),
    (["eval", "tests/fixtures/runtime/unipen_lines.npz", "--limit", "0"], "no samples to evaluate"),
])
def test_eval_names_a_bad_input_in_one_line_without_a_traceback(args, message):
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.startswith("inkstream eval: ")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
