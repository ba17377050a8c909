"""Real OCR into archival files: the embedded lite engine reads a rendered two-column page and
a three-page scanned PDF, each answered as pdf, hocr and alto, read back with poppler, the
hOCR checker and the ALTO schema. Truth is what Pillow drew and where it drew it."""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.settings import load_settings
from tests.archival import (
    alto_errors,
    alto_words,
    hocr_report,
    hocr_words,
    inside,
    pdf_info,
    pdf_page_texts,
    pdf_raw_text,
    pdf_words,
)
from tests.helpers import require, serve

require("rapidocr", "the lite extra")
require("pikepdf", "the pdf extra")

TITLE = "Harbour Notes"
LEFT = ["Cranes unload timber", "every morning before", "the tide turns and", "the boats set out", "for the open sea"]
RIGHT = ["Lanterns glow along", "the northern quay", "while gulls circle", "over the fishing", "fleet at anchor"]
COLUMNS = {"left": (20, 110, 480, 400), "right": (510, 110, 980, 400)}
"""Where each column's text is drawn, in pixels (a margin around the ink)."""
PAGES = [["Page one speaks of apples", "and quiet orchards"], ["Page two counts copper", "coins inside jars"],
         ["Page three ends with", "seven silver bells"]]


def two_columns() -> tuple[bytes, dict[str, tuple[int, int, int, int]]]:
    """The page (a title over two columns), and the box of each word where Pillow drew it."""
    font = ImageFont.load_default(size=28)
    image = Image.new("RGB", (1000, 440), "white")
    draw = ImageDraw.Draw(image)
    draw.text((300, 20), TITLE, font=ImageFont.load_default(size=48), fill="black")
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for x, lines in ((40, LEFT), (530, RIGHT)):
        for n, line in enumerate(lines):
            y = 130 + n * 50
            draw.text((x, y), line, fill="black", font=font)
            at = x
            for word in line.split():
                boxes.setdefault(word, draw.textbbox((at, y), word, font=font))
                at = draw.textbbox((at, y), word + " ", font=font)[2]
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(144, 144))
    return out.getvalue(), boxes


def scanned_pdf() -> bytes:
    font = ImageFont.load_default(size=30)
    pages = []
    for lines in PAGES:
        image = Image.new("RGB", (700, 220), "white")
        for n, line in enumerate(lines):
            ImageDraw.Draw(image).text((40, 50 + n * 60), line, fill="black", font=font)
        pages.append(image)
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=144)
    return out.getvalue()


PAGE, DRAWN = two_columns()
SCAN = scanned_pdf()


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text.lower())


def read_as(found: list[str], lines: list[str]) -> bool:
    """Whether OCR found the drawn text, in its order, allowing the odd misread word (the lite
    engine reads "in a" as "ina" in some fonts): 90 % of the words matched in sequence."""
    truth = words(" ".join(lines))
    matched = sum(b.size for b in difflib.SequenceMatcher(None, found, truth, autojunk=False).get_matching_blocks())
    return matched >= 0.9 * len(truth) and len(found) <= len(truth) + 2


def columns_of(word: str) -> list[str]:
    """The columns a word was drawn in (some, such as "the", are in both)."""
    return [name for name, lines in (("left", LEFT), ("right", RIGHT)) if word.lower() in words(" ".join(lines))]


@pytest.fixture(scope="module")
def lite_server() -> Iterator[str]:
    with serve(load_settings(overrides={"engine": {"kind": "lite"}})) as (url, _):
        yield url


def read(url: str, data: bytes, name: str, output: str, **fields: str) -> httpx.Response:
    r = httpx.post(f"{url}/ocr/file", files={"file": (name, data)}, data={"output": output, **fields}, timeout=300)
    assert r.status_code == 200, r.text
    return r


def test_two_columns_as_a_searchable_pdf(lite_server: str) -> None:
    pdf = read(lite_server, PAGE, "columns.png", "pdf").content
    raw = words(pdf_raw_text(pdf))
    assert read_as(raw, [TITLE, *LEFT, *RIGHT])  # the text, the left column before the right
    for word in pdf_words(pdf):
        if word.text.lower() in words(TITLE):
            continue
        pixels = tuple(v * 2 for v in word.box)  # 144 dpi: a point is two pixels
        assert any(inside(pixels, COLUMNS[c]) for c in columns_of(word.text)), word  # its column, never across
        truth = DRAWN.get(word.text)
        if truth and len(columns_of(word.text)) == 1:  # and on its own line, as spread over the block
            assert abs((pixels[1] + pixels[3]) / 2 - (truth[1] + truth[3]) / 2) < 45, (word, truth)


def test_two_columns_as_hocr_and_alto(lite_server: str) -> None:
    hocr = read(lite_server, PAGE, "columns.png", "hocr").text
    assert hocr_report(hocr).is_valid()
    alto = read(lite_server, PAGE, "columns.png", "alto").text
    assert alto_errors(alto) == []
    for found in (hocr_words(hocr), alto_words(alto)):
        assert read_as(words(" ".join(w.text for w in found)), [TITLE, *LEFT, *RIGHT])
        for word in found[len(TITLE.split()):]:
            assert any(inside(word.box, COLUMNS[c]) for c in columns_of(word.text)), word
            assert word.confidence is None or 0 < word.confidence <= 1


def test_a_three_page_scan_through_every_output(lite_server: str) -> None:
    pdf = read(lite_server, SCAN, "scan.pdf", "pdf").content
    assert pdf_info(pdf)["Pages"] == "3"
    texts = pdf_page_texts(pdf)
    for text, lines in zip(texts, PAGES, strict=True):
        assert read_as(words(text), lines)  # each page's text on that page
        assert set(words(text)) >= set(words(lines[0])[2:])  # its own key words (apples, copper, ...)
    assert pdf_words(pdf)[0].page == 1
    hocr = read(lite_server, SCAN, "scan.pdf", "hocr", pages="2-3").text
    assert hocr_report(hocr).is_valid()
    assert hocr.count('class="ocr_page"') == 2 and 'ppageno 1' in hocr and 'ppageno 2' in hocr
    found = hocr_words(hocr)
    for n, lines in ((1, PAGES[1]), (2, PAGES[2])):
        assert read_as(words(" ".join(w.text for w in found if w.page == n)), lines)
    alto = read(lite_server, SCAN, "scan.pdf", "alto").text
    assert alto_errors(alto) == [] and alto.count("<Page ") == 3
    for n, lines in enumerate(PAGES, start=1):
        assert read_as(words(" ".join(w.text for w in alto_words(alto) if w.page == n)), lines)
