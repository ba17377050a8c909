"""`output` pdf, hocr and alto on every route that answers OCR: the gateway in front of the fake
upstream, scripted with grounding output, so every block's box is known. Expected positions
come from the script (grid value / 999 x page size), the files are read back with poppler,
the ALTO schema and the hOCR checker."""

from __future__ import annotations

import glob
import io
import json
import math
import os
import re
import tempfile
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.archival import (
    alto_errors,
    alto_words,
    hocr_report,
    hocr_words,
    near,
    pdf_info,
    pdf_page_texts,
    pdf_pngs,
    pdf_raw_text,
    pdf_words,
)
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, jsonl, openai_client, require, text_pdf, wait_until_done

require("pikepdf", "the pdf extra")

BLOCKS = [("title", (100, 50, 400, 90), "Quarterly"), ("text", (100, 150, 300, 190), "Invoice"),
          ("text", (500, 150, 800, 190), "Marmalade"), ("text", (100, 600, 250, 640), "2041")]
SCRIPT = "\n\n".join(f"<|ref|>{label}<|/ref|><|det|>[[{', '.join(map(str, box))}]]<|/det|>\n"
                     f"{'# ' if label == 'title' else ''}{text}" for label, box, text in BLOCKS)
SIZE = 999
"""The page is 999 x 999 pixels at 72 dpi: a grid value is a pixel and a point."""


def page_png(size: int = SIZE) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), "white").save(out, format="PNG", dpi=(72, 72))
    return out.getvalue()


def tokens(text: str) -> list[tuple[str, float]]:
    """A tokenizer's cut of the answer (tags alone, words with their leading space), each
    token sure but "Invoice" (logprob -1)."""
    cut = [t for t in re.split(r"(<\|/?(?:ref|det)\|>|\s*[A-Za-z]+|\s*\d+|[^\sA-Za-z\d])", text) if t]
    return [(t, -1.0 if t.strip() == "Invoice" else -0.01) for t in cut]


def post_file(url: str, output: str, data: bytes, name: str = "scan.png", **fields: Any) -> httpx.Response:
    return httpx.post(f"{url}/ocr/file", files={"file": (name, data)}, data={"output": output, **fields},
                      timeout=120)


def expected(box: tuple[int, int, int, int], size: int = SIZE) -> tuple[float, ...]:
    return tuple(v / 999 * size for v in box)


def test_pdf_is_the_file_itself_each_word_where_the_model_put_it(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = SCRIPT
    r = post_file(gateway, "pdf", page_png())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith('attachment; filename="scan.ocr.pdf"')
    assert r.headers["x-ocr-pages"] == "1" and r.headers["x-ocr-pdf-a"] == "2b"
    assert r.headers["x-ocr-finish-reason"] == "stop" and int(r.headers["content-length"]) == len(r.content)
    assert pdf_raw_text(r.content).split() == [text for _, _, text in BLOCKS]  # drawn in reading order
    words = {w.text: w for w in pdf_words(r.content)}
    assert sorted(words) == sorted(text for _, _, text in BLOCKS)
    for _, box, text in BLOCKS:
        word = words[text]
        x1, y1, x2, y2 = expected(box)
        assert near((word.box[0], word.box[2]), (x1, x2), 1.5), (word, box)
        assert near(((word.box[1] + word.box[3]) / 2,), ((y1 + y2) / 2,), 3.0), (word, box)


def test_hocr_and_alto_over_the_json_route_with_the_engines_confidence(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = SCRIPT
    upstream.logprobs_fn = tokens
    for output, read in (("hocr", hocr_words), ("alto", alto_words)):
        r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(page_png()), "output": output}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/xhtml+xml" if output == "hocr" else "application/xml")
        assert r.headers["content-disposition"].startswith(
            f'attachment; filename="document.{"hocr" if output == "hocr" else "alto.xml"}"')
        text = r.text
        if output == "hocr":
            assert hocr_report(text).is_valid()
        else:
            assert alto_errors(text) == []
        words = read(text)
        assert [w.text for w in words] == [t for _, _, t in BLOCKS]
        for word, (_, box, _) in zip(words, BLOCKS, strict=True):
            assert near(word.box, expected(box), 1.0), (output, word, box)
        invoice = next(w for w in words if w.text == "Invoice")
        others = [w.confidence for w in words if w.text != "Invoice"]
        assert invoice.confidence is not None and all(c is not None for c in others)
        assert invoice.confidence == pytest.approx(math.exp(-1.0), abs=0.01)  # its block's, as scripted
        assert invoice.confidence < min(c for c in others if c is not None)
    assert upstream.requests[-1]["logprobs"] is True  # asked for, as with output=json


def test_a_pdf_keeps_its_own_pages_and_text(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = SCRIPT
    source = text_pdf([(600, 800, [f"Own text of page {n}"]) for n in (1, 2, 3)])
    r = httpx.post(f"{gateway}/ocr", json={"document_base64": b64(source), "output": "pdf", "pages": "3,1"},
                   timeout=120)
    assert r.status_code == 200, r.text
    assert "x-ocr-pdf-a" not in r.headers  # a PDF's pages are kept as they are: no claim made
    texts = pdf_page_texts(r.content)
    assert len(texts) == 2 and "Own text of page 3" in texts[0] and "Own text of page 1" in texts[1]
    assert all("Marmalade" in t for t in texts)
    original = pdf_pngs(source)
    assert pdf_pngs(r.content) == [original[2], original[0]]


@pytest.mark.parametrize("output", ["pdf", "hocr", "alto"])
def test_the_stream_and_the_legacy_batch_say_where_files_are_answered(gateway: str, upstream: FakeUpstream,
                                                                     output: str) -> None:
    r = httpx.post(f"{gateway}/ocr/stream", files={"file": ("p.png", page_png(64))}, data={"output": output})
    assert r.status_code == 400 and r.json()["error"]["param"] == "output" and "/ocr/file" in r.text
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"image_base64": b64(page_png(64)), "output": output}, {"image_base64": b64(page_png(64))}]}, timeout=60)
    assert [x["status_code"] for x in r.json()["results"]] == [400, 200]
    assert "Batch API" in r.json()["results"][0]["error"]["message"]


