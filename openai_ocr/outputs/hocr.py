"""hOCR 1.2: XHTML whose elements carry their page boxes (`title="bbox x1 y1 x2 y2"`).

Per page an `ocr_page`; per block an area holding lines (`ocr_line`) of words (`ocrx_word`,
with `x_wconf`, 0..100, where the engine gave a confidence). Blocks in hOCR's vocabulary:

| role | hOCR |
|---|---|
| paragraph, list, code, reference | `div.ocr_carea > p.ocr_par` |
| title | `div.ocr_carea > h1.ocr_title` |
| heading | `div.ocr_carea > h2.ocr_section` |
| caption | `div.ocr_carea > p.ocr_caption` |
| equation | `div.ocr_carea > div.ocr_display` |
| table | `div.ocr_table` |
| figure | `div.ocr_image` |
| header, footer, page number | `div.ocr_header`, `div.ocr_footer`, `div.ocr_pageno` |

Written page by page to a stream: memory holds one page's elements at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import IO

from openai_ocr.outputs.layout import BlockBox, Box, ElementIds, LineBox, PageLayout, Role, escape_xml

MEDIA_TYPE = "application/xhtml+xml"

_AREA: dict[Role, tuple[str, str, str] | tuple[str, None, None]] = {
    # role -> (outer class, inner tag, inner class); an outer float holds its lines itself
    "paragraph": ("ocr_carea", "p", "ocr_par"), "list": ("ocr_carea", "p", "ocr_par"),
    "code": ("ocr_carea", "p", "ocr_par"), "reference": ("ocr_carea", "p", "ocr_par"),
    "title": ("ocr_carea", "h1", "ocr_title"), "heading": ("ocr_carea", "h2", "ocr_section"),
    "caption": ("ocr_carea", "p", "ocr_caption"), "equation": ("ocr_carea", "div", "ocr_display"),
    "table": ("ocr_table", None, None), "figure": ("ocr_image", None, None),
    "header": ("ocr_header", None, None), "footer": ("ocr_footer", None, None),
    "page_number": ("ocr_pageno", None, None),
}

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head>
<title>{title}</title>
<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
<meta name="ocr-system" content="{system}"/>
<meta name="ocr-capabilities" content="{capabilities}"/>
<meta name="ocr-number-of-pages" content="{pages}"/>
</head>
<body>
"""
TAIL = "</body>\n</html>\n"

CAPABILITIES = ("ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_title ocr_section ocr_caption "
                "ocr_display ocr_table ocr_image ocr_header ocr_footer ocr_pageno ocrp_wconf")


def bbox(box: Box) -> str:
    x1, y1, x2, y2 = box
    return f"bbox {round(x1)} {round(y1)} {max(round(x2), round(x1) + 1)} {max(round(y2), round(y1) + 1)}"




def _line(parent: ET.Element, line: LineBox, ids: ElementIds) -> None:
    height = line.box[3] - line.box[1]
    descent = round(height * 0.22)
    span = ET.SubElement(parent, "span", {
        "class": "ocr_line", "id": ids("line"),
        "title": f"{bbox(line.box)}; baseline 0 {-descent}"})
    span.text = "\n"
    for word in line.words:
        title = bbox(word.box)
        if word.confidence is not None:
            title += f"; x_wconf {round(word.confidence * 100)}"
        element = ET.SubElement(span, "span", {"class": "ocrx_word", "id": ids("word"), "title": title})
        element.text = word.text
        element.tail = " "
    span.tail = "\n"


def _block(page: ET.Element, block: BlockBox, ids: ElementIds) -> None:
    outer, tag, inner = _AREA.get(block.role, _AREA["paragraph"])
    area = ET.SubElement(page, "div", {"class": outer, "id": ids("block"), "title": bbox(block.box)})
    area.text = "\n"
    area.tail = "\n"
    holder = area
    if tag is not None and inner is not None:
        holder = ET.SubElement(area, tag, {"class": inner, "id": ids("par"), "title": bbox(block.box)})
        holder.text = "\n"
        holder.tail = "\n"
    for line in block.lines:
        _line(holder, line, ids)


def page_element(page: PageLayout, image: str | None = None, dpi: float | None = None) -> ET.Element:
    title = f"bbox 0 0 {page.width} {page.height}; ppageno {page.number - 1}"
    if image:
        title = f"image \"{image}\"; " + title
    if dpi:
        title += f"; scan_res {round(dpi)} {round(dpi)}"
    element = ET.Element("div", {"class": "ocr_page", "id": f"page_{page.number}", "title": title})
    element.text = "\n"
    ids = ElementIds(page.number)
    for block in page.blocks:
        _block(element, block, ids)
    return element


def write_hocr(pages: Iterable[PageLayout], out: IO[str], *, count: int, title: str, system: str,
               image: str | None = None, dpi: float | None = None) -> None:
    """The pages as one hOCR document, written to `out` page by page."""
    out.write(HEAD.format(title=escape_xml(title), system=escape_xml(system), capabilities=CAPABILITIES,
                          pages=count))
    for page in pages:
        out.write(ET.tostring(page_element(page, image, dpi), encoding="unicode"))
        out.write("\n")
    out.write(TAIL)
