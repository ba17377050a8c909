"""The archival files, read back by independent tools: poppler (pdftotext -bbox-layout,
pdftoppm, pdfinfo, pdffonts) for the searchable PDF, the ALTO 4.4 XSD for ALTO, the hOCR
specification's checker for hOCR. Pages are PageResults as the recognizer makes them."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from openai_ocr.ocr.models import BlockConfidence, BlockResult, Confidence, PageResult, Usage, Word
from openai_ocr.outputs.writer import write_archive
from tests.archival import (
    alto_errors,
    alto_words,
    hocr_report,
    hocr_words,
    inside,
    near,
    pdf_fonts,
    pdf_info,
    pdf_page_texts,
    pdf_pngs,
    pdf_text,
    pdf_words,
    pdf_xmp,
)
from tests.helpers import pdf_of, require, text_frames_tiff, text_pdf

require("pikepdf", "the pdf extra")
require("ocrmypdf", "the pdf extra")

WORDS = [("Invoice", (100, 80, 300, 120)), ("2041", (320, 80, 420, 120)),
         ("Grüße", (100, 200, 260, 240)), ("naïve", (280, 200, 420, 240)), ("ﬁnal", (440, 200, 540, 240)),
         ("Ελληνικά", (100, 300, 330, 340)), ("日本語", (350, 300, 470, 340))]


def result(words: list[tuple[str, tuple[float, float, float, float]]], width: int, height: int,
           number: int = 1, confidence: float = 0.87) -> PageResult:
    """A page whose one block holds `words` at their pixel boxes, as the engine found them."""
    blocks = [BlockResult(label="text", boxes_px=[(min(b[0] for _, b in words), min(b[1] for _, b in words),
                                                   max(b[2] for _, b in words), max(b[3] for _, b in words))],
                          text=" ".join(t for t, _ in words), confidence=BlockConfidence(average=confidence),
                          words=[Word(text=t, box_px=b, confidence=confidence) for t, b in words])]
    return PageResult(index=number, width=width, height=height, text="", markdown="", blocks=blocks,
                      finish_reason="stop", usage=Usage(), confidence=Confidence(average=confidence))


def write(tmp_path: Path, output: str, pages: list[PageResult], source: bytes, kind: str) -> bytes:
    path = tmp_path / f"out.{output}"
    made = write_archive(output, pages, str(path), source=source, kind=kind, name="scan.png",
                         model="deepseek-ai/DeepSeek-OCR", version="test", dpi=144.0)
    assert made["bytes"] == path.stat().st_size > 0
    return path.read_bytes()


def png(width: int, height: int, dpi: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def test_each_word_sits_at_its_box_and_reads_back_as_written(tmp_path: Path) -> None:
    """An image at 144 dpi: pixel / 2 = points. pdftotext finds every word, its text as the
    OCR wrote it (ligature, accents, Greek, CJK), within a few points of its box."""
    pdf = write(tmp_path, "pdf", [result(WORDS, 1000, 600)], png(1000, 600, 144), "image")
    found = pdf_words(pdf)
    assert [w.text for w in found] == [t for t, _ in WORDS]
    for word, (_, box) in zip(found, WORDS, strict=True):
        x1, y1, x2, y2 = (v / 2 for v in box)
        assert near((word.box[0], word.box[2]), (x1, x2), 1.0), (word, box)  # the word's width: Tz
        assert near(((word.box[1] + word.box[3]) / 2,), ((y1 + y2) / 2,), 3.0), (word, box)
        assert y1 - 3 <= word.box[1] and word.box[3] <= y2 + 3, (word, box)
    assert pdf_info(pdf)["Page size"].startswith("500 x 300 pts")
    assert all(t in pdf_text(pdf) for t, _ in WORDS)


def test_image_documents_are_pdfa_2b_with_embedded_fonts(tmp_path: Path) -> None:
    pdf = write(tmp_path, "pdf", [result(WORDS[:2], 400, 300)], png(400, 300, 96), "image")
    info = pdf_info(pdf)
    assert info["PDF version"] == "1.7" and info["Pages"] == "1"
    fonts = pdf_fonts(pdf)
    assert fonts and all("yes" in row[-5:-2] for row in fonts), fonts  # emb yes for every font
    import pikepdf  # structure only; what it claims is read with poppler below

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        intent = doc.Root.OutputIntents[0]
        assert intent.S == "/GTS_PDFA1" and int(intent.DestOutputProfile.N) == 3
        assert "/Encrypt" not in doc.trailer and "/ID" in doc.trailer
    xmp = pdf_xmp(pdf)
    pdfaid = "{http://www.aiim.org/pdfa/ns/id/}"
    root = ET.fromstring(xmp[xmp.index("<x:xmpmeta"):xmp.index("</x:xmpmeta>") + len("</x:xmpmeta>")])
    claims = {e.tag: e.text for e in root.iter() if e.tag.startswith(pdfaid)}
    assert claims == {f"{pdfaid}part": "2", f"{pdfaid}conformance": "B"}, xmp
    dates = {e.tag.rsplit("}", 1)[1] for e in root.iter() if e.tag.endswith(("CreateDate", "ModifyDate"))}
    assert dates == {"CreateDate", "ModifyDate"} and "CreationDate" in info  # the Info dates are in the XMP too


ANCHOR_AT = {0: (72, 728), 90: (300, 100), 180: (500, 700), 270: (300, 700)}
"""Where the text starts in user space, so that it is on the page at every rotation."""


def anchor_pdf(rotate: int, crop: tuple[float, float, float, float] | None) -> bytes:
    """A page shown rotated by `rotate` (clockwise), its text drawn turned the other way, so it
    reads upright as shown (a scan stored sideways, put right by /Rotate)."""
    import math

    import pikepdf

    cos, sin = round(math.cos(math.radians(rotate))), round(math.sin(math.radians(rotate)))
    x, y = ANCHOR_AT[rotate]
    stream = f"BT /F1 20 Tf {cos} {sin} {-sin} {cos} {x} {y} Tm (ANCHOR WORDS) Tj ET".encode()
    with pikepdf.open(io.BytesIO(pdf_of([(600, 800, stream)], font=True))) as doc:
        page = doc.pages[0].obj
        page.Rotate = rotate
        if crop:
            page.CropBox = list(crop)
        out = io.BytesIO()
        doc.save(out)
    return out.getvalue()


def ink_box(pdf: bytes, dpi: float = 144) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The page as the server renders it (pdfium), and the box of its ink in that image."""
    doc = pdfium.PdfDocument(pdf)
    image = doc[0].render(scale=dpi / 72).to_pil().convert("L")
    box = ImageChops.invert(image).getbbox()
    doc.close()
    assert box is not None
    return box, image.size


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
@pytest.mark.parametrize("crop", [None, (50, 80, 560, 770)], ids=["media", "cropped"])
def test_the_text_lands_on_the_visible_text_of_rotated_and_cropped_pages(
        tmp_path: Path, rotate: int, crop: tuple[float, float, float, float] | None) -> None:
    """The page rendered as for OCR, its ink found in the pixels and given as the word's box:
    pdftotext places our invisible word where it places the page's own visible one."""
    source = anchor_pdf(rotate, crop)
    (x1, y1, x2, y2), (width, height) = ink_box(source)
    page = result([("ANCHOR", (x1, y1, x1 + (x2 - x1) * 0.55, y2)), ("WORDS", (x1 + (x2 - x1) * 0.6, y1, x2, y2))],
                  width, height)
    pdf = write(tmp_path, "pdf", [page], source, "pdf")
    visible = [w for w in pdf_words(source) if w.text in ("ANCHOR", "WORDS")]
    everything = pdf_words(pdf)
    ours = [w for w in everything if w not in visible and w.text in ("ANCHOR", "WORDS")]
    assert [w.text for w in ours] == ["ANCHOR", "WORDS"], everything
    for mine, theirs in zip(ours, visible, strict=True):
        centre = lambda b: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)  # noqa: E731
        assert near(centre(mine.box), centre(theirs.box), 6.0), (rotate, crop, mine, theirs)


