"""SIGKILL in the middle of a batch, start the server again: nothing lost, nothing run twice."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
from pathlib import Path

from openai import OpenAI

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ROOT,
    ServerProcess,
    chat_line,
    free_port,
    jsonl,
    output_lines,
    serve_command,
    wait_until,
    wait_until_done,
)

LINES = 30


def server_process(upstream_url: str, store: Path, port: int, log: Path) -> ServerProcess:
    env = {**os.environ, "OPENAI_OCR_STORAGE__DIR": str(store), "PYTHONPATH": str(ROOT),
           "OPENAI_OCR_LIMITS__MAX_IN_FLIGHT": "4", "OPENAI_OCR_BATCHES__POLL_INTERVAL_S": "0.05"}
    cmd = serve_command("--upstream-url", upstream_url, "--host", "127.0.0.1", "--port", str(port))
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", log, env=env)


def marker(request: dict) -> str:
    """The line's own text ("n7"), as the engine received it."""
    return request["messages"][0]["content"][-1]["text"]


def done_in_store(store: Path) -> set[str]:
    """custom_ids whose answers the killed server had committed (read from its database)."""
    with sqlite3.connect(store / "state.sqlite3") as db:
        return {row[0] for row in db.execute(
            "SELECT custom_id FROM lines WHERE status_code IS NOT NULL")}


def test_a_killed_server_resumes_its_batch_without_losing_or_repeating_lines(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """Lines n0-n7 are answered before the kill, the others held until then."""
    killed = threading.Event()
    upstream.answer_order = lambda body: killed.is_set() or int(marker(body)[1:]) < 8
    store, port, log = tmp_path / "store", free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    sdk = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=2)
    lines = [chat_line(f"r{i}", f"n{i}") for i in range(LINES)]
    with server_process(fake_upstream[1], store, port, log) as server:
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        wait_until(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 6, 60, "six lines done")
        server.kill()  # SIGKILL: no shutdown code runs
    killed.set()
    committed = done_in_store(store)
    sent_before = len(upstream.requests)
    assert 6 <= len(committed) < LINES

    with server_process(fake_upstream[1], store, port, log):
        done = wait_until_done(sdk, batch.id)
        out = output_lines(sdk, done.output_file_id)
    assert done.status == "completed", log.read_text()
    assert (done.request_counts.total, done.request_counts.completed) == (LINES, LINES)
    ids = [line["custom_id"] for line in out]
    assert sorted(ids) == sorted(f"r{i}" for i in range(LINES))  # each exactly once
    resent = {marker(r) for r in upstream.requests[sent_before:]}
    assert not resent & {f"n{cid[1:]}" for cid in committed}  # no committed line ran again
    assert resent == {f"n{i}" for i in range(LINES)} - {f"n{cid[1:]}" for cid in committed}
    # at most the lines in flight at the kill (two slots) reached the engine twice
    sent = [marker(r) for r in upstream.requests]
    assert len(sent) - LINES <= 2, json.dumps(sent)
