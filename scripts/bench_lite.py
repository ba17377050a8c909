#!/usr/bin/env python
"""Quality and speed of the lite engine, printed as a table.

Quality: character error rate (CER, edit distance / reference length, whitespace collapsed)
on synthetic A4 pages rendered at 150 dpi with known text (several fonts and sizes, a
degraded "scan" copy of each, two-column pages whose column order is checked, also in a
copy scanned 2 degrees askew, and "poor scans" of every other page) and on the
pages of a born-digital PDF with its text layer as the truth. Speed: seconds per page and
pages/s through `LiteEngine.complete` with 1 worker x 1 thread (one core) and 2 workers x
1 thread.

Every figure is given for the configured engine and, as the baseline in the same run, for
the engine with `recognizer = "ppocr"` (the PP-OCRv6 recogniser reads every line).

    python scripts/bench_lite.py [--quick] [--pdf PATH] [--set FIELD=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import io
import itertools
import logging
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from prometheus_client import CollectorRegistry

from openai_ocr.engines.lite.engine import LiteEngine
from openai_ocr.metrics import Metrics
from openai_ocr.settings import LiteSettings, Settings

log = logging.getLogger("bench_lite")
T = TypeVar("T")

DPI = 150
A4 = (round(8.27 * DPI), round(11.69 * DPI))
PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
FONT_FILES = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "DejaVuSansMono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
}
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so what no "
    "more can out said other into some time could them these two may then do first any my now "
    "such like our over man me even most made after also did many before must through back years "
    "where much your way well down should because each just those people how too little state "
    "good very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against go "
    "came right used take three invoice total amount page section figure table report number "
    "document database system value server request response error Monday London Paris OCR API"
).split()


@dataclass
class Page:
    name: str
    group: str
    image: Image.Image
    truth: str
    lines: list[str] | None = None  # truth lines in reading order, for the column check


# ---------------------------------------------------------------- metrics

def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (insertions via a running minimum)."""
    if not a or not b:
        return max(len(a), len(b))
    bv = np.fromiter((ord(c) for c in b), dtype=np.int64, count=len(b))
    ramp = np.arange(len(b) + 1)
    prev = ramp.copy()
    for i, ch in enumerate(a, start=1):
        sub = prev[:-1] + (bv != ord(ch))
        best = np.empty_like(prev)
        best[0] = i
        best[1:] = np.minimum(prev[1:] + 1, sub)
        prev = np.minimum.accumulate(best - ramp) + ramp
    return int(prev[-1])


def cer(truth: str, text: str) -> float:
    ref, hyp = normalise(truth), normalise(text)
    return edit_distance(ref, hyp) / max(len(ref), 1)


def column_order(truth_lines: list[str], text: str) -> str:
    """"ok" when every truth line found in the output comes after the previous one.

    Lines are found by their first 20 characters; lines the OCR misread are reported as
    not found rather than counted as out of order.
    """
    out = normalise(text)
    positions = [out.find(normalise(line)[:20]) for line in truth_lines]
    found = [p for p in positions if p >= 0]
    inversions = sum(1 for a, b in itertools.pairwise(found) if b < a)
    verdict = "ok" if inversions == 0 else f"{inversions} out of order"
    missing = positions.count(-1)
    return verdict + (f" ({missing}/{len(truth_lines)} lines not found)" if missing else "")


# ---------------------------------------------------------------- pages

def fonts() -> dict[str, str | None]:
    found: dict[str, str | None] = {name: path for name, path in FONT_FILES.items() if Path(path).is_file()}
    for name in FONT_FILES.keys() - found.keys():
        log.warning("font %s not on this machine; skipped", name)
    found["Aileron(Pillow default)"] = None
    return found


def font(path: str | None, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px) if path else ImageFont.load_default(size=px)  # type: ignore[return-value]


def sentence(rng: random.Random, words: int) -> str:
    parts = [rng.choice(WORDS) for _ in range(words)]
    if rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts)), str(rng.randrange(10, 99999)))
    parts[0] = parts[0].capitalize()
    return " ".join(parts) + rng.choice([".", ".", ",", ";", ":", "?"])


def wrap(rng: random.Random, face: ImageFont.FreeTypeFont, width: int, count: int) -> list[str]:
    """`count` lines of random words, each as wide as fits in `width` pixels."""
    lines: list[str] = []
    current = ""
    while len(lines) < count:
        word = sentence(rng, 1)[:-1].lower() if rng.random() < 0.9 else str(rng.randrange(100, 9999))
        word = word + rng.choice(["", "", "", "", ",", "."])
        trial = f"{current} {word}".strip()
        if face.getlength(trial) > width and current:
            lines.append(current)
            current = word
        else:
            current = trial
    return lines


