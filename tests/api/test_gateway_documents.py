"""PDFs through the gateway: the right pages at the right dpi reach the upstream, in order.

The document is `sample_pdf()`: page n is (600 + 10 n) x 800 pt, so the fake upstream knows
which page it was sent from the image width alone (144 dpi: 1200 + 20 n px).
"""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, blank_pdf, encrypted_pdf, image_size_of, page_of_width, parse_sse, sample_pdf

SPLIT = "\n\n<--- Page Split --->\n\n"

GROUNDED = ("<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Page {page}\n\n"
            "<|ref|>image<|/ref|><|det|>[[0, 100, 499, 499]]<|/det|>\n\n"
            "<|ref|>text<|/ref|><|det|>[[100, 600, 899, 700]]<|/det|>\nBody of {page}.")


def image_url_of(body: dict) -> str:
    return next(p["image_url"]["url"] for p in body["messages"][0]["content"]
                if p["type"] == "image_url")


@pytest.fixture()
def grounded(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reply_fn = lambda body: GROUNDED.format(page=page_of_width(image_size_of(image_url_of(body))[0]))
    return upstream


def test_pdf_file_json_output(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("spec.pdf", sample_pdf(), "application/pdf")},
                   data={"pages": "3,1-2", "output": "json", "mode": "markdown"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["page_count"] == 3
    assert [p["index"] for p in body["pages"]] == [3, 1, 2]
    assert len(grounded.requests) == 3
    assert sorted(image_size_of(image_url_of(b)) for b in grounded.requests) == [
        (1220, 1600), (1240, 1600), (1260, 1600)]
    first = body["pages"][0]
    assert (first["width"], first["height"]) == (1260, 1600)
    assert first["text"] == GROUNDED.format(page=3)
    # no log-probabilities from this upstream, no words asked for: nulls, never a guess
    assert first["blocks"][0] == {"label": "title", "text": "# Page 3", "boxes_px": [[
        100 / 999 * 1260, 50 / 999 * 1600, 899 / 999 * 1260, 90 / 999 * 1600]],
        "confidence": None, "words": None}
    assert first["confidence"] is None
    assert first["markdown"] == "# Page 3\n\n![](images/3_0.png)\n\nBody of 3."
    assert first["images"] is None and first["finish_reason"] == "stop"
    assert body["text"] == SPLIT.join(GROUNDED.format(page=n) for n in (3, 1, 2))
    assert body["usage"]["prompt_tokens"] == 3 * 278


def test_pdf_base64_markdown_output_with_dpi(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr", json={
        "document_base64": "data:application/pdf;base64," + b64(sample_pdf()),
        "pages": "16-17", "output": "markdown"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == ("# Page 16\n\n![](images/16_0.png)\n\nBody of 16.\n\n<--- Page Split --->\n\n"
                                "# Page 17\n\n![](images/17_0.png)\n\nBody of 17.")
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(sample_pdf()), "pages": "1",
                                           "dpi": 72}, timeout=60)
    assert r.status_code == 200, r.text
    assert image_size_of(image_url_of(grounded.requests[-1])) == (610, 800)


def test_include_images_returns_figure_crops(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("s.pdf", sample_pdf(), "application/pdf")},
                   data={"pages": "1", "include_images": "true"}, timeout=60)
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    (crop,) = page["images"]
    assert crop["name"] == "images/1_0.png"
    # box [0, 100, 499, 499] on a 1220 x 1600 page: x 0..609.4, y 160.2..799.2 -> 609 x 639 px
    assert image_size_of("x," + crop["image_base64"]) == (609, 639)


def test_length_is_reported_per_page(gateway: str, upstream: FakeUpstream) -> None:
    """A max_tokens the client chose: a cut answer is reported, not read again (the recovery
    of answers cut at the default is tests/api/test_recovery.py's)."""
    upstream.finish_reason = "length"
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("s.pdf", sample_pdf(), "application/pdf")},
                   data={"pages": "1-2", "output": "json", "max_tokens": "50"}, timeout=60)
    body = r.json()
    assert body["finish_reason"] == "length" and len(upstream.requests) == 2
    assert len(body["warnings"]) == 2 and all("repetition" in w for w in body["warnings"])
    assert all(p["warning"] and p["quality"]["flags"] == ["truncated"] for p in body["pages"])


def test_pdf_stream_page_by_page(gateway: str, grounded: FakeUpstream) -> None:
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("s.pdf", sample_pdf(),
                      "application/pdf")}, data={"pages": "2-3"}, timeout=60) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert [(p["type"], p.get("page")) for p in payloads if p["type"] != "text"] == [
        ("page", 2), ("page_end", 2), ("page", 3), ("page_end", 3), ("done", None)]
    assert payloads[0]["width"] == 1240
    assert "".join(p["text"] for p in payloads) == SPLIT.join(GROUNDED.format(page=n) for n in (2, 3))
    assert payloads[-1]["usage"]["prompt_tokens"] == 2 * 278


def test_batch_mixes_pdfs_and_images(gateway: str, grounded: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"document_base64": b64(sample_pdf()), "pages": "1-2"},
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
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("d.pdf", data or sample_pdf(),
                   "application/pdf")}, data=fields, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert upstream.requests == []


FILE_MESSAGES = [{"role": "user", "content": [
    {"type": "file", "file": {"filename": "spec.pdf",
                              "file_data": "data:application/pdf;base64," + b64(sample_pdf())}},
    {"type": "text", "text": "Free OCR."}]}]


def test_openai_file_part_is_expanded_per_page(gateway: str, grounded: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused")
    completion = client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR",
                                                messages=FILE_MESSAGES, extra_body={"pages": "4-6"})
    expected = SPLIT.join(GROUNDED.format(page=n) for n in (4, 5, 6))
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


@pytest.mark.parametrize("route", ["/ocr/file", "/v1/chat/completions"])
def test_pages_keep_their_order_when_page_one_finishes_last(gateway_server, grounded: FakeUpstream,
                                                            route: str) -> None:
    """Pages run concurrently; the upstream holds page 1 until pages 2 and 3 are done (as counted
    by the gateway itself), and the answer still lists 1, 2, 3. (Streams go page by page.)"""
    from tests.helpers import metric

    url, app = gateway_server
    before = metric(app, "openai_ocr_pages_total")
    released = threading.Event()

    def may_answer(body: dict) -> bool:
        if page_of_width(image_size_of(image_url_of(body))[0]) != 1:
            return True
        if metric(app, "openai_ocr_pages_total") >= before + 2:
            released.set()
        return released.is_set()

    grounded.answer_order = may_answer
    if route == "/ocr/file":
        r = httpx.post(f"{url}{route}", files={"file": ("s.pdf", sample_pdf(), "application/pdf")},
                       data={"pages": "1-3", "output": "json"}, timeout=60)
        assert r.status_code == 200, r.text
        assert [p["index"] for p in r.json()["pages"]] == [1, 2, 3]
        text = r.json()["text"]
    else:
        r = httpx.post(f"{url}{route}", json={"model": "deepseek-ai/DeepSeek-OCR", "messages": FILE_MESSAGES,
                                              "pages": "1-3"}, timeout=60)
        assert r.status_code == 200, r.text
        text = r.json()["choices"][0]["message"]["content"]
    assert released.is_set(), "page 1 was not the last to finish"
    assert text == SPLIT.join(GROUNDED.format(page=n) for n in (1, 2, 3))
