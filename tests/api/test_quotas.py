"""Quotas per API key from a keys file: pages per UTC day (kept across a restart, as the
usage is), requests at once, and Batch API lines that wait for their owner's quota to reset
rather than fail; 429s with a JSON body and `Retry-After` at the window's end."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from openai_ocr.metrics import metrics_for
from openai_ocr.ocr.models import Usage
from openai_ocr.runtime import runtime_of
from openai_ocr.service.keys import KeyRing, KeysFileError, key_id, read_keys_file
from openai_ocr.service.quotas import next_midnight, next_month
from openai_ocr.service.usage import UsageMeter, UsageRecorder
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    b64,
    chat_line,
    gateway_settings,
    jsonl,
    metric,
    openai_client,
    output_lines,
    png_bytes,
    serve,
    wait_until,
    wait_until_done,
)

KEY_A, KEY_B = "quota-key-a-0123456789", "quota-key-b-0123456789"
ID_A, ID_B = key_id(KEY_A), key_id(KEY_B)
ENV_B = "OPENAI_OCR_TEST_QUOTA_KEY_B"
DAY_PAGES = 3


def keys_file(path: Path, a: str = "", b: str = "") -> Path:
    """Key A by its SHA-256, key B (an admin) by an environment variable; extra TOML lines each."""
    path.write_text(f"""
[[keys]]
name = "team-a"
sha256 = "{hashlib.sha256(KEY_A.encode()).hexdigest()}"
{a}

