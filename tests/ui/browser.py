"""What the playground's browser tests and screenshot script share: Chromium, sample pages, geometry.

Chromium is Debian's (`make test` installs it); Playwright drives it through
`executable_path`, so no browser is downloaded.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from tests.helpers import png_of

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (a fresh profile each launch)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed: make test installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# -- sample documents --------------------------------------------------------------------

REPORT_LINES = ["Quarterly report", "Sales grew in every region this quarter.",
                "The table below lists the three largest orders."]
TABLE = [["Item", "Quantity", "Price"], ["Apples", "120", "36.00"], ["Pears", "75", "27.50"]]
PDF_WORDS = ["alpha", "bravo", "charlie"]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


CHART_BOX = (60, 590, 400, 740)
"""Where `report_page(chart=True)` draws its bar chart."""


def report_page(chart: bool = False) -> Image.Image:
    """A page with a heading, two paragraphs and a ruled table (and a bar chart below it)."""
    image = Image.new("RGB", (1000, 760), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 50), REPORT_LINES[0], fill="black", font=_font(52))
    draw.text((60, 160), REPORT_LINES[1], fill="black", font=_font(28))
    draw.text((60, 220), REPORT_LINES[2], fill="black", font=_font(28))
    left, top, widths, height = 60, 320, [320, 240, 240], 80
    for row, cells in enumerate(TABLE):
        x = left
        for width, cell in zip(widths, cells, strict=True):
            draw.rectangle((x, top + row * height, x + width, top + (row + 1) * height), outline="black", width=2)
            draw.text((x + 20, top + row * height + 22), cell, fill="black", font=_font(28))
            x += width
    if chart:
        x1, y1, x2, y2 = CHART_BOX
        draw.line((x1 + 10, y2 - 10, x2 - 10, y2 - 10), fill="black", width=2)
        for i, (value, colour) in enumerate(zip((60, 110, 90, 130), ("#1c7ed6", "#2f9e44", "#f08c00", "#ae3ec9"),
                                                strict=True)):
            left = x1 + 30 + i * 80
            draw.rectangle((left, y2 - 10 - value, left + 50, y2 - 10), fill=colour)
    return image


png = png_of
"""A page image as PNG bytes (tests/helpers.py; scripts/playground_screenshots.py imports it from here)."""


def three_page_pdf() -> bytes:
    """Three pages, each with a heading and a line holding its own word."""
    pages = []
    for number, word in enumerate(PDF_WORDS, start=1):
        image = Image.new("RGB", (850, 1100), "white")
        draw = ImageDraw.Draw(image)
        draw.text((70, 80), f"Chapter {number}", fill="black", font=_font(48))
        draw.text((70, 200), f"This page is about {word} and nothing else.", fill="black", font=_font(28))
        draw.text((70, 260), f"The word of page {number} is {word}.", fill="black", font=_font(28))
        pages.append(image)
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=144)
    return out.getvalue()


# -- what the page shows -----------------------------------------------------------------

GEOMETRY_JS = """() => {
  const rect = (node) => { const r = node.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
  const image = document.getElementById('page-image');
  return {image: rect(image), loaded: image.complete && image.naturalWidth > 0,
          boxes: [...document.querySelectorAll('#overlay .box')].map(
            (b) => ({block: Number(b.dataset.block), page: Number(b.dataset.page), label: b.dataset.label,
                     rect: rect(b)}))};
}"""


def shown_json(page: Any) -> dict[str, Any]:
    """The answer the JSON tab shows (the /ocr/file shape; page images abbreviated)."""
    import json

    return json.loads(page.text_content("#panel-json"))


def box_misplacements(geometry: dict[str, Any], result: dict[str, Any], tolerance: float = 2.0) -> list[str]:
    """Each drawn box against `boxes_px` scaled to the shown image; the problems found."""
    x0, y0, shown_w, shown_h = geometry["image"]
    sx, sy = shown_w / result["width"], shown_h / result["height"]
    expected = [(index, box) for index, block in enumerate(result["blocks"]) for box in block["boxes_px"]]
    drawn = geometry["boxes"]
    problems = []
    if len(drawn) != len(expected):
        problems.append(f"{len(drawn)} boxes drawn, {len(expected)} in the JSON")
    for (index, (x1, y1, x2, y2)), box in zip(expected, drawn, strict=False):
        want = (x0 + x1 * sx, y0 + y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy)
        if box["block"] != index or any(abs(a - b) > tolerance for a, b in zip(box["rect"], want, strict=True)):
            problems.append(f"block {index}: drawn at {box['rect']}, expected {want}")
    return problems