def text_page(name: str, path: str | None, pt: float, seed: int) -> Page:
    rng = random.Random(seed)
    px = round(pt * DPI / 72)
    face = font(path, px)
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    margin, step = 120, round(px * 1.5)
    title_face = font(path, px * 2)
    title = sentence(rng, 4)[:-1]
    draw.text((margin, margin), title, font=title_face, fill="black")
    y, truth = margin + px * 4, [title]
    body = wrap(rng, face, A4[0] - 2 * margin, (A4[1] - y - margin) // step)
    for i, line in enumerate(body):
        draw.text((margin, y), line, font=face, fill="black")
        truth.append(line)
        y += step + (step if i % 9 == 8 else 0)
        if y > A4[1] - margin - step:
            break
    return Page(f"{name} {pt:g}pt", "synthetic clean", image, "\n".join(truth))


def two_column_page(path: str | None, pt: float, seed: int) -> Page:
    rng = random.Random(seed)
    px = round(pt * DPI / 72)
    face, title_face = font(path, px), font(path, px * 2)
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    margin, gutter, step = 110, 50, round(px * 1.45)
    col_w = (A4[0] - 2 * margin - gutter) // 2
    title = sentence(rng, 5)[:-1]
    draw.text((margin, margin), title, font=title_face, fill="black")
    top = margin + px * 4
    rows = (A4[1] - top - margin) // step
    truth = [title]
    for col in range(2):
        x = margin + col * (col_w + gutter)
        for i, line in enumerate(wrap(rng, face, col_w, rows)):
            draw.text((x, top + i * step), line, font=face, fill="black")
            truth.append(line)
    return Page(f"two-column {pt:g}pt", "two-column", image, "\n".join(truth), truth)


def degrade(page: Page, seed: int, tilt: float = 0.6) -> Page:
    """A plausible office scan: tilt (degrees), blur, grey paper, noise, JPEG at quality 45."""
    rng = np.random.default_rng(seed)
    image = page.image.convert("L").rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    pixels = np.asarray(image, dtype=np.float32) * 0.8 + 30 + rng.normal(0, 10, (image.height, image.width))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=45)
    scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    group = "two-column scan" if page.lines else "synthetic scan"
    if abs(tilt) > 1:
        return Page(f"{page.name} scan {tilt:g} deg", group.replace("scan", "tilted scan"), scanned,
                    page.truth, page.lines)
    return Page(page.name + " scan", group, scanned, page.truth, page.lines)


def poor_scan(page: Page, seed: int) -> Page:
    """A bad scan: 1.5 degrees askew, scanned at 70% resolution, blurred, light falling off
    towards one corner, heavy noise, JPEG at quality 30."""
    rng = np.random.default_rng(seed)
    image = page.image.convert("L").rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    width, height = image.size
    image = image.resize((int(width * 0.7), int(height * 0.7)), Image.Resampling.BILINEAR)
    image = image.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1.1))
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1.0 - 0.35 * (xs / width) * (ys / height)
    pixels = np.asarray(image, dtype=np.float32) * 0.75 * light + 35 + rng.normal(0, 18, (height, width))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=30)
    scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return Page(page.name + " poor scan", "poor scan", scanned, page.truth, page.lines)


def synthetic_pages(quick: bool) -> list[Page]:
    pages = []
    faces = list(fonts().items())
    sizes = [10.0] if quick else [9.0, 11.0]
    for index, (name, path) in enumerate(faces):
        for size in sizes:
            pages.append(text_page(name, path, size, seed=index * 100 + int(size)))
    serif = FONT_FILES["DejaVuSerif"]
    pages.append(two_column_page(serif if Path(serif).is_file() else None, 10, 7))
    if not quick:
        pages.append(two_column_page(None, 11, 8))
    tilted = [degrade(p, 50 + i, tilt=-2.0) for i, p in enumerate(pages) if p.lines]
    poor = [poor_scan(p, 80 + i) for i, p in enumerate(pages[::2])]
    return pages + [degrade(p, i) for i, p in enumerate(pages)] + tilted + poor


def pdf_pages(path: Path, quick: bool) -> list[Page]:
    import pypdfium2 as pdfium

    if not path.is_file():
        log.warning("%s not found; PDF pages skipped", path)
        return []
    document = pdfium.PdfDocument(str(path))
    pages = []
    for index in range(min(len(document), 4) if quick else len(document)):
        page = document[index]
        image = page.render(scale=DPI / 72).to_pil().convert("RGB")
        pages.append(Page(f"pdf p{index + 1}", "pdf (text layer)", image, page.get_textpage().get_text_range()))
    return pages


# ---------------------------------------------------------------- real-looking pages (--layout)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


@dataclass
class LayoutPage:
    """A page with its truth: text blocks in reading order, and the cells of its table."""

    name: str
    kind: str
    image: Image.Image
    blocks: list[str]
    table: list[list[str]] | None = None

    @property
    def truth(self) -> str:
        return "\n".join(self.blocks)


