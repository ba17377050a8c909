"""A missing required part skips on a developer machine and fails the run under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = '''from tests.helpers import require, require_program

require("no_such_module_4f2a", "a test of the guard")


def test_never_runs():
    pass


def test_program():
    require_program("no-such-program-4f2a")
'''


@pytest.mark.parametrize("ci, outcome, code", [
    ("", "1 skipped", 5),  # the module is skipped: no test ran (pytest's exit code 5)
    ("true", "1 error", 2),  # a collection error: the run fails
])
def test_a_missing_module(tmp_path: Path, ci: str, outcome: str, code: int) -> None:
    path = tmp_path / "test_guarded.py"
    path.write_text(MODULE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)})
    assert outcome in done.stdout, done.stdout[-2000:]
    assert done.returncode == code, done.stdout[-2000:]
    assert "no_such_module_4f2a" in done.stdout


@pytest.mark.parametrize("ci, outcome, code", [("", "1 skipped", 0), ("true", "1 failed", 1)])
def test_a_missing_program(tmp_path: Path, ci: str, outcome: str, code: int) -> None:
    path = tmp_path / "test_guarded.py"
    path.write_text(MODULE.replace('require("no_such_module_4f2a", "a test of the guard")', ""))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "program",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)})
    assert outcome in done.stdout and done.returncode == code, done.stdout[-2000:]
