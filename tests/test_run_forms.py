"""The run forms users of the old server typed: `uvicorn openai_ocr.server:app --workers N` and
`gunicorn openai_ocr.server:app -w N -k uvicorn.workers.UvicornWorker`, configured from the
environment alone, with batches and metrics working across the worker processes."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, free_port, png_bytes, require, wait_for_process_server, wait_until

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 24

RUN_FORMS = {
    "uvicorn": ["-m", "uvicorn", "openai_ocr.server:app", "--host", "127.0.0.1", "--port", "{port}",
                "--workers", "2"],
    "gunicorn": ["-m", "gunicorn", "openai_ocr.server:app", "-w", "2", "-k",
                 "uvicorn.workers.UvicornWorker", "-b", "127.0.0.1:{port}"],
}


@contextmanager
def run_form(form: str, upstream_url: str, tmp_path: Path) -> Iterator[str]:
    """The server started as `form` does it, from a clean environment of our variables."""
    if form == "gunicorn":
        require("gunicorn", "the dev extra")
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_OCR_")}
    env.update(OPENAI_OCR_UPSTREAM__URL=upstream_url, OPENAI_OCR_ENGINE__MODEL=SERVED_NAME,
               OPENAI_OCR_STORAGE__DIR=str(tmp_path / "store"), OPENAI_OCR_BATCHES__POLL_INTERVAL_S="0.2",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, *(a.format(port=port) for a in RUN_FORMS[form])],
                                cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, proc, output=log.read_text)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def requests_counted(url: str) -> float:
    """`openai_ocr_requests_total` for POST /ocr with status 200, as one scrape reports it."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("openai_ocr_requests_total{") and 'route="/ocr"' in line
               and 'status="200"' in line)


@pytest.mark.parametrize("form", sorted(RUN_FORMS))
def test_the_module_level_app_serves_with_workers(form: str, tmp_path: Path,
                                                  upstream: FakeUpstream,
                                                  fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.default_reply = "worker text"
    with run_form(form, fake_upstream[1], tmp_path) as url:
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["engine"] == "upstream" and health["model"] == SERVED_NAME

        body = {"image_base64": b64(png_bytes()), "mode": "free_ocr"}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{url}/ocr", json=body, timeout=60),
                                    range(REQUESTS)))
        assert [a.status_code for a in answers] == [200] * REQUESTS
        assert {a.json()["text"] for a in answers} == {"worker text"}
        # every scrape, whichever worker answers it, counts the requests of both workers
        assert [requests_counted(url) for _ in range(6)] == [REQUESTS] * 6

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        lines = [json.dumps({"custom_id": f"line-{n}", "method": "POST", "url": "/ocr", "body": body})
                 for n in range(6)]
        batch_input = client.files.create(file=("in.jsonl", io.BytesIO("\n".join(lines).encode())),
                                          purpose="batch")
        batch = client.batches.create(input_file_id=batch_input.id, endpoint="/ocr",  # type: ignore[arg-type]
                                      completion_window="24h")
        wait_until(lambda: client.batches.retrieve(batch.id).status == "completed", timeout_s=60,
                   what="the batch to complete", poll_s=0.2)
        done = client.batches.retrieve(batch.id)
        assert done.output_file_id is not None
        output = [json.loads(raw) for raw in client.files.content(done.output_file_id).text.splitlines()]
        assert sorted(line["custom_id"] for line in output) == sorted(f"line-{n}" for n in range(6))
        assert {line["response"]["body"]["text"] for line in output} == {"worker text"}
