"""PDFs through the gateway: the right pages at the right dpi reach the upstream, in order."""

from __future__ import annotations

import functools
import hashlib
import json

import httpx
import openai
import pytest

from openai_ocr.inputs.documents import open_document
from openai_ocr.ocr.assembly import PAGE_SPLIT
from tests.fake_upstream import FakeUpstream
from tests.helpers import SYSTEM_PDF, b64, blank_pdf, encrypted_pdf, image_size_of, parse_sse, system_pdf

pytestmark = pytest.mark.skipif(not SYSTEM_PDF.exists(), reason="no system PDF")

GROUNDED = ("<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Page {page}\n\n"
            "<|ref|>image<|/ref|><|det|>[[0, 100, 499, 499]]<|/det|>\n\n"
            "<|ref|>text<|/ref|><|det|>[[100, 600, 899, 700]]<|/det|>\nBody of {page}.")


@functools.cache
def page_digests(pages: str, dpi: int = 144) -> dict[str, int]:
    """sha1 of each page's data URL, as the server renders it -> page number."""
    with open_document(system_pdf(), pages=pages, dpi=dpi, max_pages=1000,
                       max_pixels=64_000_000, max_bytes=2**30) as doc:
        return {hashlib.sha1(doc.page_image(n).data_url().encode()).hexdigest(): n
                for n in doc.pages}


def image_url_of(body: dict) -> str:
    return next(p["image_url"]["url"] for p in body["messages"][0]["content"]
                if p["type"] == "image_url")


@pytest.fixture()
def grounded(upstream: FakeUpstream) -> FakeUpstream:
    digests = page_digests("1-17")
    upstream.reply_fn = lambda body: GROUNDED.format(
        page=digests.get(hashlib.sha1(image_url_of(body).encode()).hexdigest(), 0))
    return upstream


def test_pdf_file_json_output(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("spec.pdf", system_pdf(), "application/pdf")},
                   data={"pages": "3,1-2", "output": "json", "mode": "markdown"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["page_count"] == 3
    assert [p["index"] for p in body["pages"]] == [3, 1, 2]
    assert len(grounded.requests) == 3
    assert {image_size_of(image_url_of(b)) for b in grounded.requests} == {(1220, 1579)}
    first = body["pages"][0]
    assert (first["width"], first["height"]) == (1220, 1579)
    assert first["text"] == GROUNDED.format(page=3)
    assert first["blocks"][0] == {"label": "title", "text": "# Page 3", "boxes_px": [[
        100 / 999 * 1220, 50 / 999 * 1579, 899 / 999 * 1220, 90 / 999 * 1579]]}
    assert first["markdown"] == "# Page 3\n\n![](images/3_0.png)\n\nBody of 3."
    assert first["images"] is None and first["finish_reason"] == "stop"
    assert body["text"] == PAGE_SPLIT.join(GROUNDED.format(page=n) for n in (3, 1, 2))
    assert body["usage"]["prompt_tokens"] == 3 * 278


def test_pdf_base64_markdown_output_with_dpi(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr", json={
        "document_base64": "data:application/pdf;base64," + b64(system_pdf()),
        "pages": "16-17", "output": "markdown"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == PAGE_SPLIT.join(
        f"# Page {n}\n\n![](images/{n}_0.png)\n\nBody of {n}." for n in (16, 17))
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(system_pdf()), "pages": "1",
                                           "dpi": 72}, timeout=60)
    assert r.status_code == 200, r.text
    assert image_size_of(image_url_of(grounded.requests[-1])) == (610, 790)


def test_include_images_returns_figure_crops(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("s.pdf", system_pdf(), "application/pdf")},
                   data={"pages": "1", "include_images": "true"}, timeout=60)
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    (crop,) = page["images"]
    assert crop["name"] == "images/1_0.png"
    assert image_size_of("x," + crop["image_base64"]) == (round(499 / 999 * 1220),
                                                          round(499 / 999 * 1579) - round(100 / 999 * 1579))


def test_length_is_reported_per_page(gateway: str, upstream: FakeUpstream) -> None:
    upstream.finish_reason = "length"
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("s.pdf", system_pdf(), "application/pdf")},
                   data={"pages": "1-2", "output": "json"}, timeout=60)
    body = r.json()
    assert body["finish_reason"] == "length"
    assert len(body["warnings"]) == 2 and all("repetition" in w for w in body["warnings"])
    assert all(p["warning"] for p in body["pages"])


def test_pdf_stream_page_by_page(gateway: str, grounded: FakeUpstream) -> None:
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("s.pdf", system_pdf(),
                      "application/pdf")}, data={"pages": "2-3"}, timeout=60) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert [(p["type"], p.get("page")) for p in payloads if p["type"] != "text"] == [
        ("page", 2), ("page_end", 2), ("page", 3), ("page_end", 3), ("done", None)]
    assert payloads[0]["width"] == 1220
    assert "".join(p["text"] for p in payloads) == PAGE_SPLIT.join(
        GROUNDED.format(page=n) for n in (2, 3))
    assert payloads[-1]["usage"]["prompt_tokens"] == 2 * 278


def test_batch_mixes_pdfs_and_images(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"document_base64": b64(system_pdf()), "pages": "1-2"},
        {"document_base64": b64(encrypted_pdf())},
    ]}, timeout=60)
    results = r.json()["results"]
    assert [x["status_code"] for x in results] == [200, 400]
    assert results[0]["page_count"] == 2 and "password" in results[1]["error"]["message"]


@pytest.mark.parametrize("data, fields, status, needle", [
    (blank_pdf(2000), {}, 413, "1000"),
    (encrypted_pdf(), {}, 400, "password"),
    (b"%PDF-1.5\ncorrupt", {}, 400, "PDF"),
    (None, {"pages": "99"}, 400, "17"),
    (None, {"pages": "x"}, 400, "pages"),
    (None, {"output": "yaml"}, 422, "output"),
])
def test_bad_documents_get_a_json_4xx(gateway: str, upstream: FakeUpstream, data: bytes | None,
                                      fields: dict, status: int, needle: str) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("d.pdf", data or system_pdf(),
                   "application/pdf")}, data=fields, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert upstream.requests == []


FILE_MESSAGES = [{"role": "user", "content": [
    {"type": "file", "file": {"filename": "spec.pdf",
                              "file_data": "data:application/pdf;base64," + b64(system_pdf())}},
    {"type": "text", "text": "Free OCR."}]}]


def test_openai_file_part_is_expanded_per_page(gateway: str, grounded: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused")
    completion = client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR",
                                                messages=FILE_MESSAGES, extra_body={"pages": "4-6"})
    expected = PAGE_SPLIT.join(GROUNDED.format(page=n) for n in (4, 5, 6))
    assert completion.choices[0].message.content == expected
    assert completion.usage is not None and completion.usage.prompt_tokens == 3 * 278
    assert len(grounded.requests) == 3
    for sent in grounded.requests:
        assert "pages" not in sent
        assert [p["type"] for p in sent["messages"][0]["content"]] == ["image_url", "text"]

    grounded.requests.clear()
    stream = client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR", messages=FILE_MESSAGES,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"pages": "4-6"})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3 * 278
