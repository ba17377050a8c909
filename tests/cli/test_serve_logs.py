"""`openai-ocr serve --workers 2` logs one access line of ours per request, and its start-up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import free_port, png_bytes, wait_for_process_server

ROOT = Path(__file__).resolve().parents[2]


def test_two_workers_keep_our_log_lines_and_uvicorn_access_lines_are_off(
        tmp_path: Path, fake_upstream: tuple[FakeUpstream, str]) -> None:
    _, upstream_url = fake_upstream
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url", upstream_url,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, proc, output=log.read_text)
        r = httpx.post(f"{url}/ocr/file", files={"file": ("p.png", png_bytes())},
                       headers={"X-Request-ID": "log-me-once"}, timeout=60)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while "log-me-once" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    lines = log.read_text().splitlines()
    mine = [line for line in lines if "log-me-once" in line]
    assert len(mine) == 1, lines
    access = json.loads(mine[0].split("openai_ocr.access: ", 1)[1])
    assert access["path"] == "/ocr/file" and access["status"] == 200
    assert not [line for line in lines if '"POST /ocr/file HTTP/1.1"' in line], "uvicorn's access line"
    started = [line for line in lines if "with the upstream engine" in line]
    assert len(started) == 2, lines  # one per worker
