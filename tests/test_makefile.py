"""`make serve`: installs only when pyproject.toml changed, and stops quietly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, make_env, wait_for_process_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def venv(tmp_path: Path) -> Path:
    """A stand-in for .venv whose `openai-ocr` runs this checkout's code."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    script = bin_dir / "openai-ocr"
    script.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m openai_ocr.cli.main "$@"\n')
    script.chmod(0o755)
    return tmp_path / "venv"


def dry_run(venv: Path) -> str:
    done = subprocess.run(["make", "-n", "serve", f"VENV={venv}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=make_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_serve_installs_only_when_pyproject_changed(venv: Path) -> None:
    assert "pip --disable-pip-version-check install" in dry_run(venv)  # never installed
    (venv / ".installed-serve").touch()
    again = dry_run(venv)
    assert "pip" not in again and again.strip() == f"exec {venv}/bin/openai-ocr serve"
    os.utime(venv / ".installed-serve", (0, 0))  # older than pyproject.toml: reinstall
    assert "pip --disable-pip-version-check install" in dry_run(venv)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_serve_stops_quietly(venv: Path, tmp_path: Path, fake_upstream: tuple[FakeUpstream, str],
                             how: str) -> None:
    (venv / ".installed-serve").touch()
    port = free_port()
    log = tmp_path / "make.log"
    with log.open("w") as sink:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "serve", f"VENV={venv}",
             f"ARGS=--upstream-url {fake_upstream[1]} --host 127.0.0.1 --port {port}"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_process_server(f"http://127.0.0.1:{port}", make, path="/live", output=log.read_text)
        if how == "ctrl-c":  # the terminal signals the whole foreground group
            os.killpg(make.pid, signal.SIGINT)
        else:  # a service manager stops the server
            server = subprocess.run(["pgrep", "-P", str(make.pid)], capture_output=True, text=True)
            os.kill(int(server.stdout.split()[0]), signal.SIGTERM)
        code = make.wait(timeout=60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    output = log.read_text()
    assert "make: ***" not in output and "Traceback" not in output, output
    assert "Terminated" not in output and "KeyboardInterrupt" not in output, output
    if how == "sigterm":
        assert code == 0, output


def fake_venv(root: Path, failing: tuple[str, ...] = ()) -> Path:
    """A stand-in environment, installed (its stamps newer than pyproject.toml), whose
    programs log their arguments to `calls` and exit 0, or 1 for those in `failing`."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "ruff", "mypy"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {root}/calls\nexit {int(name in failing)}\n')
        (bin_dir / name).chmod(0o755)
    for stamp in (".installed-serve", ".installed-dev", ".installed-engine-cpu"):
        (root / stamp).touch()
    return root


@pytest.mark.parametrize("target, stamp", [("lint", ".installed-dev"), ("test-engine", ".installed-engine-cpu")])
def test_lint_and_engine_env_install_only_when_pyproject_changed(tmp_path: Path, target: str, stamp: str) -> None:
    venv = fake_venv(tmp_path / "venv")

    def dry() -> str:
        done = subprocess.run(["make", "-n", target, f"VENV={venv}", f"ENGINE_VENV={venv}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, env=make_env())
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "pip" not in dry()  # installed: straight to the checks
    os.utime(venv / stamp, (0, 0))  # older than pyproject.toml: reinstall
    assert "pip --disable-pip-version-check install" in dry()
    (venv / stamp).unlink()  # never installed
    assert "pip --disable-pip-version-check install" in dry()


def test_make_test_runs_every_stage_when_one_fails_and_fails_at_the_end(tmp_path: Path) -> None:
    """ruff fails: the main suite, the engine tests and the cluster still run, and make test
    exits non-zero."""
    main, engine = fake_venv(tmp_path / "main", failing=("ruff",)), fake_venv(tmp_path / "engine")
    done = subprocess.run(["make", "test", f"VENV={main}", f"ENGINE_VENV={engine}", "APT=true",
                           "PYTEST_ARGS=-q"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=make_env())
    assert done.returncode != 0, done.stdout
    assert "ruff check ." in (main / "calls").read_text()
    assert "python -m pytest --ignore=tests/vllm_plugin --ignore=tests/cluster -q" in (main / "calls").read_text()
    assert (engine / "calls").read_text().splitlines() == ["python -m pytest tests/vllm_plugin -q",
                                                           "python -m pytest tests/cluster -q"]
