"""The lite engine's words: Tesseract's word boxes and confidences, PP-OCR's line score split
by character proportions; inside their blocks, joined to the blocks' text, on the routes.

Pages are drawn with Pillow, so where each word is drawn is known (`ImageDraw.textbbox`).
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.engines.lite.engine import LiteEngine
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.ocr.assembly import PageOutcome, page_result
from openai_ocr.ocr.translation import completion_result
from openai_ocr.settings import LiteSettings, Settings, load_settings
from tests.helpers import SERVED_NAME, b64, require, serve
from tests.helpers import data_url as url_of

require("rapidocr", "the lite extra")
require("tesserocr", "the lite extra")
mistralai = require("mistralai", "the dev extra")
from mistralai.client import Mistral  # noqa: E402

LINES = [["Invoice", "number", "2041"], ["Total", "due", "37.50", "EUR"], ["Thank", "you", "kindly"]]
TITLE = ["Quarterly", "Statement"]
LEFT = ["alpha is the left one", "bravo is the left two", "charlie left three", "delta is left four"]
RIGHT = ["echo is the right one", "foxtrot right two", "golf is right three", "hotel is right four"]
Box = tuple[float, float, float, float]


def drawn(lines: list[list[str]], size: int = 34) -> tuple[bytes, dict[str, Box]]:
    """A page of `lines` and where Pillow drew each word (its ink box)."""
    font = ImageFont.load_default(size=size)
    image = Image.new("RGB", (900, 120 + 110 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    where: dict[str, Box] = {}
    for row, words in enumerate(lines):
        x, y = 60, 60 + row * 110
        for word in words:
            box = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, font=font, fill="black")
            where[word] = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            x = int(box[2]) + 24
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), where


def columns_page() -> bytes:
    """A title over two columns: blocks whose boxes hold only their own words."""
    image = Image.new("RGB", (1000, 520), "white")
    draw = ImageDraw.Draw(image)
    draw.text((250, 20), " ".join(TITLE), font=ImageFont.load_default(size=48), fill="black")
    font = ImageFont.load_default(size=28)
    for i, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        draw.text((40, 130 + i * 50), left, font=font, fill="black")
        draw.text((530, 130 + i * 50), right, font=font, fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def overlap(a: Box, b: Box) -> float:
    """Intersection over union."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def body(image: bytes, prompt: str = "<|grounding|>Convert the document to markdown.", **extra: Any) -> dict[str, Any]:
    return {"model": "lite", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url_of(image)}}, {"type": "text", "text": prompt}]}], **extra}


@pytest.fixture(scope="module")
def tesseract() -> Iterator[LiteEngine]:
    engine = LiteEngine(Settings(lite=LiteSettings(workers=1, recognizer="tesseract")))
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


@pytest.fixture(scope="module")
def ppocr() -> Iterator[LiteEngine]:
    engine = LiteEngine(Settings(lite=LiteSettings(workers=1, recognizer="ppocr")))
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


def test_tesseract_word_boxes_land_on_the_drawn_words(tesseract: LiteEngine) -> None:
    image, where = drawn(LINES)
    completion = asyncio.run(tesseract.complete(body(image, logprobs=True)))
    words = completion_result(completion).words
    assert words is not None
    assert [w.text for w in words] == [w for line in LINES for w in line]  # in reading order
    for word in words:
        assert overlap(word.box, where[word.text]) > 0.7, (word, where[word.text])
        assert word.confidence is not None and 0.5 < word.confidence <= 1.0


def test_words_are_sent_only_when_asked_for(tesseract: LiteEngine) -> None:
    image, _ = drawn(LINES[:1])
    completion = asyncio.run(tesseract.complete(body(image)))
    assert completion_result(completion).words is None
    assert "words" not in completion.choices[0].model_dump()


def test_a_stream_brings_the_words_on_its_last_choice_chunk(tesseract: LiteEngine) -> None:
    image, where = drawn(LINES[:2])

    async def chunks() -> list[Any]:
        return [c async for c in tesseract.stream(body(image, "Free OCR.", logprobs=True, stream=True))]

    choices = [c.choices[0] for c in asyncio.run(chunks()) if c.choices]
    carrying = [c for c in choices if getattr(c, "words", None)]
    assert carrying == [choices[-1]] and choices[-1].finish_reason == "stop"
    assert [w["text"] for w in choices[-1].words] == [w for line in LINES[:2] for w in line]