[[keys]]
name = "ops"
env = "{ENV_B}"
admin = true
{b}
""")
    return path


@contextmanager
def keyed_gateway(upstream_url: str, store: Path, keys: Path, **quotas: Any) -> Iterator[tuple[str, FastAPI]]:
    settings = gateway_settings(upstream_url, storage={"dir": str(store)}, batches={"poll_interval_s": 0.05},
                                auth={"keys_file": str(keys)}, quotas=quotas)
    with serve(settings) as served:
        yield served


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ocr(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/ocr", headers=auth(key), json={"image_base64": b64(png_bytes())}, timeout=60)


def read_page(url: str, app: FastAPI, key: str, route: str = "/ocr") -> None:
    """One page read with `key`, and counted (the count is made as the answer ends)."""
    before = metric(app, "openai_ocr_key_pages_total", {"key_id": key_id(key), "route": route})
    r = ocr(url, key)
    assert r.status_code == 200, r.text
    wait_until(lambda: metric(app, "openai_ocr_key_pages_total",
                              {"key_id": key_id(key), "route": route}) == before + 1, 30, "the page counted")


def assert_day_quota_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == 429
    assert "pages_per_day" in error["message"] and "team-a" in error["message"]
    now = dt.datetime.now(dt.UTC)
    midnight = next_midnight(now)
    assert midnight.isoformat().replace("+00:00", "Z") in error["message"]
    assert abs(int(r.headers["Retry-After"]) - (midnight - now).total_seconds()) <= 5


@pytest.fixture()
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_B, KEY_B)


@pytest.mark.usefixtures("env_key")
def test_a_day_quota_holds_per_key_and_across_a_restart(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    keys = keys_file(tmp_path / "keys.toml", a=f"pages_per_day = {DAY_PAGES}")
    store = tmp_path / "store"
    with keyed_gateway(fake_upstream[1], store, keys) as (url, app):
        for _ in range(DAY_PAGES):
            read_page(url, app, KEY_A)
        assert_day_quota_429(ocr(url, KEY_A))
        refused = httpx.post(f"{url}/v1/chat/completions", headers=auth(KEY_A), timeout=30, json={
            "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        read_page(url, app, KEY_B)  # the other key is not affected
        # the Files, usage and monitoring routes are not OCR: no quota there
        assert httpx.get(f"{url}/v1/files", headers=auth(KEY_A)).status_code == 200
        mine = httpx.get(f"{url}/v1/usage", headers=auth(KEY_A)).json()
        assert mine["key_id"] == ID_A and mine["key_name"] == "team-a" and mine["totals"]["pages"] == DAY_PAGES
        every = httpx.get(f"{url}/v1/usage", headers=auth(KEY_B)).json()  # B is an admin (keys file)
        assert {(b["key_id"], b["key_name"]) for b in every["data"]} == {(ID_A, "team-a"), (ID_B, "ops")}
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.post(f"{url}/ocr", headers=auth("not-a-key"), json={}).status_code == 401

    with keyed_gateway(fake_upstream[1], store, keys) as (url, app):  # a new process state, one store
        assert_day_quota_429(ocr(url, KEY_A))
        read_page(url, app, KEY_B)


@pytest.mark.usefixtures("env_key")
def test_max_concurrent_refuses_the_extra_request(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    keys = keys_file(tmp_path / "keys.toml", b="max_concurrent = 1")
    with keyed_gateway(fake_upstream[1], tmp_path / "store", keys, max_concurrent=5) as (url, app):
        quotas = runtime_of(app.state).quotas  # type: ignore[union-attr]
        upstream.hold.clear()  # the engine answers nothing until the test says so
        answers: list[httpx.Response] = []
        first = threading.Thread(target=lambda: answers.append(ocr(url, KEY_B)))
        first.start()
        try:
            wait_until(lambda: len(upstream.requests) == 1, 30, "the first request at the engine")
            extra = ocr(url, KEY_B)
            assert extra.status_code == 429, extra.text
            assert extra.headers["Retry-After"] == "1"
            assert extra.json()["error"]["type"] == "insufficient_quota"
            assert "max_concurrent" in extra.json()["error"]["message"]
            assert quotas.in_flight(ID_B) == 1
            held = threading.Thread(target=lambda: answers.append(ocr(url, KEY_A)))  # A's default: 5
            held.start()
            wait_until(lambda: len(upstream.requests) == 2, 30, "key A's request at the engine")
        finally:
            upstream.hold.set()
            first.join(60)
        held.join(60)
        assert [a.status_code for a in answers] == [200, 200]
        wait_until(lambda: quotas.in_flight(ID_B) == 0, 30, "the slot given back")
        read_page(url, app, KEY_B)

        # a stream holds its slot until its last event, not only until its route returned
        seen = len(upstream.requests)
        upstream.hold.clear()
        streamed: list[str] = []

        def stream() -> None:
            with httpx.stream("POST", f"{url}/ocr/stream", headers=auth(KEY_B), timeout=60,
                              files={"file": ("p.png", png_bytes(), "image/png")}) as r:
                streamed.append(str(r.status_code))
                streamed.extend(r.iter_lines())

        streaming = threading.Thread(target=stream)
        streaming.start()
        try:
            wait_until(lambda: len(upstream.requests) == seen + 1, 30, "the stream at the engine")
            assert ocr(url, KEY_B).status_code == 429
        finally:
            upstream.hold.set()
            streaming.join(60)
        assert streamed[0] == "200" and any("[DONE]" in line for line in streamed)
        wait_until(lambda: quotas.in_flight(ID_B) == 0, 30, "the stream's slot given back")


@pytest.mark.usefixtures("env_key")
def test_a_batch_line_over_quota_waits_for_the_window_to_reset(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    keys = keys_file(tmp_path / "keys.toml", a="pages_per_day = 1")
    with caplog.at_level(logging.INFO, logger="openai_ocr.service.batches"), \
            keyed_gateway(fake_upstream[1], tmp_path / "store", keys) as (url, app):
        usage = runtime_of(app.state).service.usage  # type: ignore[union-attr]
        read_page(url, app, KEY_A)  # the day's quota is used up
        sdk = openai_client(url, KEY_A)
        uploaded = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl([chat_line("l1", "Free OCR.")]))),
                                    purpose="batch")
        seen = len(upstream.requests)
        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        wait_until(lambda: any(f"batch {batch.id} waits" in r.getMessage() and "pages_per_day" in r.getMessage()
                               for r in caplog.records), 30, "the batch waiting for the quota")
        passes = sum(f"batch {batch.id} waits" in r.getMessage() for r in caplog.records)
        assert sdk.batches.retrieve(batch.id).status == "in_progress"
        assert len(upstream.requests) == seen  # the line did not run
        assert passes == 1  # logged once, not at every look

        tomorrow = next_midnight(dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=1)
        usage.clock = lambda: tomorrow  # the day's window ends
        done = wait_until_done(sdk, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 1
        assert output_lines(sdk, done.output_file_id)[0]["response"]["status_code"] == 200
        assert len(upstream.requests) == seen + 1

        # Tomorrow's page is read too; a batch whose window closes before the next reset fails
        # its lines with `quota_exceeded` instead of waiting.
        late = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="1m")
        ended = wait_until_done(sdk, late.id)
        assert ended.status == "completed" and ended.request_counts.failed == 1
        error = output_lines(sdk, ended.error_file_id)[0]["error"]
        assert error["code"] == "quota_exceeded" and "pages_per_day" in error["message"]
        assert len(upstream.requests) == seen + 1


def test_the_windows_end_at_utc_midnight_and_the_first_of_the_month() -> None:
    at = dt.datetime(2025, 12, 31, 23, 59, 30, tzinfo=dt.UTC)
    assert next_midnight(at) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert next_month(at) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert next_month(dt.datetime(2026, 2, 1, tzinfo=dt.UTC)) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("text", "problem"), [
    ('[[keys]]\nname = "a"\nkey = "plain-text-key"\n', "key"),
    ('[[keys]]\nname = "a"\nenv = "X"\nsha256 = "' + "0" * 64 + '"\n', "exactly one"),
    ('[[keys]]\nname = "a"\nsha256 = "not-hex"\n', "sha256"),
    ('[[keys]]\nname = "a"\nenv = "OPENAI_OCR_TEST_UNSET_VARIABLE"\n', "unset or empty"),
    ('[[keys]]\nname = "a"\nsha256 = "' + "0" * 64 + '"\n[[keys]]\nname = "a"\nsha256 = "' + "1" * 64 + '"\n',
     "twice"),
    ('[[keys]]\nname = "a"\nsha256 = "' + "0" * 64 + '"\npages_per_day = -1\n', "pages_per_day"),
    ("[[keys]\n", "auth.keys_file"),
])
def test_a_bad_keys_file_is_refused_naming_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(KeysFileError, match=problem) as caught:
        read_keys_file(path, environ={})
    assert "plain-text-key" not in str(caught.value)
    with pytest.raises(KeysFileError):  # so the server does not start
        KeyRing.from_settings(gateway_settings("http://127.0.0.1:9/v1", auth={"keys_file": str(path)}))


def test_a_key_listed_in_both_keeps_its_id_and_gains_the_file_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_OCR_TEST_QUOTA_KEY_A", KEY_A)
    path = tmp_path / "keys.toml"
    path.write_text('[[keys]]\nname = "team-a"\nenv = "OPENAI_OCR_TEST_QUOTA_KEY_A"\npages_per_month = 9\n')
    ring = KeyRing.from_settings(gateway_settings(
        "http://127.0.0.1:9/v1", auth={"api_keys": [KEY_A, KEY_B], "admin_keys": [KEY_B], "keys_file": str(path)}))
    assert len(ring.keys) == 2
    found = ring.find(KEY_A)
    assert found is not None and found.id == ID_A and found.name == "team-a" and found.pages_per_month == 9
    other = ring.find(KEY_B)
    assert other is not None and other.id == ID_B and other.name is None and other.admin
    assert ring.find("nope") is None and ring.name_of(ID_B) is None


def test_the_readmes_keys_file_reads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("- **Keys and quotas**", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "keys.toml"
    path.write_text("\n".join(line.removeprefix("  ") for line in block.splitlines()))
    team, ops = read_keys_file(path, environ={"OCR_OPS_KEY": KEY_B})
    assert (team.name, team.id, team.pages_per_day, team.max_concurrent) == ("team-a", key_id("test-key"), 1000, 4)
    assert (ops.name, ops.id, ops.admin, ops.pages_per_day) == ("ops", ID_B, True, 0)


class CountingStore:
    """The two usage calls of a store, counting the reads."""

    problem = None

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.reads = 0

    def add_usage(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def usage(self, start: str, end: str, key_id: str | None = None) -> list[dict[str, Any]]:
        self.reads += 1
        return [r for r in self.rows if start <= r["date"] <= end and key_id in (None, r["key_id"])]


def test_a_check_reads_the_store_once_then_counts_in_memory() -> None:
    """The pages of a key are read from the store at its first check and after each write
    (other processes' pages with them), never at each check."""
    at = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)

    async def run() -> None:
        store = CountingStore()
        store.rows.append({"date": "2026-03-02", "key_id": "k", "pages": 4})  # earlier this month
        recorder = UsageRecorder(store, metrics_for(CollectorRegistry()))  # type: ignore[arg-type]
        recorder.clock = lambda: at
        assert await recorder.pages_used("k") == (0, 4) and store.reads == 1
        meter = UsageMeter()
        meter.charge("m", Usage(), pages=2)
        recorder.record(meter, "k", "/ocr")
        assert await recorder.pages_used("k") == (2, 6) and store.reads == 1
        await recorder.flush()  # written, then read again: counted once
        assert store.reads == 2 and await recorder.pages_used("k") == (2, 6)
        store.rows.append({"date": "2026-03-31", "key_id": "k", "pages": 5})  # another process's
        assert await recorder.pages_used("k") == (2, 6)  # seen at the next write, not before
        await recorder.flush()
        assert await recorder.pages_used("k") == (7, 11) and store.reads == 3
        recorder.clock = lambda: at + dt.timedelta(days=1)  # a new month: read again
        assert await recorder.pages_used("k") == (0, 0) and store.reads == 4

    asyncio.run(run())
