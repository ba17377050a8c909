"""`POST /v1/ocr` through the real `mistralai` SDK pointed at the gateway."""

from __future__ import annotations

import httpx
import pytest

from openai_ocr.service.mistral_ocr import one_based_pages
from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, png_bytes, require, sample_pdf

mistralai = require("mistralai", "the dev extra")

REPLY = ("<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Spec\n\n"
         "<|ref|>image<|/ref|><|det|>[[0, 100, 499, 499]]<|/det|>\n\n"
         "<|ref|>text<|/ref|><|det|>[[100, 600, 899, 700]]<|/det|>\nBody.")


@pytest.mark.parametrize("pages, spec", [([0, 2], [1, 3]), ("0-2,5", "1-3,6"), ("4-", "5-"),
                                          (None, None), ([], None)])
def test_zero_based_pages_become_one_based(pages, spec) -> None:
    assert one_based_pages(pages) == spec


def test_mistral_sdk_pdf_with_images(gateway: str, upstream: FakeUpstream) -> None:
    from mistralai.client import Mistral

    upstream.default_reply = REPLY
    client = Mistral(api_key="unused", server_url=gateway)
    response = client.ocr.process(
        model="deepseek-ai/DeepSeek-OCR",
        document={"type": "document_url",
                  "document_url": "data:application/pdf;base64," + b64(sample_pdf())},
        pages=[1, 2], include_image_base64=True)
    assert [p.index for p in response.pages] == [1, 2]
    page = response.pages[0]
    assert page.markdown == "# Spec\n\n![](images/2_0.png)\n\nBody."
    assert page.dimensions is not None
    assert (page.dimensions.width, page.dimensions.height, page.dimensions.dpi) == (1240, 1600, 144)  # page 2
    (image,) = page.images
    assert image.id == "images/2_0.png"
    assert (image.top_left_x, image.bottom_right_x) == (0, 619)  # 499 / 999 * 1240 = 619.4
    assert isinstance(image.image_base64, str) and image.image_base64.startswith("data:image/png;base64,")
    assert response.usage_info.pages_processed == 2
    assert len(upstream.requests) == 2


def test_mistral_image_url_and_errors(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/v1/ocr", json={
        "model": SERVED_NAME, "document": {"type": "image_url",
                                   "image_url": "data:image/png;base64," + b64(png_bytes())}})
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    assert page["index"] == 0 and page["markdown"] == "Hello\nworld" and page["images"] == []
    r = httpx.post(f"{gateway}/v1/ocr", json={
        "document": {"type": "document_url", "document_url": "https://example.com/a.pdf"}})
    assert r.status_code == 400 and "data: URLs" in r.json()["error"]["message"]
    r = httpx.post(f"{gateway}/v1/ocr", json={"document": {"type": "file", "file_id": "x"}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "file_id"  # nobody uploaded x
    r = httpx.post(f"{gateway}/v1/ocr", json={"document": {"type": "file"}})
    assert r.status_code == 422