class Composer:
    """Draws on an A4 page at `dpi`, coordinates given at 150 dpi, and records the truth."""

    def __init__(self, dpi: int, seed: int) -> None:
        self.dpi, self.k = dpi, dpi / 150
        self.rng = random.Random(seed)
        self.image = Image.new("RGB", (round(8.27 * dpi), round(11.69 * dpi)), "white")
        self.draw = ImageDraw.Draw(self.image)

    def face(self, name: str, pt: float) -> ImageFont.FreeTypeFont:
        path = FONT_DIR / f"{name}.ttf"
        return font(str(path) if path.is_file() else None, round(pt * self.dpi / 72))

    def text(self, x: float, y: float, text: str, face: ImageFont.FreeTypeFont, fill: str = "black") -> None:
        self.draw.text((x * self.k, y * self.k), text, font=face, fill=fill)

    def width(self, text: str, face: ImageFont.FreeTypeFont) -> float:
        return face.getlength(text) / self.k

    def step(self, face: ImageFont.FreeTypeFont) -> float:
        return face.size * 1.45 / self.k

    def column(self, x: float, y: float, width: float, bottom: float, face: ImageFont.FreeTypeFont,
               avoid: tuple[float, float, float, float] | None = None) -> tuple[list[str], float]:
        """Fill a column with running text from `y` to `bottom`; lines next to `avoid` (a box)
        are shortened so the text runs around it. Returns the lines and the y reached."""
        lines: list[str] = []
        while y + self.step(face) <= bottom:
            x1, x2 = x, x + width
            if avoid is not None and avoid[1] - 8 < y + self.step(face) and y < avoid[3] + 8:
                if avoid[0] <= x1 + 20:
                    x1 = avoid[2] + 12
                else:
                    x2 = min(x2, avoid[0] - 12)
            if x2 - x1 > 60:
                line = wrap(self.rng, face, round((x2 - x1) * self.k), 1)[0]
                self.text(x1, y, line, face)
                lines.append(line)
            y += self.step(face)
        return lines, y

    def photo(self, box: tuple[float, float, float, float]) -> None:
        """A photo-like picture: shaded gradient with shapes and noise, no text."""
        x1, y1, x2, y2 = (round(v * self.k) for v in box)
        w, h = x2 - x1, y2 - y1
        rng = np.random.default_rng(self.rng.randrange(1 << 30))
        ys, xs = np.mgrid[0:h, 0:w]
        base = 90 + 80 * (xs / w) * (1 - ys / h) + rng.normal(0, 12, (h, w))
        rgb = np.stack([base * 0.9, base * 1.0, base * 1.15], axis=-1)
        self.image.paste(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), (x1, y1))
        for _ in range(6):
            cx, cy, r = rng.integers(x1, x2), rng.integers(y1, y2), rng.integers(10, max(11, h // 5))
            shade = tuple(int(v) for v in rng.integers(20, 220, 3))
            self.draw.ellipse((max(x1, cx - r), max(y1, cy - r), min(x2, cx + r), min(y2, cy + r)), fill=shade)

    def chart(self, box: tuple[float, float, float, float]) -> None:
        """A figure of a paper: axes and bars, no text."""
        x1, y1, x2, y2 = (round(v * self.k) for v in box)
        self.draw.rectangle((x1, y1, x2, y2), outline="black", width=max(1, round(self.k)))
        bars = 7
        for i in range(bars):
            left = x1 + (x2 - x1) * (i + 0.3) / bars
            top = y2 - (y2 - y1) * self.rng.uniform(0.2, 0.9)
            self.draw.rectangle((left, top, left + (x2 - x1) * 0.5 / bars, y2), fill=(70, 90, 160))

    def rule(self, x1: float, y: float, x2: float) -> None:
        self.draw.line((x1 * self.k, y * self.k, x2 * self.k, y * self.k), fill="black", width=max(1, round(self.k)))


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def magazine_page(dpi: int, seed: int) -> LayoutPage:
    """Two columns running around a photo set across the gutter, its caption between the
    columns under it, a running header and footer."""
    c = Composer(dpi, seed)
    small, body, head = c.face("DejaVuSans", 8), c.face("DejaVuSerif", 10), c.face("DejaVuSans-Bold", 22)
    caption_face = c.face("DejaVuSans-Oblique", 8.5)
    header = "CITY MAGAZINE  November 2026"
    c.text(110, 50, header, small)
    title = words(c.rng, 4).title()
    c.text(110, 120, title, head)
    photo = (400, 620, 840, 930)
    c.photo(photo)
    caption = [words(c.rng, 7).capitalize(), words(c.rng, 6)]
    for i, line in enumerate(caption):
        c.text(620 - c.width(line, caption_face) / 2, 945 + i * c.step(caption_face), line, caption_face)
    avoid = (photo[0], photo[1], photo[2], 945 + 2 * c.step(caption_face))
    left, _ = c.column(110, 210, 485, 1620, body, avoid)
    right, _ = c.column(645, 210, 485, 1620, body, avoid)
    footer = f"{c.rng.randrange(20, 99)}  City Magazine"
    c.text(110, 1690, footer, small)
    return LayoutPage("magazine", "magazine", c.image, [header, title, *left, *right, *caption, footer])


def newspaper_page(dpi: int, seed: int, columns: int) -> LayoutPage:
    """A full-width headline over `columns` columns, a second story's headline across the
    page below them, and its columns."""
    c = Composer(dpi, seed)
    body, head, small = c.face("DejaVuSerif", 9), c.face("DejaVuSerif-Bold", 24), c.face("DejaVuSans", 8)
    blocks = []
    header = "THE DAILY RECORD  Saturday 28 November 2026"
    c.text(90, 45, header, small)
    c.rule(90, 75, 1150)
    blocks.append(header)
    y = 100
    for story, cols in enumerate((columns, columns + 1 if columns < 4 else columns)):
        headline = words(c.rng, 5).title()
        c.text(90, y, headline, head)
        blocks.append(headline)
        gutter = 30
        width = (1060 - gutter * (cols - 1)) / cols
        bottom = y + 80 + (700 if story == 0 else 720)
        for i in range(cols):
            lines, _ = c.column(90 + i * (width + gutter), y + 80, width, bottom, body)
            blocks += lines
        y = bottom + 40
    return LayoutPage(f"newspaper {columns} col", "newspaper", c.image, blocks)


def paper_page(dpi: int, seed: int) -> LayoutPage:
    """A paper: title, authors, abstract, a figure with a side caption, two columns with
    section headings, a figure and its caption in a column, a page number."""
    c = Composer(dpi, seed)
    body, bold = c.face("DejaVuSerif", 9.5), c.face("DejaVuSerif-Bold", 11)
    title_face, cap = c.face("DejaVuSerif-Bold", 17), c.face("DejaVuSerif-Italic", 8.5)
    blocks = []
    title = words(c.rng, 6).title()
    c.text(620 - c.width(title, title_face) / 2, 110, title, title_face)
    authors = "A. Martin, B. Okafor and C. Lindqvist"
    c.text(620 - c.width(authors, body) / 2, 170, authors, body)
    blocks += [title, authors, "Abstract"]
    c.text(150, 230, "Abstract", bold)
    abstract, y = c.column(150, 265, 940, 400, body)
    blocks += abstract
    figure = (150, y + 20, 700, y + 270)
    c.chart(figure)
    side = [f"Figure 1: {words(c.rng, 3)}", words(c.rng, 4), words(c.rng, 4), words(c.rng, 3)]
    for i, line in enumerate(side):
        c.text(740, figure[1] + 60 + i * c.step(cap), line, cap)
    blocks += side
    top = figure[3] + 40
    width, gutter = 485, 50
    heading = "1 Introduction"
    c.text(110, top, heading, bold)
    intro, yy = c.column(110, top + 40, width, top + 40 + 380, body)
    fig2 = (130, yy + 15, 575, yy + 215)
    c.chart(fig2)
    caption2 = [f"Figure 2: {words(c.rng, 4)}", words(c.rng, 6)]
    for i, line in enumerate(caption2):
        c.text(110, fig2[3] + 12 + i * c.step(cap), line, cap)
    rest, _ = c.column(110, fig2[3] + 20 + 2 * c.step(cap) + 10, width, 1640, body)
    blocks += [heading, *intro, *caption2, *rest]
    heading2 = "2 Method"
    c.text(110 + width + gutter, top, heading2, bold)
    right, _ = c.column(110 + width + gutter, top + 40, width, 1640, body)
    blocks += [heading2, *right]
    number = str(c.rng.randrange(2, 19))
    c.text(615, 1690, number, body)
    blocks.append(number)
    return LayoutPage("paper", "paper", c.image, blocks)


def form_page(dpi: int, seed: int) -> LayoutPage:
    """A form: labelled fields filled in, two sections, check boxes, a signature line."""
    c = Composer(dpi, seed)
    face, bold, title_face = c.face("DejaVuSans", 10), c.face("DejaVuSans-Bold", 11), c.face("DejaVuSans-Bold", 18)
    blocks = []
    title = "Application for a Parking Permit"
    c.text(110, 110, title, title_face)
    blocks.append(title)
    y = 200
    for section, fields in (("Applicant", ("Full name", "Date of birth", "Street", "Town", "Telephone")),
                            ("Vehicle", ("Make and model", "Registration", "Colour"))):
        c.text(110, y, section, bold)
        blocks.append(section)
        y += 50
        for label in fields:
            value = words(c.rng, 2).title() if label not in ("Date of birth", "Telephone") else (
                f"{c.rng.randrange(1, 28):02}/{c.rng.randrange(1, 12):02}/19{c.rng.randrange(50, 99)}"
                if label == "Date of birth" else f"0{c.rng.randrange(100, 999)} {c.rng.randrange(100000, 999999)}")
            c.text(110, y, f"{label}:", face)
            c.text(420, y, value, face)
            c.rule(410, y + 28, 1050)
            blocks.append(f"{label}: {value}")
            y += 55
        y += 40
    for option in ("Resident", "Business", "Visitor"):
        c.draw.rectangle((110 * c.k, y * c.k, 130 * c.k, (y + 20) * c.k), outline="black", width=max(1, round(c.k)))
        c.text(145, y, option, face)
        blocks.append(option)
        y += 45
    note = [wrap(c.rng, face, round(940 * c.k), 3)][0]
    for line in note:
        y += c.step(face)
        c.text(110, y, line, face)
    blocks += note
    return LayoutPage("form", "form", c.image, blocks)


def invoice_page(dpi: int, seed: int) -> LayoutPage:
    """An invoice: sender and invoice data side by side, the client, a ruled table of items,
    totals, a footer."""
    c = Composer(dpi, seed)
    face, bold, big = c.face("DejaVuSans", 10), c.face("DejaVuSans-Bold", 10), c.face("DejaVuSans-Bold", 20)
    blocks = []
    company = "Northwind Supplies Ltd"
    c.text(110, 100, company, big)
    sender = ["12 Harbour Street", "Bristol BS1 4QA", "VAT no. GB 123 4567 89"]
    info = [f"Invoice no. 2026-{c.rng.randrange(100, 999)}", "Date: 28 November 2026", "Due: 28 December 2026"]
    for i, (a, b) in enumerate(zip(sender, info, strict=True)):
        c.text(110, 170 + i * 30, a, face)
        c.text(760, 170 + i * 30, b, face)
    blocks += [company, *sender, *info]
    client = ["Bill to:", words(c.rng, 2).title() + " GmbH", "Hauptstrasse 5, Berlin"]
    for i, line in enumerate(client):
        c.text(110, 320 + i * 30, line, bold if i == 0 else face)
    blocks += client
    xs = (110, 640, 780, 960)
    head = ["Description", "Qty", "Unit price", "Amount"]
    y = 460
    c.rule(100, y - 12, 1140)
    for x, cell in zip(xs, head, strict=True):
        c.text(x, y, cell, bold)
    c.rule(100, y + 32, 1140)
    rows = [head]
    total = 0.0
    for _ in range(c.rng.randrange(6, 10)):
        y += 45
        qty, price = c.rng.randrange(1, 20), c.rng.randrange(200, 9000) / 100
        total += qty * price
        row = [words(c.rng, 3).capitalize(), str(qty), f"{price:.2f}", f"{qty * price:.2f}"]
        for x, cell in zip(xs, row, strict=True):
            c.text(x, y, cell, face)
        rows.append(row)
    c.rule(100, y + 40, 1140)
    blocks += [" ".join(r) for r in rows]
    y += 80
    for label, value in (("Subtotal", total), ("VAT 20%", total * 0.2), ("Total due", total * 1.2)):
        c.text(780, y, label, bold if label == "Total due" else face)
        c.text(960, y, f"{value:.2f}", bold if label == "Total due" else face)
        blocks.append(f"{label} {value:.2f}")
        y += 40
    footer = "Thank you for your business. Payment by bank transfer within 30 days."
    c.text(110, 1680, footer, c.face("DejaVuSans", 8))
    blocks.append(footer)
    return LayoutPage("invoice", "invoice", c.image, blocks, rows)


def layout_pages(quick: bool) -> list[LayoutPage]:
    """Every kind at 150 and 300 dpi, clean and scan-like."""
    pages: list[LayoutPage] = []
    for dpi in (150,) if quick else (150, 300):
        made = [magazine_page(dpi, 1), newspaper_page(dpi, 2, 3), newspaper_page(dpi, 3, 4),
                paper_page(dpi, 4), form_page(dpi, 5), invoice_page(dpi, 6)]
        for page in made:
            page.name = f"{page.name} {dpi}dpi"
            pages.append(page)
            scanned = degrade(Page(page.name, "", page.image, page.truth), seed=dpi + len(pages))
            pages.append(LayoutPage(page.name + " scan", page.kind + " scan", scanned.image, page.blocks, page.table))
    return pages


# ---------------------------------------------------------------- running

def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(url: str, prompt: str = "Free OCR.") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": prompt}]}]}


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # CPU seconds of this process: what the pages cost, whatever else runs


@dataclass
class Run:
    texts: list[str]
    timing: Timing
    model: str
    reread: float  # share of the lines PP-OCR read again after Tesseract


async def run_pages(lite: LiteSettings, urls: list[str]) -> Run:
    """Every page through the engine at once (the pool bounds the concurrency)."""
    metrics = Metrics(CollectorRegistry())  # this run's counts only
    engine = LiteEngine(Settings(lite=lite), metrics)
    await engine.start()
    try:
        assert engine.reader is not None
        log.info("engine: %s: %s", engine.model, engine.reader.describe())
        before = {name: metrics.lite_line_count(name) for name in ("tesseract", "ppocr")}  # warm-up lines
        started, cpu_started = time.perf_counter(), time.process_time()
        done = 0

        async def one(url: str) -> str:
            nonlocal done
            answer = await engine.complete(body(url))
            done += 1
            log.info("  %d/%d pages", done, len(urls))
            return answer.choices[0].message.content or ""

        texts = await asyncio.gather(*(one(u) for u in urls))
        timing = Timing(time.perf_counter() - started, time.process_time() - cpu_started)
        tesseract, ppocr = (metrics.lite_line_count(name) - before[name] for name in ("tesseract", "ppocr"))
        reread = ppocr / max(tesseract + ppocr, 1) if engine.plan.recognizer == "tesseract" else 0.0
        return Run(list(texts), timing, engine.model, reread)
    finally:
        await engine.close()


def table(rows: Iterable[tuple[str, ...]], head: tuple[str, ...]) -> str:
    rows = [head, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def quality(pages: list[Page], runs: dict[str, Run]) -> None:
    names = list(runs)
    per_page: list[tuple[str, ...]] = []
    groups: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for index, page in enumerate(pages):
        row = [page.name, page.group]
        for name in names:
            text = runs[name].texts[index]
            score = cer(page.truth, text)
            order = "" if page.lines is None else " " + column_order(page.lines, text)
            row.append(f"{score:.2%}{order}")
            groups.setdefault(page.group, {}).setdefault(name, []).append((score, len(normalise(page.truth))))
        per_page.append(tuple(row))
    print("\n## Lite engine quality (CER = edit distance / reference characters)\n")
    print(table(per_page, ("page", "set", *(f"CER {n}" for n in names))))
    print()
    summary = []
    for group, by_name in groups.items():
        for name, scores in by_name.items():
            weighted = sum(s * n for s, n in scores) / sum(n for _, n in scores)
            summary.append((group, name, str(len(scores)), f"{weighted:.2%}",
                            f"{statistics.median(s for s, _ in scores):.2%}", f"{max(s for s, _ in scores):.2%}"))
    print(table(summary, ("set", "engine", "pages", "CER (all chars)", "median page", "worst page")))
    print("\nlines PP-OCR read again after Tesseract: " +
          ", ".join(f"{n} {r.reread:.1%}" for n, r in runs.items()))


# ---------------------------------------------------------------- layout benchmark (--layout)

MARKDOWN_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
_CELL_RE = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S)


def markdown_text(grounding: str) -> tuple[str, list[list[list[str]]]]:
    """The page text of a grounding answer (via the server's own markdown conversion, markup
    dropped) and its tables as rows of cells."""
    from openai_ocr.ocr.grounding import parse_blocks, to_markdown

    markdown = to_markdown(parse_blocks(grounding))
    tables = [[[html_unescape(c) for c in _CELL_RE.findall(row)] for row in re.findall(r"<tr>(.*?)</tr>", t, re.S)]
              for t in re.findall(r"<table>(.*?)</table>", markdown, re.S)]
    text = re.sub(r"!\[\]\([^)]*\)", " ", markdown)
    text = re.sub(r"</t[dh]>|</tr>", " ", text)
    text = html_unescape(re.sub(r"<[^>]+>", "", text))
    text = re.sub(r"^#+ ", "", text, flags=re.M)
    return text, tables


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text).strip()


def bag_error(truth: str, text: str) -> float:
    """1 - F1 of the words as a multiset: blind to order, so CER minus this is order's share."""
    from collections import Counter

    ref, hyp = Counter(normalise(truth).split()), Counter(normalise(text).split())
    common = sum((ref & hyp).values())
    if not common:
        return 1.0
    precision, recall = common / sum(hyp.values()), common / sum(ref.values())
    return 1 - 2 * precision * recall / (precision + recall)


def cell_accuracy(truth: list[list[str]], tables: list[list[list[str]]]) -> float:
    """Share of truth cells found at their row and column in the best-matching output table
    (rows matched by content, so one missing row does not shift the rest)."""
    def norm(cell: str) -> str:
        return normalise(cell).casefold()

    total = sum(len(row) for row in truth)
    best = 0
    for table in tables:
        found = 0
        for row in truth:
            found += max((sum(1 for j, cell in enumerate(row) if j < len(out) and norm(out[j]) == norm(cell))
                          for out in table), default=0)
        best = max(best, found)
    return best / max(total, 1)


class TesseractPage:
    """Plain Tesseract page mode: its own layout analysis (PSM.AUTO) on the full page."""

    def __init__(self) -> None:
        from tesserocr import OEM, PSM, PyTessBaseAPI

        from openai_ocr.engines.lite.reader_plan import tessdata_dir

        self.api = PyTessBaseAPI(path=str(tessdata_dir(LiteSettings())), lang="eng", psm=PSM.AUTO, oem=OEM.LSTM_ONLY)

    def __call__(self, image: Image.Image) -> str:
        self.api.SetImage(image)
        return self.api.GetUTF8Text()


def timed(repeat: int, read: Callable[[], T]) -> tuple[T, float]:
    """What `read` returns and the median CPU seconds (process time: every thread of this
    process) of `repeat` calls: on a shared VM one reading varies by 10-20%."""
    seconds = []
    for _ in range(repeat):
        started = time.process_time()
        result = read()
        seconds.append(time.process_time() - started)
    return result, statistics.median(seconds)


async def layout_engine_texts(lite: LiteSettings, images: list[Image.Image],
                              repeat: int) -> tuple[list[str], list[float]]:
    """Grounding answers of the engine (1 worker x 1 thread), one page at a time, and the CPU
    seconds each page took. A first page is read untimed: the networks set themselves up
    for a new input size on first use."""
    engine = LiteEngine(Settings(lite=lite))
    await engine.start()
    loop = asyncio.get_running_loop()
    try:
        assert engine.reader is not None
        log.info("engine: %s: %s", engine.model, engine.reader.describe())

        def read(url: str) -> str:
            answer = asyncio.run_coroutine_threadsafe(engine.complete(body(url, MARKDOWN_PROMPT)), loop).result()
            return answer.choices[0].message.content or ""

        await asyncio.to_thread(read, data_url(images[0]))
        texts, seconds = [], []
        for index, image in enumerate(images):
            url = data_url(image)
            text, cpu = await asyncio.to_thread(timed, repeat, lambda u=url: read(u))
            texts.append(text)
            seconds.append(cpu)
            log.info("  %d/%d pages", index + 1, len(images))
        return texts, seconds
    finally:
        await engine.close()


def layout_bench(quick: bool, tuned: dict[str, str], show: str | None, rules: bool, only: str | None,
                 repeat: int) -> None:
    import resource

    log.info("rendering real-looking pages")
    pages = [p for p in layout_pages(quick) if not only or only in p.name]
    results: dict[str, list[tuple[str, float, float, float | None, float]]] = {}
    engines: dict[str, dict[str, str]] = {"lite (default)": tuned}
    if rules:
        engines["lite (layout=rules)"] = {**tuned, "layout": "rules"}
    for name, config in engines.items():
        settings = LiteSettings(**{**config, "workers": 1, "threads_per_worker": 1})
        answers, seconds = asyncio.run(layout_engine_texts(settings, [p.image for p in pages], repeat))
        rows = []
        for page, answer, cpu in zip(pages, answers, seconds, strict=True):
            text, tables = markdown_text(answer)
            if show and show in page.name:
                print(f"----- {name}: {page.name}\n{answer}\n")
            cells = cell_accuracy(page.table, tables) if page.table else None
            rows.append((text, cer(page.truth, text), bag_error(page.truth, text), cells, cpu))
        results[name] = rows
        log.info("max RSS so far: %.0f MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    rss_engines = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tesseract = TesseractPage()
    rows = []
    for index, page in enumerate(pages):
        text, cpu = timed(repeat, lambda image=page.image: tesseract(image))
        rows.append((text, cer(page.truth, text), bag_error(page.truth, text), None, cpu))
        log.info("  tesseract %d/%d pages", index + 1, len(pages))
    results["tesseract page mode (PSM.AUTO)"] = rows

    names = list(results)
    print("\n## Lite engine on real-looking pages (CER / bag-of-words error / table cells / CPU s)\n")
    per_page = []
    for index, page in enumerate(pages):
        row = [page.name]
        for name in names:
            _, c, b, cells, cpu = results[name][index]
            row.append(f"{c:.1%} / {b:.1%}" + (f" / {cells:.0%}" if cells is not None else "") + f" / {cpu:.2f}s")
        per_page.append(tuple(row))
    print(table(per_page, ("page", *names)))
    summary = []
    kinds = list(dict.fromkeys(p.kind for p in pages))
    for kind in kinds:
        for dpi in ("150dpi", "300dpi"):
            picked = [i for i, p in enumerate(pages) if p.kind == kind and dpi in p.name]
            if not picked:
                continue
            chars = [len(normalise(pages[i].truth)) for i in picked]
            row = [kind, dpi, str(len(picked))]
            for name in names:
                rs = [results[name][i] for i in picked]
                weighted = sum(r[1] * n for r, n in zip(rs, chars, strict=True)) / sum(chars)
                bag = statistics.fmean(r[2] for r in rs)
                cells = [r[3] for r in rs if r[3] is not None]
                cell_text = f" / cells {statistics.fmean(cells):.0%}" if cells else ""
                row.append(f"{weighted:.1%} / {bag:.1%}{cell_text} / {statistics.fmean(r[4] for r in rs):.2f}s")
            summary.append(tuple(row))
    print()
    print(table(summary, ("set", "dpi", "pages", *(f"{n}: CER / BoW / cells / CPU s" for n in names))))
    print(f"\nmax RSS of this process after the lite engine(s) (1 worker x 1 thread; before Tesseract page mode): "
          f"{rss_engines:.0f} MB")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, CPUs: {os.cpu_count()}")


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc (VmRSS: now; VmHWM: the peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_bench(tuned: dict[str, str], workers: int) -> None:
    """Peak RSS of `workers` workers (1 thread each) reading the largest pages at once: 300-dpi
    magazine, newspapers and their scans, twice, through `LiteEngine.complete`. The pages'
    data URLs are made first and the peak is reset before the engine starts (Linux), so the
    figure is the engine's working set plus those few URLs; run with 1 and 2 workers, the
    difference is what one more worker costs."""
    made = [magazine_page(300, 1), newspaper_page(300, 2, 3), newspaper_page(300, 3, 4)]
    images = [p.image for p in made] + [degrade(Page(p.name, "", p.image, ""), seed=300 + i).image
                                        for i, p in enumerate(made)]
    urls = [data_url(image) for image in images]
    del made, images
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_mb("VmRSS")

    async def read_all() -> None:
        engine = LiteEngine(Settings(lite=LiteSettings(**{**tuned, "workers": workers, "threads_per_worker": 1})))
        await engine.start()
        done, gate = 0, asyncio.Semaphore(workers)  # as the server's gate: a page per free worker

        async def one(url: str) -> None:
            nonlocal done
            async with gate:
                await engine.complete(body(url, MARKDOWN_PROMPT))
            done += 1
            log.info("  %d/%d pages, peak RSS %.0f MB", done, 2 * len(urls), _status_mb("VmHWM"))

        try:
            await asyncio.gather(*(one(url) for url in urls * 2))
        finally:
            await engine.close()

    asyncio.run(read_all())
    print(f"\n## Lite engine memory ({workers} worker(s) x 1 thread, {len(urls)} A4 pages at 300 dpi, twice)\n")
    print(f"RSS before the engine started: {before:.0f} MB (Python, the libraries, the pages' data URLs)")
    print(f"peak RSS while reading: {_status_mb('VmHWM'):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer pages, for a smoke run")
    parser.add_argument("--pdf", type=Path, default=PDF)
    parser.add_argument("--no-speed", action="store_true", help="quality only")
    parser.add_argument("--layout", action="store_true",
                        help="the real-looking pages (magazine, newspaper, paper, form, invoice) against "
                             "Tesseract page mode, instead of the line-reading benchmark")
    parser.add_argument("--rules", action="store_true", help="with --layout: also the engine with "
                                                             "layout = rules (no layout model)")
    parser.add_argument("--show", metavar="PAGE", help="with --layout: print the answers for pages whose "
                                                         "name contains PAGE")
    parser.add_argument("--memory", action="store_true", help="peak RSS of --workers workers reading the "
                                                               "largest real-looking pages (300 dpi)")
    parser.add_argument("--repeat", type=int, default=3, help="with --layout: CPU seconds are the median "
                                                                 "of this many readings of each page")
    parser.add_argument("--workers", type=int, default=1, help="with --memory: workers reading at once")
    parser.add_argument("--only", metavar="PAGE", help="with --layout: only the pages whose name contains PAGE")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a [lite] setting to try, e.g. --set det_max_side=960 (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    tuned = dict(item.split("=", 1) for item in args.set)
    log.info("lite settings: %s", LiteSettings(**tuned))
    if args.memory:
        memory_bench(tuned, args.workers)
        return
    if args.layout:
        layout_bench(args.quick, tuned, args.show, args.rules, args.only, args.repeat)
        return

    configs = {"configured": tuned, "ppocr baseline": {**tuned, "recognizer": "ppocr"}}
    log.info("rendering pages")
    pages = synthetic_pages(args.quick) + pdf_pages(args.pdf, args.quick)
    urls = [data_url(p.image) for p in pages]
    runs = {}
    for name, config in configs.items():
        log.info("quality: %d pages, 2 workers, %s", len(pages), name)
        runs[name] = asyncio.run(run_pages(LiteSettings(**{**config, "workers": 2, "threads_per_worker": 1}), urls))
    names = {name: f"{name} ({run.model})" for name, run in runs.items()}
    quality(pages, {names[n]: r for n, r in runs.items()})

    if args.no_speed:
        return
    speed_urls = [u for p, u in zip(pages, urls, strict=True) if p.group == "synthetic clean"]
    speed_urls += [u for p, u in zip(pages, urls, strict=True) if p.group == "pdf (text layer)"]
    n = len(speed_urls)
    speed, per_page_cpu = [], {}
    for name, config in configs.items():
        for workers in (1, 2):
            log.info("speed: %d pages, %d worker(s) x 1 thread, %s", n, workers, name)
            run = asyncio.run(run_pages(LiteSettings(**{**config, "workers": workers, "threads_per_worker": 1}),
                                        speed_urls))
            timing = run.timing
            per_page_cpu.setdefault(name, timing.cpu_s / n)
            speed.append((names[name], f"{workers} x 1 thread", str(n), f"{timing.wall_s:.1f}",
                          f"{timing.wall_s * workers / n:.2f}", f"{timing.cpu_s / n:.2f}", f"{n / timing.wall_s:.3f}"))
    print(f"\n## Lite engine speed (A4-size pages at {DPI} dpi: clean synthetic + PDF pages)\n")
    print(table(speed, ("engine", "workers", "pages", "wall s", "wall s/page per worker", "CPU s/page", "pages/s")))
    baseline, configured = per_page_cpu["ppocr baseline"], per_page_cpu["configured"]
    print(f"\nCPU time per page, 1 worker: configured {configured:.2f} s, baseline {baseline:.2f} s, "
          f"{baseline / configured:.2f}x faster than the baseline")
    print(f"load average during the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
