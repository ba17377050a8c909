"""The store behind the Files and Batch API, through real servers: one quota for two server
processes sharing a folder, nothing half-written left by a killed writer, a damaged database
reported by `/ready` and answered with JSON 503s (interactive OCR going on), and stored
documents longer than the per-request page cap.
"""

from __future__ import annotations

import io
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ROOT,
    ServerProcess,
    b64,
    blank_pdf,
    free_port,
    openai_client,
    png_bytes,
    serve_command,
    store_gateway,
    wait_until,
)
from tests.store_helpers import bodies_on_disk, damaged_page, writer

OLD_PART = "file-0123456789abcdef01234567.part"
"""A partial upload as older versions left it: a .part file and no row."""


def server_process(upstream_url: str, store: Path, quota: int, log: Path) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_OCR_STORAGE__DIR": str(store),
           "OPENAI_OCR_STORAGE__QUOTA_BYTES": str(quota)}
    cmd = serve_command("--upstream-url", upstream_url, "--host", "127.0.0.1", "--port", str(port))
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", log, env=env)


def test_two_server_processes_on_one_folder_keep_one_quota(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """12 concurrent uploads of 100 kB, to two servers sharing a 1 MB store: exactly 10 are
    stored and 2 refused (507). The reservation lives in the shared database, so the two
    processes cannot both take the last room (before, each checked and then wrote: the audit
    stored 1.19 MB)."""
    quota, size, uploads = 1_000_000, 100_000, 12
    store = tmp_path / "store"
    servers = [server_process(fake_upstream[1], store, quota, tmp_path / f"server{i}.log") for i in range(2)]
    with servers[0], servers[1]:
        clients = [openai_client(server.url) for server in servers]

        def upload(i: int) -> int:
            try:
                clients[i % 2].files.create(file=(f"f{i}.jsonl", io.BytesIO(b"x" * size)), purpose="batch")
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

        with ThreadPoolExecutor(uploads) as pool:
            codes = sorted(pool.map(upload, range(uploads)))
        listed = [sum(f.bytes for f in client.files.list()) for client in clients]
    assert codes == [200] * 10 + [507] * 2, servers[0].log() + servers[1].log()
    assert listed == [10 * size, 10 * size]
    assert bodies_on_disk(store) == 10 * size


def test_what_a_killed_writer_left_is_gone_after_a_restart(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """A process SIGKILLed while it wrote a 600 kB upload, and a .part an older version left:
    the next server start removes both, and their room is free again (before, the 30 MB .part
    of the audit stayed forever, seen by no restart, sweep or quota)."""
    store, quota = tmp_path / "store", 1_000_000
    with store_gateway(fake_upstream[1], store, storage={"quota_bytes": quota}) as url:
        kept = openai_client(url).files.create(file=("kept.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    proc = writer(store, 600_000, quota, "die")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (store / "files" / OLD_PART).write_bytes(b"x" * 300_000)
    assert len(list((store / "files").glob("*.part"))) == 2
    with store_gateway(fake_upstream[1], store, storage={"quota_bytes": quota}) as url:
        assert sorted(p.name for p in (store / "files").iterdir()) == [kept.id]
        sdk = openai_client(url)
        rest = sdk.files.create(file=("rest.jsonl", io.BytesIO(b"x" * (quota - kept.bytes))), purpose="batch")
        assert {f.id for f in sdk.files.list()} == {kept.id, rest.id}


def test_a_write_in_progress_counts_until_its_writer_dies(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """Another process holds a 700 kB write open in the server's store: an upload that would
    need that room is refused (507) while the writer lives; once it is killed, the server's
    sweep gives the room back."""
    store, quota = tmp_path / "store", 1_000_000
    (store / "files").mkdir(parents=True)
    proc = writer(store, 700_000, quota, "hold")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        with store_gateway(fake_upstream[1], store, storage={"quota_bytes": quota,
                                                            "sweep_interval_s": 0.1}) as url:
            sdk = openai_client(url)
            with pytest.raises(openai.APIStatusError) as full:
                sdk.files.create(file=("a.jsonl", io.BytesIO(b"x" * 400_000)), purpose="batch")
            assert full.value.status_code == 507
            proc.kill()
            proc.wait(timeout=30)
            wait_until(lambda: not list((store / "files").glob("*.part")), 30,
                       "the sweep removing the dead writer's partial body")
            assert sdk.files.create(file=("a.jsonl", io.BytesIO(b"x" * 400_000)), purpose="batch").bytes == 400_000
    finally:
        proc.kill()
        proc.wait(timeout=30)


def damage(store: Path, how: str) -> None:
    db_path = store / "state.sqlite3"
    if how == "page":
        damaged_page(db_path)
        return
    for path in (db_path, store / "state.sqlite3-wal", store / "state.sqlite3-shm"):
        path.unlink(missing_ok=True)
    db_path.write_bytes(b"")


def assert_store_routes_answer_503(url: str) -> None:
    for method, path, body in (("GET", "/v1/files", None), ("GET", "/v1/files/file-x", None),
                               ("GET", "/v1/batches", None),
                               ("POST", "/v1/batches", {"input_file_id": "file-x",
                                                        "endpoint": "/v1/chat/completions"})):
        answer = httpx.request(method, f"{url}{path}", json=body, timeout=30)
        assert answer.status_code == 503, (path, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "service_unavailable" and "state.sqlite3" in error["message"], error
    upload = httpx.post(f"{url}/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"},
                        timeout=30)
    assert upload.status_code == 503 and "state.sqlite3" in upload.json()["error"]["message"]


@pytest.mark.parametrize("how", ["empty", "page"])
def test_a_damaged_database_makes_the_server_not_ready_and_the_store_routes_503(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path, how: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """`state.sqlite3` truncated to 0 bytes (stored files remain) or one of its pages
    overwritten: the server starts, `/ready` answers 503 naming the database, the Files and
    Batch routes a JSON 503, and interactive OCR goes on. Before: an empty store that
    orphaned the uploads, or `/ready` 200 in front of 500s."""
    store = tmp_path / "store"
    with store_gateway(fake_upstream[1], store) as url:
        stored = openai_client(url).files.create(file=("p.png", io.BytesIO(png_bytes())), purpose="user")
    damage(store, how)
    with caplog.at_level(logging.ERROR, logger="openai_ocr.storage.store"), \
            store_gateway(fake_upstream[1], store) as url:
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["storage"]["ok"] is False and "state.sqlite3" in ready.json()["storage"]["detail"]
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # the engine serves
        assert_store_routes_answer_503(url)
        ocr = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=60)
        assert ocr.status_code == 200, ocr.text
    assert any(str(store / "state.sqlite3") in r.getMessage() for r in caplog.records), caplog.text
    assert (store / "files" / stored.id).exists()  # nothing deleted


def test_corruption_found_while_serving_is_a_503_not_a_500(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with store_gateway(fake_upstream[1], store) as url:
        sdk = openai_client(url)
        sdk.files.create(file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        damaged_page(store / "state.sqlite3")
        listed = httpx.get(f"{url}/v1/files", timeout=30)
        assert listed.status_code == 503, listed.text
        assert "damaged" in listed.json()["error"]["message"]
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 503
        assert_store_routes_answer_503(url)
        assert httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=60).status_code == 200


def test_a_document_longer_than_the_page_cap_is_stored_and_read_in_parts(batch_gateway: str,
                                                                         upstream: FakeUpstream) -> None:
    """`limits.max_pages` (1000) bounds the pages a request reads, not the pages an upload
    holds: a 1001-page PDF is stored (one page probed), and requests pick their pages."""
    sdk = openai_client(batch_gateway)
    stored = sdk.files.create(file=("long.pdf", io.BytesIO(blank_pdf(1001))), purpose="user")
    parts = httpx.post(f"{batch_gateway}/ocr", json={"file_id": stored.id, "pages": "1,500,1001"}, timeout=60)
    assert parts.status_code == 200, parts.text
    assert parts.json()["page_count"] == 3
    whole = httpx.post(f"{batch_gateway}/ocr", json={"file_id": stored.id}, timeout=60)
    assert whole.status_code == 413 and whole.json()["error"]["param"] == "pages"
    with pytest.raises(openai.BadRequestError):  # what no request could read is still refused
        sdk.files.create(file=("broken.pdf", io.BytesIO(b"%PDF-1.7\n" + b"\x00" * 400)), purpose="user")