def test_a_pdfs_own_pages_and_text_survive(tmp_path: Path) -> None:
    source = text_pdf([(600, 800, [f"Original page {n}", "The quick brown fox"]) for n in (1, 2, 3)])
    pages = [result([("added", (100, 1000, 300, 1040))], 1200, 1600, number=n) for n in (3, 1)]
    pdf = write(tmp_path, "pdf", pages, source, "pdf")
    texts = pdf_page_texts(pdf)
    assert len(texts) == 2  # the selection, in its order
    assert "Original page 3" in texts[0] and "Original page 1" in texts[1]
    assert all("The quick brown fox" in t and "added" in t for t in texts)
    before, after = pdf_pngs(source), pdf_pngs(pdf)
    assert after == [before[2], before[0]]  # drawn exactly as before: the text layer is invisible
    import pikepdf

    with pikepdf.open(io.BytesIO(source)) as original, pikepdf.open(io.BytesIO(pdf)) as made:
        for theirs, ours in zip([original.pages[2], original.pages[0]], made.pages, strict=True):
            kept = [s.read_bytes() for s in ours.obj.Contents]
            assert theirs.obj.Contents.read_bytes() in kept  # the content stream as it was


def test_tiff_frames_become_pages_at_their_resolution(tmp_path: Path) -> None:
    frames = text_frames_tiff(4)
    pages = [result([(f"FRAME{n}", (5, 10, 150, 30))], 200 + n, 40, number=n) for n in (2, 4)]
    pdf = write(tmp_path, "pdf", pages, frames, "frames")
    assert pdf_info(pdf)["Pages"] == "2"
    assert [w.text for w in pdf_words(pdf)] == ["FRAME2", "FRAME4"]