def temporary_files() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "openai-ocr-*.*")))


def test_no_file_is_left_behind(gateway: str, upstream: FakeUpstream) -> None:
    before = temporary_files()
    upstream.default_reply = SCRIPT
    assert post_file(gateway, "pdf", page_png(200)).status_code == 200
    assert post_file(gateway, "alto", b"not an image").status_code == 400
    upstream.reply_fn = lambda body: ("loop " * 50, "length")
    assert post_file(gateway, "hocr", page_png(200)).status_code == 200
    assert temporary_files() - before == set()


def test_batch_lines_store_their_files_for_download(batch_gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = SCRIPT
    client = openai_client(batch_gateway)
    scan = client.files.create(file=("scan.png", page_png()), purpose="user")
    lines = [{"custom_id": output, "method": "POST", "url": "/ocr",
              "body": {"file_id": scan.id, "output": output}} for output in ("pdf", "hocr", "alto")]
    lines.append({"custom_id": "json", "method": "POST", "url": "/ocr", "body": {"file_id": scan.id, "output": "json"}})
    batch_input = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=batch_input.id, endpoint="/ocr", completion_window="24h")
    done = wait_until_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 4
    answers = {line["custom_id"]: line["response"]["body"]
               for line in map(json.loads, client.files.content(done.output_file_id).text.splitlines())}
    assert answers["json"]["output_file"] is None and answers["json"]["pages"]
    for output, suffix, media in (("pdf", ".ocr.pdf", "application/pdf"), ("hocr", ".hocr", "application/xhtml+xml"),
                                  ("alto", ".alto.xml", "application/xml")):
        made = answers[output]["output_file"]
        assert made["filename"] == f"scan{suffix}" and made["format"] == output and made["media_type"] == media
        assert answers[output]["text"] == "" and answers[output]["page_count"] == 1
        r = httpx.get(f"{batch_gateway}/v1/files/{made['id']}/content")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert len(r.content) == made["bytes"]
        if output == "pdf":
            assert made["pdfa"] == "2b" and pdf_raw_text(r.content).split() == [t for _, _, t in BLOCKS]
            assert pdf_info(r.content)["Pages"] == "1"
        elif output == "hocr":
            assert [w.text for w in hocr_words(r.text)] == [t for _, _, t in BLOCKS]
        else:
            assert alto_errors(r.text) == [] and [w.text for w in alto_words(r.text)] == [t for _, _, t in BLOCKS]
    listed = {f.filename for f in client.files.list(purpose="batch_output").data}
    assert {"scan.ocr.pdf", "scan.hocr", "scan.alto.xml"} <= listed
