"""Long documents through the Batch API: a line reads more than an interactive request may
(`batches.max_document_pages`, `..._pixels`, `..._bytes`), in page order; past the batch
limits the line fails alone."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx

from openai_ocr.ocr.assembly import PAGE_SPLIT
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    image_size_of,
    jsonl,
    openai_client,
    output_lines,
    page_of_width,
    sample_pdf,
    store_gateway,
    wait_until_done,
)


def page_reply(body: dict[str, Any]) -> str:
    width, _ = image_size_of(body["messages"][0]["content"][0]["image_url"]["url"])
    return f"page {page_of_width(width)}"


def ocr_line(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/ocr", "body": body}


def test_a_batch_line_reads_a_document_longer_than_a_request_may(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reply_fn = page_reply
    document = sample_pdf()  # 17 pages
    with store_gateway(fake_upstream[1], tmp_path / "store",
                       limits={"max_pages": 4, "max_file_bytes": len(document) // 2},
                       batches={"max_document_pages": 12, "max_document_bytes": len(document)}) as url:
        sdk = openai_client(url)
        pdf = sdk.files.create(file=("long.pdf", io.BytesIO(document)), purpose="user")  # over max_file_bytes
        interactive = httpx.post(f"{url}/ocr", json={"file_id": pdf.id, "pages": "1-3"}, timeout=60)
        assert interactive.status_code == 413
        assert "Batch API" in interactive.json()["error"]["message"]
        lines = [ocr_line("first-twelve", {"file_id": pdf.id, "pages": "1-12", "output": "json"}),
                 ocr_line("all", {"file_id": pdf.id}),  # 17 pages: over the batch cap
                 ocr_line("last", {"file_id": pdf.id, "pages": "17"})]
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        done = wait_until_done(sdk, sdk.batches.create(
            input_file_id=upload.id, endpoint="/ocr", completion_window="24h").id)  # type: ignore[arg-type]
        answers = {line["custom_id"]: line["response"] for line in output_lines(sdk, done.output_file_id)}
        errors = {line["custom_id"]: line["response"] for line in output_lines(sdk, done.error_file_id)}
    assert set(answers) == {"first-twelve", "last"} and set(errors) == {"all"}
    twelve = answers["first-twelve"]["body"]
    assert twelve["page_count"] == 12 and [p["index"] for p in twelve["pages"]] == list(range(1, 13))
    assert twelve["text"].split(PAGE_SPLIT) == [f"page {n}" for n in range(1, 13)]
    assert answers["last"]["body"]["text"] == "page 17"
    assert errors["all"]["status_code"] == 413
    assert "at most 12 pages" in errors["all"]["body"]["error"]["message"]
