"""`openai-ocr serve --workers 2` killed with SIGKILL: its workers stop with it, the port is free
for the next server at once, and no file holding the settings (API keys) is left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, wait_for_process_server, wait_until

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-worker-test-3f9c"


def start(upstream_url: str, port: int, tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp), "OPENAI_OCR_API_KEYS": KEY}
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url", upstream_url,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def holding_the_key(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_workers_stop_with_a_killed_server_and_leave_nothing(
        tmp_path: Path, fake_upstream: tuple[FakeUpstream, str]) -> None:
    _, upstream_url = fake_upstream
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "first.log"
    proc = start(upstream_url, port, tmp, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, proc, output=log.read_text)
        wait_until(lambda: len(re.findall(r"Started server process \[(\d+)\]", log.read_text())) == 2,
                   timeout_s=60, what="both workers to start")
        workers = [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log.read_text())]
        assert all(alive(pid) for pid in workers)
        assert not holding_the_key(tmp), "the settings, keys included, were written to a file"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in workers), timeout_s=40,
                   what="the workers to stop after their server was killed", poll_s=0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert not holding_the_key(tmp)

    again = start(upstream_url, port, tmp, tmp_path / "second.log")
    try:
        wait_for_process_server(url, again, output=(tmp_path / "second.log").read_text)
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        again.terminate()
        again.wait(timeout=60)
