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


SKIPPING = '''import pytest


def test_passes():
    pass


def test_skips():
    pytest.skip("a part that is not there")
'''


@pytest.mark.parametrize("ci, code", [("", 0), ("true", 1)])
def test_under_ci_any_skip_fails_the_run(tmp_path: Path, ci: str, code: int) -> None:
    """The plugin tests/conftest.py installs for every run (main, engine, cluster): a plain
    pytest.skip, which no `require()` guards, turns a passing CI run red and is listed."""
    path = tmp_path / "test_skipping.py"
    path.write_text(SKIPPING)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.skip_policy", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)})
    assert "1 passed, 1 skipped" in done.stdout and done.returncode == code, done.stdout[-2000:]
    assert ("test_skipping.py::test_skips: Skipped: a part that is not there" in done.stdout) == bool(ci)


def test_every_run_loads_the_skip_policy(request: pytest.FixtureRequest) -> None:
    """tests/conftest.py installed it here; the engine and cluster runs load the same conftest
    (it is their rootdir conftest: pytest loads every conftest from the rootdir down)."""
    from tests import skip_policy

    assert request.config.pluginmanager.has_plugin(skip_policy.NAME)
