"""The Files and Batch API in vllm mode: the plugin's runner sends lines to the in-process
engine (vLLM's own chat handler), as the interactive routes do. Pages are read at the `tiny`
resolution: these tests are about files and batches, and the vision towers take nearly all of
a request's time."""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
from openai import OpenAI

from tests.helpers import ENGINE_API_KEY, SERVED_NAME, png_bytes, text_pdf, wait_until_done

TIMEOUT_S = 600
TINY = {"resolution": "tiny"}


def test_a_batch_of_ocr_and_chat_lines_runs_on_the_engine(vllm_server: str) -> None:
    sdk = OpenAI(base_url=f"{vllm_server}/v1", api_key=ENGINE_API_KEY, max_retries=0, timeout=TIMEOUT_S)
    image = sdk.files.create(file=("p.png", io.BytesIO(png_bytes())), purpose="user")
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    chat = {"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": {
        "max_tokens": 2, "mm_processor_kwargs": TINY, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Free OCR."}]}]}}
    ocr = {"custom_id": "ocr", "method": "POST", "url": "/ocr",
           "body": {"file_id": image.id, "mode": "free_ocr", "max_tokens": 2, **TINY}}
    results = {}
    for line in (ocr, chat):
        upload = sdk.files.create(file=("in.jsonl", io.BytesIO(json.dumps(line).encode())),
                                  purpose="batch")
        batch = sdk.batches.create(input_file_id=upload.id, endpoint=line["url"],  # type: ignore[arg-type]
                                   completion_window="24h")
        batch = wait_until_done(sdk, batch.id, TIMEOUT_S)
        assert batch.status == "completed" and batch.request_counts.completed == 1, batch
        [out] = sdk.files.content(batch.output_file_id).text.splitlines()
        results[line["custom_id"]] = json.loads(out)["response"]
    assert results["ocr"]["status_code"] == 200
    assert results["ocr"]["body"]["model"] == SERVED_NAME and results["ocr"]["body"]["resolution"] == "tiny"
    assert results["ocr"]["body"]["usage"]["completion_tokens"] == 2
    assert results["chat"]["body"]["usage"]["completion_tokens"] == 2
    assert results["chat"]["body"]["usage"]["prompt_tokens"] < 1 + 111  # tiny's 73 image tokens, no more
    assert results["chat"]["body"]["choices"][0]["finish_reason"] == "length"


def test_chat_takes_pdfs_and_uploaded_files_in_vllm_mode(vllm_server: str) -> None:
    """vLLM's own chat route takes images only: a `file` part (an uploaded file by id, or a
    PDF inline) is answered by the project's document chat, one engine request a page."""
    sdk = OpenAI(base_url=f"{vllm_server}/v1", api_key=ENGINE_API_KEY, max_retries=0, timeout=TIMEOUT_S)
    pdf = text_pdf([(300, 200, ["page one"]), (300, 200, ["page two"])])
    upload = sdk.files.create(file=("two.pdf", io.BytesIO(pdf)), purpose="user")
    inline = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    for file in ({"file_id": upload.id}, {"file_data": inline, "filename": "two.pdf"}):
        answer = sdk.chat.completions.create(
            model=SERVED_NAME, max_tokens=2, extra_body={"mm_processor_kwargs": TINY},
            messages=[{"role": "user", "content": [  # type: ignore[list-item, misc]
                {"type": "file", "file": file}, {"type": "text", "text": "Free OCR."}]}])
        assert answer.model == SERVED_NAME
        assert answer.usage is not None and answer.usage.completion_tokens == 4  # 2 pages x 2
        assert answer.usage.prompt_tokens < 2 * (1 + 111)  # both pages read at tiny (73 image tokens)
        assert "<--- Page Split --->" in (answer.choices[0].message.content or "")
    # a wrong key is refused before any file is read
    other = OpenAI(base_url=f"{vllm_server}/v1", api_key="sk-not-the-key", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        other.chat.completions.create(model=SERVED_NAME, max_tokens=2, messages=[{"role": "user", "content": [  # type: ignore[list-item, misc]
            {"type": "file", "file": {"file_id": upload.id}}, {"type": "text", "text": "Free OCR."}]}])
