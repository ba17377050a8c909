"""One batch's failure is its own: its input deleted (refused, 409) or gone anyway, a line that
no longer reads, its answers filling the quota. The batch fails (or that line does) with what
ran kept; every other batch, of every key, runs on. Against a real gateway (API keys on) in
front of the fake upstream, through the openai SDK.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from openai_ocr.errors import Unavailable
from openai_ocr.runtime import runtime_of
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    gateway_settings,
    jsonl,
    openai_client,
    output_lines,
    serve,
    store_gateway,
    wait_until,
    wait_until_done,
)

LINES = 300
"""More lines than the runner reads from the input at once (256)."""
KEYS = {"api_keys": ["key-a", "key-b"]}


def text_line(custom_id: str, text: str) -> dict[str, Any]:
    """A chat batch line without an image (cheap to run): the prompt names the line."""
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}}


def line_text(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"][-1]["text"])


def create_batch(sdk: Any, lines: list[dict[str, Any]]) -> tuple[Any, Any]:
    source = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    return source, batch


def bodies_on_disk(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "files").iterdir())


def test_deleting_the_input_of_a_running_batch_is_refused(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    release = threading.Event()
    upstream.answer_order = lambda body: release.is_set() or line_text(body) in ("a0", "a1")
    with store_gateway(fake_upstream[1], tmp_path / "store", auth=KEYS) as url:
        a = openai_client(url, "key-a")
        source, batch = create_batch(a, [text_line(f"r{i}", f"a{i}") for i in range(LINES)])
        wait_until(lambda: a.batches.retrieve(batch.id).request_counts.completed >= 2, 30,
                   "the first lines answered")
        with pytest.raises(openai.ConflictError) as refused:
            a.files.delete(source.id)
        error = refused.value.response.json()["error"]
        assert refused.value.status_code == 409 and error["param"] == "file_id"
        assert batch.id in error["message"] and "cancel" in error["message"]
        assert a.files.retrieve(source.id).id == source.id
        release.set()
        done = wait_until_done(a, batch.id, 120)
        assert done.status == "completed" and done.request_counts.completed == LINES
        assert a.files.delete(source.id).deleted  # once the batch ended


def test_a_batch_whose_input_vanishes_fails_alone_and_keeps_what_ran(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """Key A's input is removed from the disk while its batch runs (a disk fault, an operator):
    A's batch fails naming it, with the lines that ran in its output; key B's batch, created
    after it, completes. Before, the runner's pass failed every second on A and B stayed
    `in_progress`."""
    store = tmp_path / "store"
    release = threading.Event()
    upstream.answer_order = lambda body: (release.is_set() or not line_text(body).startswith("a")
                                          or int(line_text(body)[1:]) < 4)
    with store_gateway(fake_upstream[1], store, auth=KEYS) as url:
        a, b = openai_client(url, "key-a"), openai_client(url, "key-b")
        source, first = create_batch(a, [text_line(f"r{i}", f"a{i}") for i in range(LINES)])
        wait_until(lambda: a.batches.retrieve(first.id).request_counts.completed >= 4, 30,
                   "A's first lines answered")
        (store / "files" / source.id).unlink()
        _, other = create_batch(b, [text_line(f"s{i}", f"b{i}") for i in range(5)])
        release.set()
        failed = wait_until_done(a, first.id, 120)
        done = wait_until_done(b, other.id, 120)
        ran = output_lines(a, failed.output_file_id)
        assert failed.error_file_id is None
    assert failed.status == "failed" and failed.failed_at
    assert failed.errors is not None and [e.code for e in failed.errors.data] == ["input_file_missing"]
    assert source.id in (failed.errors.data[0].message or "")
    assert 4 <= failed.request_counts.completed < LINES and failed.request_counts.failed == 0
    ids = [line["custom_id"] for line in ran]
    assert len(ids) == len(set(ids)) == failed.request_counts.completed
    assert done.status == "completed" and done.request_counts.completed == 5


def test_a_line_that_no_longer_reads_fails_alone(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """A line of the input is overwritten on disk after validation, before the runner reads it:
    that line fails (`invalid_line`), the other 299 complete. Before, the runner's pass
    failed on it every second and the batch never ended."""
    store = tmp_path / "store"
    lines = [text_line(f"r{i}", f"n{i}") for i in range(LINES)]
    data = jsonl(lines)
    release = threading.Event()
    upstream.answer_order = lambda body: release.is_set() or int(line_text(body)[1:]) < 4
    with store_gateway(fake_upstream[1], store) as url:
        sdk = openai_client(url)
        source, batch = create_batch(sdk, lines)
        wait_until(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 4, 30,
                   "the first lines answered")
        raw = data.splitlines(keepends=True)
        start = sum(len(line) for line in raw[:280])  # line 281: in the second read, not read yet
        with open(store / "files" / source.id, "r+b") as out:
            out.seek(start)
            out.write(b"{" + b"#" * (len(raw[280]) - 2))
        release.set()
        done = wait_until_done(sdk, batch.id, 120)
        errors = output_lines(sdk, done.error_file_id)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (LINES - 1, 1)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("r280", "invalid_line")]


def test_a_batch_stops_cleanly_when_its_answers_fill_the_quota(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """30 answers of 20 kB into a quota with room for about 9: the batch ends `failed` with an
    error naming the quota, the answers recorded so far in its output, and the disk never
    holds more than the quota. Before, the output (600 kB) was written anyway."""
    store = tmp_path / "store"
    upstream.default_reply = "x" * 20_000
    lines = [text_line(f"r{i}", f"n{i}") for i in range(30)]
    quota = len(jsonl(lines)) + 200_000
    with store_gateway(fake_upstream[1], store, storage={"quota_bytes": quota},
                       limits={"max_in_flight": 2}) as url:
        sdk = openai_client(url)
        _, batch = create_batch(sdk, lines)
        done = wait_until_done(sdk, batch.id, 120)
        out = output_lines(sdk, done.output_file_id)
        listed = list(sdk.files.list())
        with pytest.raises(openai.APIStatusError) as full:  # and the store answers 507 now
            sdk.files.create(file=("more.jsonl", io.BytesIO(b"x" * 30_000)), purpose="batch")
    assert done.status == "failed" and done.failed_at
    assert done.errors is not None and [e.code for e in done.errors.data] == ["storage_quota_exceeded"]
    assert str(quota) in (done.errors.data[0].message or "")
    assert 0 < done.request_counts.completed == len(out) < 30
    assert len({line["custom_id"] for line in out}) == len(out)
    assert sum(f.bytes for f in listed) <= quota and bodies_on_disk(store) <= quota
    assert full.value.status_code == 507


def test_a_batch_whose_answers_cannot_be_stored_is_retried_then_failed_alone(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """Storing key A's answers fails after its first two (a storage error of that batch): its
    run is tried again with back-off (the batch shows a `batch_retrying` error meanwhile), key
    B's batch completes, and after five failed runs A ends `failed` (`batch_error`) with its
    two answers in its output. Before, the failed lines were dropped and A "completed"."""
    settings = gateway_settings(fake_upstream[1], auth=KEYS, batches={"poll_interval_s": 0.05},
                                storage={"dir": str(tmp_path / "store")})
    with serve(settings) as (url, app):
        store = runtime_of(app.state).store  # type: ignore[union-attr]
        assert store is not None
        a, b = openai_client(url, "key-a"), openai_client(url, "key-b")
        _, first = create_batch(a, [text_line(f"r{i}", f"a{i}") for i in range(6)])
        finish_line = store.finish_line
        stored: list[int] = []

        def failing(batch_id: str, idx: int, status_code: int, result: dict[str, Any]) -> bool:
            if batch_id == first.id:
                if len(stored) >= 2:
                    raise Unavailable("file storage failed (disk I/O error); try again")
                stored.append(idx)
            return finish_line(batch_id, idx, status_code, result)

        store.finish_line = failing  # type: ignore[method-assign]
        _, other = create_batch(b, [text_line(f"s{i}", f"b{i}") for i in range(5)])
        done = wait_until_done(b, other.id, 60)
        wait_until(lambda: (a.batches.retrieve(first.id).errors or None) is not None, 30,
                   "A's errors noting the retries")
        failed = wait_until_done(a, first.id, 120)
        ran = output_lines(a, failed.output_file_id)
    assert done.status == "completed" and done.request_counts.completed == 5
    assert failed.status == "failed" and failed.errors is not None
    assert [e.code for e in failed.errors.data] == ["batch_error"]
    assert "5 failed attempts" in (failed.errors.data[0].message or "")
    assert len(ran) == failed.request_counts.completed == 2


def test_an_expired_batch_whose_unrun_list_does_not_fit_keeps_its_answers(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    """The window closes with most of 40 lines unrun; the quota has room for the answers but
    not for the list of lines that did not run: the batch ends `expired` with its answers in
    the output, no error file of unrun lines, and an error saying how many were not listed."""
    upstream.delay_s = 0.3
    unknown_model = text_line("bad", "n")
    unknown_model["body"]["model"] = "no-such-model"  # answered with a 404: an error line
    lines = [unknown_model, *(text_line(f"r{i}", f"n{i}") for i in range(39))]
    quota = len(jsonl(lines)) + 8_000  # a few answers of about 1 kB; the unrun list: 40 x 200 B more
    with store_gateway(fake_upstream[1], tmp_path / "store", storage={"quota_bytes": quota},
                       limits={"max_in_flight": 1}) as url:
        sdk = openai_client(url)
        source = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                                   completion_window="0.02m")  # 1.2 s: a few lines
        done = wait_until_done(sdk, batch.id, 60)
        out = output_lines(sdk, done.output_file_id)
        errors = output_lines(sdk, done.error_file_id)
    assert done.status == "expired"
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("bad", 404)]  # no unrun line
    assert 0 < done.request_counts.completed == len(out) < 39 and done.request_counts.failed == 1
    assert done.errors is not None
    [note] = [e for e in done.errors.data if e.code == "storage_quota_exceeded"]
    assert note.message and note.message.startswith(f"{39 - len(out)} requests did not run")