def test_ppocr_splits_its_line_box_by_character_proportions(ppocr: LiteEngine) -> None:
    """PP-OCR scores a line as a whole: each word gets the line's score and its share of the
    line's box, which is rough but falls on the word."""
    image, where = drawn(LINES)
    words = completion_result(asyncio.run(ppocr.complete(body(image, logprobs=True)))).words
    assert words is not None and [w.text for w in words] == [w for line in LINES for w in line]
    for line in LINES:
        found = [w for w in words if w.text in line]
        assert len({w.confidence for w in found}) == 1  # one score per line
        assert all(a.box[2] <= b.box[0] for a, b in zip(found, found[1:], strict=False))  # left to right
        for word in found:
            x1, y1, x2, y2 = where[word.text]
            cx, cy = (word.box[0] + word.box[2]) / 2, (word.box[1] + word.box[3]) / 2
            assert x1 <= cx <= x2 and y1 <= cy <= y2, (word, where[word.text])


@pytest.mark.parametrize("prompt", ["<|grounding|>Convert the document to markdown.",
                                    "<|grounding|>OCR this image.", "Free OCR."])
def test_block_words_lie_inside_their_blocks_and_join_to_their_text(tesseract: LiteEngine, prompt: str) -> None:
    image = columns_page()
    result = completion_result(asyncio.run(tesseract.complete(body(image, prompt, logprobs=True))))
    page = page_result(PageOutcome(1, ImageInput(data=b"", mime="image/png", width=1000, height=520), result),
                       False, None)
    assert len(page.blocks) >= (1 if prompt == "Free OCR." else 3)
    placed = 0
    for block in page.blocks:
        assert block.words is not None and block.confidence is not None
        texts = [w.text for w in block.words]
        # joined with single spaces or the text's own line breaks, the words are the text
        assert re.fullmatch(r"(?: |\n+)".join(re.escape(t) for t in texts), block.text), (texts, block.text)
        scores = [w.confidence for w in block.words if w.confidence is not None]
        assert block.confidence.average == pytest.approx(sum(scores) / len(scores))
        assert block.confidence.minimum == min(scores)
        for word in block.words:
            if word.box_px is None:  # markup the layout added (a heading's "#"), not on the page
                assert not any(ch.isalnum() for ch in word.text), word
                continue
            placed += 1
            for x1, y1, x2, y2 in block.boxes_px or [(0, 0, 1000, 520)]:
                slack = 1000 / 999 + 1  # the block's box went through the 0..999 grid
                assert x1 - slack <= word.box_px[0] and word.box_px[2] <= x2 + slack, (word, block.boxes_px)
                assert y1 - slack <= word.box_px[1] and word.box_px[3] <= y2 + slack, (word, block.boxes_px)
    assert placed == len(" ".join(TITLE + LEFT + RIGHT).split())
    assert page.confidence is not None and 0 < page.confidence.minimum <= page.confidence.average <= 1


@pytest.fixture(scope="module")
def lite_server() -> Iterator[str]:
    with serve(load_settings(overrides={"engine": {"kind": "lite"}, "lite": {"workers": 1}})) as (url, _):
        yield url


def test_lite_json_pages_carry_words_and_confidence(lite_server: str) -> None:
    image, where = drawn(LINES)
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(image), "output": "json"}, timeout=120)
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    words = [w for block in page["blocks"] for w in block["words"]]
    assert [w["text"] for w in words if w["box_px"]] == [w for line in LINES for w in line]
    for word in (w for w in words if w["box_px"]):
        assert overlap(tuple(word["box_px"]), where[word["text"]]) > 0.7
    assert 0 < page["confidence"]["minimum"] <= page["confidence"]["average"] <= 1
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(image), "output": "json", "confidence": False},
                   timeout=120)
    (page,) = r.json()["pages"]
    assert page["confidence"] is None and all(b["words"] is None for b in page["blocks"])
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(image), "output": "json", "confidence": False,
                                               "word_boxes": True}, timeout=120)
    (page,) = r.json()["pages"]  # word boxes bring their confidences
    assert all(b["words"] for b in page["blocks"]) and page["confidence"] is not None


def test_lite_word_confidences_through_the_mistral_sdk(lite_server: str) -> None:
    image, _ = drawn(LINES)
    document = {"type": "image_url", "image_url": "data:image/png;base64," + b64(image)}
    (page,) = Mistral(api_key="unused", server_url=lite_server).ocr.process(
        model=SERVED_NAME, document=document, confidence_scores_granularity="word").pages
    assert page.confidence_scores is not None
    located = page.confidence_scores.word_confidence_scores or []
    assert [w.text for w in located if any(ch.isalnum() for ch in w.text)] == [w for line in LINES for w in line]
    for word in located:
        assert page.markdown[word.start_index:word.start_index + len(word.text)] == word.text
        assert 0 < word.confidence <= 1