PAGES = [
    PageResult(index=1, width=1000, height=800, text="", markdown="", finish_reason="stop", usage=Usage(),
               confidence=Confidence(average=0.9), blocks=[
                   BlockResult(label="title", boxes_px=[(100, 50, 600, 100)], text="# Annual report"),
                   BlockResult(label="text", boxes_px=[(100, 150, 900, 300)],
                               text="Revenue grew in every region while costs stayed flat across the year"),
                   BlockResult(label="table", boxes_px=[(100, 350, 900, 500)],
                               text="<table><tr><td>Region</td><td>Sales</td></tr><tr><td>North</td>"
                                    "<td>12</td></tr></table>"),
                   BlockResult(label="image", boxes_px=[(100, 520, 400, 700)], text=""),
                   BlockResult(label="image_caption", boxes_px=[(100, 710, 400, 740)], text="Figure 1: map"),
                   BlockResult(label="page_number", boxes_px=[(480, 760, 520, 790)], text="7")]),
    result(WORDS[:3], 1000, 800, number=2, confidence=0.42),
]


def test_hocr_holds_every_word_with_its_box_and_passes_the_spec_checker(tmp_path: Path) -> None:
    text = write(tmp_path, "hocr", PAGES, b"", "image").decode()
    report = hocr_report(text)
    assert report.is_valid(), [str(i) for i in report.items]
    words = hocr_words(text)
    assert [w.text for w in words if w.page == 1] == ("Annual report Revenue grew in every region while costs "
                                                       "stayed flat across the year Region Sales North 12 "
                                                       "Figure 1: map 7").split()
    second = [w for w in words if w.page == 2]
    assert [(w.text, w.box, w.confidence) for w in second] == [(t, b, 0.42) for t, b in WORDS[:3]]
    for word in words:
        assert word.box[0] < word.box[2] and word.box[1] < word.box[3]
    for cls in ('class="ocr_title"', 'class="ocr_table"', 'class="ocr_image"', 'class="ocr_caption"',
                'class="ocr_pageno"', 'class="ocr_par"', 'class="ocr_carea"', 'class="ocr_line"'):
        assert cls in text, cls


def test_alto_validates_against_its_schema_and_holds_every_word(tmp_path: Path) -> None:
    text = write(tmp_path, "alto", PAGES, b"", "image").decode()
    assert alto_errors(text) == []
    words = alto_words(text)
    second = [w for w in words if w.page == 2]
    assert [(w.text, w.box, w.confidence) for w in second] == [(t, b, 0.42) for t, b in WORDS[:3]]
    first = [w for w in words if w.page == 1]
    assert " ".join(w.text for w in first).startswith("Annual report Revenue grew")
    assert all(inside(w.box, (0, 0, 1000, 800)) for w in first)
    assert 'TYPE="table"' in text and "<Illustration" in text and 'LABEL="heading"' in text
    assert 'TAGREFS="LAYOUT_TITLE"' in text and 'TAGREFS="LAYOUT_PAGE_NUMBER"' in text and 'PC="0.900"' in text


def test_text_that_xml_cannot_hold_is_dropped_not_fatal(tmp_path: Path) -> None:
    page = result([("bad\x00\x1b", (10, 10, 100, 40)), ("ok", (120, 10, 200, 40))], 400, 100)
    for output in ("hocr", "alto"):
        text = write(tmp_path, output, [page], b"", "image").decode()
        assert [w.text for w in (hocr_words if output == "hocr" else alto_words)(text)] == ["bad", "ok"]
    pdf = write(tmp_path, "pdf", [page], png(400, 100, 72), "image")
    assert [w.text for w in pdf_words(pdf)] == ["bad", "ok"]


def test_a_page_drawn_with_text_keeps_that_text_on_its_own_pixels(tmp_path: Path) -> None:
    """Sanity of the reader itself: the words drawn on an image are not text to pdftotext;
    only the OCR layer is."""
    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).text((20, 60), "VISIBLE ONLY", fill="black", font=ImageFont.load_default(size=40))
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(72, 72))
    pdf = write(tmp_path, "pdf", [result([("layer", (20, 60, 200, 100))], 600, 200)], out.getvalue(), "image")
    assert [w.text for w in pdf_words(pdf)] == ["layer"]
