"""The Files and Batch API through the real openai SDK, against a real gateway server."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    SERVED_NAME,
    b64,
    blank_pdf,
    chat_line,
    jsonl,
    openai_client,
    output_lines,
    png_bytes,
    store_gateway,
    wait_until,
    wait_until_done,
)


def line_text(body: dict[str, Any]) -> str:
    """The prompt text of a chat request the upstream received (a batch line's is "n<i>")."""
    return body["messages"][0]["content"][-1]["text"]


def test_a_file_is_stored_listed_read_and_deleted(batch_gateway: str) -> None:
    sdk = openai_client(batch_gateway)
    data = png_bytes(text="stored")
    created = sdk.files.create(file=("page.png", io.BytesIO(data)), purpose="user")
    assert created.bytes == len(data) and created.filename == "page.png" and created.purpose == "user"
    assert sdk.files.retrieve(created.id).id == created.id
    assert created.id in [f.id for f in sdk.files.list()]
    assert sdk.files.content(created.id).content == data
    assert sdk.files.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(created.id)


def test_an_upload_no_request_could_use_is_refused(batch_gateway: str) -> None:
    with pytest.raises(openai.BadRequestError):
        openai_client(batch_gateway).files.create(file=("x.png", io.BytesIO(b"not an image")), purpose="user")


def test_a_chat_batch_runs_every_line_once(batch_gateway: str, upstream: FakeUpstream) -> None:
    sdk = openai_client(batch_gateway)
    upstream.reply_fn = lambda body: "read " + body["messages"][0]["content"][-1]["text"]
    pdf = sdk.files.create(file=("two.pdf", io.BytesIO(blank_pdf(2))), purpose="user")
    lines = [chat_line(f"req-{i}", f"line {i}") for i in range(5)]
    lines.append(chat_line("pdf", "the pdf", file_id=pdf.id))
    batch_input = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = sdk.batches.create(input_file_id=batch_input.id, endpoint="/v1/chat/completions",
                               completion_window="24h", metadata={"corpus": "test"})
    assert batch.status == "in_progress" and batch.request_counts.total == 6
    done = wait_until_done(sdk, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (6, 0)
    assert done.metadata == {"corpus": "test"} and done.completed_at and done.error_file_id is None
    out = {line["custom_id"]: line for line in output_lines(sdk, done.output_file_id)}
    assert sorted(out) == sorted(line["custom_id"] for line in lines)
    assert out["req-3"]["response"]["status_code"] == 200
    assert out["req-3"]["response"]["body"]["choices"][0]["message"]["content"] == "read line 3"
    # the PDF's two pages were two engine requests, joined with the page separator
    assert out["pdf"]["response"]["body"]["choices"][0]["message"]["content"].count("read the pdf") == 2
    assert len(upstream.requests) == 7
    assert batch.id in [b.id for b in sdk.batches.list()]


def test_ocr_and_mistral_batches_with_a_failing_line(batch_gateway: str, upstream: FakeUpstream) -> None:
    sdk = openai_client(batch_gateway)
    image = sdk.files.create(file=("p.png", io.BytesIO(png_bytes())), purpose="user")
    legacy = [{"custom_id": "ok", "method": "POST", "url": "/ocr",
               "body": {"file_id": image.id, "output": "markdown"}},
              {"custom_id": "bad", "method": "POST", "url": "/ocr",
               "body": {"image_base64": b64(b"not an image")}},
              {"custom_id": "gone", "method": "POST", "url": "/ocr", "body": {"file_id": "file-nope"}}]
    upload = sdk.files.create(file=("ocr.jsonl", io.BytesIO(jsonl(legacy))), purpose="batch")
    done = wait_until_done(sdk, sdk.batches.create(
        input_file_id=upload.id, endpoint="/ocr", completion_window="24h").id)  # type: ignore[arg-type]
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    [ok] = output_lines(sdk, done.output_file_id)
    assert ok["custom_id"] == "ok" and ok["response"]["body"]["text"] == "Hello\nworld"
    errors = {e["custom_id"]: e["response"] for e in output_lines(sdk, done.error_file_id)}
    assert errors["bad"]["status_code"] == 400 and errors["gone"]["status_code"] == 404
    assert errors["bad"]["body"]["error"]["type"] == "invalid_request_error"

    mistral = [{"custom_id": "m", "method": "POST", "url": "/v1/ocr",
                "body": {"document": {"type": "file", "file_id": image.id}}}]
    upload = sdk.files.create(file=("m.jsonl", io.BytesIO(jsonl(mistral))), purpose="batch")
    done = wait_until_done(sdk, sdk.batches.create(
        input_file_id=upload.id, endpoint="/v1/ocr", completion_window="24h").id)  # type: ignore[arg-type]
    [line] = output_lines(sdk, done.output_file_id)
    assert line["response"]["body"]["pages"][0]["index"] == 0
    assert line["response"]["body"]["pages"][0]["markdown"] == "Hello\nworld"


def test_the_input_is_validated_up_front_with_line_numbers(batch_gateway: str, upstream: FakeUpstream) -> None:
    sdk = openai_client(batch_gateway)
    good = chat_line("a", "x")
    text = (json.dumps(good) + "\n" + "{not json\n" + json.dumps({**good, "custom_id": "u", "url": "/ocr"}) + "\n"
            + json.dumps(good) + "\n" + json.dumps({**good, "custom_id": "s", "body": {
                **good["body"], "stream": True}}) + "\n")
    upload = sdk.files.create(file=("bad.jsonl", io.BytesIO(text.encode())), purpose="batch")
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors is not None
    found = {(e.line, e.code) for e in batch.errors.data or []}
    assert found == {(2, "invalid_request"), (3, "mismatched_endpoint"), (4, "duplicate_custom_id"),
                     (5, "invalid_request")}
    assert upstream.requests == []  # nothing ran
    with pytest.raises(openai.BadRequestError):  # a user file is not a batch input
        image = sdk.files.create(file=("p.png", io.BytesIO(png_bytes())), purpose="user")
        sdk.batches.create(input_file_id=image.id, endpoint="/v1/chat/completions",
                           completion_window="24h")


def test_a_cancelled_batch_keeps_what_ran(fake_upstream: tuple[FakeUpstream, str],
                                          upstream: FakeUpstream, tmp_path: Path) -> None:
    """Lines n0 and n1 are answered, the rest held until the batch is cancelled."""
    cancelled = threading.Event()
    upstream.answer_order = lambda body: cancelled.is_set() or line_text(body) in ("n0", "n1")
    with store_gateway(fake_upstream[1], tmp_path / "store", limits={"max_in_flight": 2}) as url:
        sdk = openai_client(url)
        lines = [chat_line(f"r{i}", f"n{i}") for i in range(40)]
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        wait_until(lambda: sdk.batches.retrieve(batch.id).request_counts.completed > 0, 30, "a first line")
        assert sdk.batches.cancel(batch.id).status == "cancelling"
        cancelled.set()
        done = wait_until_done(sdk, batch.id)
        ran = [line["custom_id"] for line in output_lines(sdk, done.output_file_id)]
    assert done.status == "cancelled" and done.cancelled_at
    assert 0 < done.request_counts.completed < 40
    assert len(ran) == len(set(ran)) == done.request_counts.completed
    assert len(upstream.requests) < 40  # the rest never reached the engine


def test_files_and_batches_belong_to_their_key(fake_upstream: tuple[FakeUpstream, str],
                                               upstream: FakeUpstream, tmp_path: Path) -> None:
    with store_gateway(fake_upstream[1], tmp_path / "store", auth={"api_keys": ["key-one", "key-two"]}) as url:
        one, two = openai_client(url, "key-one"), openai_client(url, "key-two")
        image = one.files.create(file=("p.png", io.BytesIO(png_bytes())), purpose="user")
        upload = one.files.create(file=("in.jsonl", io.BytesIO(jsonl([chat_line("a", "x")]))),
                                  purpose="batch")
        batch = one.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        for call in (lambda: two.files.retrieve(image.id), lambda: two.files.content(image.id),
                     lambda: two.files.delete(image.id), lambda: two.batches.retrieve(batch.id),
                     lambda: two.batches.cancel(batch.id),
                     lambda: two.batches.create(input_file_id=upload.id,
                                                endpoint="/v1/chat/completions",
                                                completion_window="24h")):
            with pytest.raises(openai.NotFoundError):
                call()
        assert [f.id for f in two.files.list()] == [] and list(two.batches.list()) == []
        answer = httpx.post(f"{url}/ocr", json={"file_id": image.id},
                            headers={"Authorization": "Bearer key-two"})
        assert answer.status_code == 404, answer.text
        assert httpx.post(f"{url}/ocr", json={"file_id": image.id},
                          headers={"Authorization": "Bearer key-one"}).status_code == 200
        assert one.files.retrieve(image.id).id == image.id
        assert wait_until_done(one, batch.id).status == "completed"
        with pytest.raises(openai.AuthenticationError):
            openai_client(url, "wrong").files.list()


def test_uploaded_files_serve_the_interactive_routes(batch_gateway: str, upstream: FakeUpstream) -> None:
    sdk = openai_client(batch_gateway)
    pdf = sdk.files.create(file=("three.pdf", io.BytesIO(blank_pdf(3))), purpose="user")
    chat = sdk.chat.completions.create(model=SERVED_NAME, messages=[{"role": "user", "content": [
        {"type": "file", "file": {"file_id": pdf.id}}, {"type": "text", "text": "Free OCR."}]}])
    assert chat.choices[0].message.content is not None
    assert chat.choices[0].message.content.count("Hello\nworld") == 3
    mistral = httpx.post(f"{batch_gateway}/v1/ocr", json={"document": {"type": "file", "file_id": pdf.id},
                                                   "pages": [1]})
    assert mistral.status_code == 200 and [p["index"] for p in mistral.json()["pages"]] == [1]
    legacy = httpx.post(f"{batch_gateway}/ocr", json={"file_id": pdf.id, "pages": "1-2"})
    assert legacy.status_code == 200 and legacy.json()["page_count"] == 2
    missing = httpx.post(f"{batch_gateway}/ocr", json={"file_id": "file-missing"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "file_id"


def test_quota_answers_507_and_the_upload_limit_413(fake_upstream: tuple[FakeUpstream, str],
                                                    upstream: FakeUpstream, tmp_path: Path) -> None:
    image = png_bytes(width=200, height=200, text="quota")
    with store_gateway(fake_upstream[1], tmp_path / "store",
               storage={"quota_bytes": len(image) * 2 + 10},
               limits={"max_file_bytes": len(image)},
               batches={"max_document_bytes": len(image) * 3}) as url:  # what a batch line reads
        sdk = openai_client(url)
        first = sdk.files.create(file=("a.png", io.BytesIO(image)), purpose="user")
        sdk.files.create(file=("b.png", io.BytesIO(image)), purpose="user")
        with pytest.raises(openai.APIStatusError) as full:
            sdk.files.create(file=("c.png", io.BytesIO(image)), purpose="user")
        assert full.value.status_code == 507
        assert "quota" in full.value.response.json()["error"]["message"]
        sdk.files.delete(first.id)  # room again
        sdk.files.create(file=("c.png", io.BytesIO(image)), purpose="user")
        with pytest.raises(openai.APIStatusError) as large:
            sdk.files.create(file=("big.png", io.BytesIO(image * 4)), purpose="user")
        assert large.value.status_code == 413


def test_the_runner_deletes_files_past_their_retention(fake_upstream: tuple[FakeUpstream, str],
                                                       upstream: FakeUpstream, tmp_path: Path) -> None:
    with store_gateway(fake_upstream[1], tmp_path / "store",
               storage={"retention_s": 1, "sweep_interval_s": 0.2}) as url:
        sdk = openai_client(url)
        stored = sdk.files.create(file=("a.png", io.BytesIO(png_bytes())), purpose="user")
        assert stored.expires_at is not None and stored.expires_at <= stored.created_at + 1
        wait_until(lambda: stored.id not in [f.id for f in sdk.files.list()], 30,
                   "the file being deleted after its retention", poll_s=0.1)
        with pytest.raises(openai.NotFoundError):
            sdk.files.content(stored.id)
    assert not (tmp_path / "store" / "files" / stored.id).exists()


def test_batch_lines_hold_only_their_share_of_the_engine(fake_upstream: tuple[FakeUpstream, str],
                                                         upstream: FakeUpstream, tmp_path: Path) -> None:
    """The upstream holds every answer: the batch takes its two slots (half of 4) and no more,
    so an interactive call still reaches the engine while the batch waits."""
    upstream.hold.clear()
    with store_gateway(fake_upstream[1], tmp_path / "store", limits={"max_in_flight": 4},
                       batches={"engine_share": 0.5}) as url, ThreadPoolExecutor(1) as pool:
        sdk = openai_client(url)
        lines = [chat_line(f"r{i}", f"n{i}") for i in range(30)]
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
        wait_until(lambda: upstream.in_flight == 2, 30, "the batch holding its two slots")
        answer = pool.submit(httpx.post, f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30)
        wait_until(lambda: any(not line_text(r).startswith("n") for r in upstream.requests), 30,
                   "the interactive call reaching the engine beside the batch")
        assert upstream.in_flight == 3 and sdk.batches.retrieve(batch.id).status == "in_progress"
        upstream.hold.set()
        assert answer.result().status_code == 200
        assert wait_until_done(sdk, batch.id).status == "completed"
    assert upstream.max_in_flight == 3  # two batch lines (half of 4 slots) and the interactive call


def test_lines_left_when_the_window_closes_end_as_batch_expired(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.delay_s = 0.3
    with store_gateway(fake_upstream[1], tmp_path / "store", limits={"max_in_flight": 1}) as url:
        sdk = openai_client(url)
        lines = [chat_line(f"r{i}", f"n{i}") for i in range(20)]
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="0.02m")  # 1.2 s: about 4 lines
        done = wait_until_done(sdk, batch.id)
        ran = {line["custom_id"] for line in output_lines(sdk, done.output_file_id)}
        expired = output_lines(sdk, done.error_file_id)
    assert done.status == "expired" and done.expired_at
    assert done.request_counts.completed == len(ran) < 20  # 20 x 0.3 s does not fit in 1.2 s
    assert {e["error"]["code"] for e in expired} == {"batch_expired"}
    assert ran | {e["custom_id"] for e in expired} == {f"r{i}" for i in range(20)}
    assert not ran & {e["custom_id"] for e in expired}


def test_batch_inputs_may_be_larger_than_a_request_body(fake_upstream: tuple[FakeUpstream, str],
                                                        upstream: FakeUpstream, tmp_path: Path) -> None:
    lines = jsonl([chat_line(f"r{i}", f"n{i}") for i in range(30)])
    with store_gateway(fake_upstream[1], tmp_path / "store", limits={"max_body_bytes": len(lines) // 3},
               storage={"max_upload_bytes": len(lines) * 2}) as url:
        sdk = openai_client(url)
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(lines)), purpose="batch")
        assert upload.bytes == len(lines)
        with pytest.raises(openai.APIStatusError) as large:  # other routes keep their limit
            sdk.chat.completions.create(model=SERVED_NAME, messages=[{"role": "user", "content": "x" * len(lines)}])
        assert large.value.status_code == 413
        with pytest.raises(openai.APIStatusError) as over:
            sdk.files.create(file=("in.jsonl", io.BytesIO(lines * 3)), purpose="batch")
        assert over.value.status_code == 413
