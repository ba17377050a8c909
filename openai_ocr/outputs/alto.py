"""ALTO v4 (4.4) XML: `Page` > `PrintSpace` > blocks > `TextLine` > `String` (HPOS, VPOS, WIDTH,
HEIGHT in pixels; `WC`, 0..1, where the engine gave a confidence), `SP` between words.

Blocks in ALTO's vocabulary: text blocks are `TextBlock`s whose `TAGREFS` name a `LayoutTag`
for their role (`title`, `heading`, `paragraph`, `caption`, `header`, `footer`,
`page_number`, `equation`, `list`, `code`, `reference`); a table is a
`ComposedBlock TYPE="table"` holding its rows as the lines of one `TextBlock`; a figure is an
`Illustration TYPE="figure"` (in a `ComposedBlock TYPE="figure"` with a `TextBlock` when text
was read inside it). Written page by page to a stream.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import IO

from openai_ocr.outputs.layout import BlockBox, Box, ElementIds, LineBox, PageLayout, Role, escape_xml

MEDIA_TYPE = "application/xml"
NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
ROLES: tuple[Role, ...] = ("title", "heading", "paragraph", "list", "table", "figure", "caption",
                           "header", "footer", "page_number", "equation", "code", "reference")


def tag_id(role: Role) -> str:
    return f"LAYOUT_{role.upper()}"




def _geometry(box: Box) -> dict[str, str]:
    x1, y1, x2, y2 = (round(v) for v in box)
    return {"HPOS": str(x1), "VPOS": str(y1), "WIDTH": str(max(1, x2 - x1)), "HEIGHT": str(max(1, y2 - y1))}


def _line(parent: ET.Element, line: LineBox, ids: ElementIds) -> None:
    element = ET.SubElement(parent, "TextLine", {"ID": ids("line"), **_geometry(line.box)})
    for n, word in enumerate(line.words):
        if n:
            before = line.words[n - 1].box
            gap = round(word.box[0]) - round(before[2])
            space = {"HPOS": str(round(before[2])), "VPOS": str(round(before[1]))}
            if gap > 0:
                space["WIDTH"] = str(gap)
            ET.SubElement(element, "SP", space)
        attributes = {"ID": ids("string"), **_geometry(word.box), "CONTENT": word.text}
        if word.confidence is not None:
            attributes["WC"] = f"{word.confidence:.3f}"
        ET.SubElement(element, "String", attributes)


def _text_block(parent: ET.Element, block: BlockBox, ids: ElementIds, role: Role) -> None:
    element = ET.SubElement(parent, "TextBlock", {"ID": ids("block"), **_geometry(block.box),
                                                  "TAGREFS": tag_id(role)})
    for line in block.lines:
        if line.words:
            _line(element, line, ids)


def _block(space: ET.Element, block: BlockBox, ids: ElementIds) -> None:
    if block.role == "figure":
        holder = space
        if block.lines:
            holder = ET.SubElement(space, "ComposedBlock", {"ID": ids("composed"), **_geometry(block.box),
                                                            "TYPE": "figure"})
        ET.SubElement(holder, "Illustration", {"ID": ids("illustration"), **_geometry(block.box),
                                               "TYPE": "figure", "TAGREFS": tag_id("figure")})
        if block.lines:
            _text_block(holder, block, ids, "figure")
        return
    if block.role == "table":
        composed = ET.SubElement(space, "ComposedBlock", {"ID": ids("composed"), **_geometry(block.box),
                                                          "TYPE": "table", "TAGREFS": tag_id("table")})
        _text_block(composed, block, ids, "table")
        return
    _text_block(space, block, ids, block.role)


def page_element(page: PageLayout) -> ET.Element:
    attributes = {"ID": f"page_{page.number}", "PHYSICAL_IMG_NR": str(page.number),
                  "WIDTH": str(page.width), "HEIGHT": str(page.height)}
    if page.confidence is not None:
        attributes["PC"] = f"{page.confidence:.3f}"
    element = ET.Element("Page", attributes)
    space = ET.SubElement(element, "PrintSpace", {"ID": f"space_{page.number}",
                                                  **_geometry((0, 0, page.width, page.height))})
    ids = ElementIds(page.number)
    for block in page.blocks:
        _block(space, block, ids)
    return element


def head(*, source: str, software: str, version: str, model: str) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tags = "".join(f'<LayoutTag ID="{tag_id(r)}" LABEL="{r}"/>\n' for r in ROLES)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alto xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NAMESPACE} {SCHEMA}" SCHEMAVERSION="4.4">\n'
        "<Description>\n<MeasurementUnit>pixel</MeasurementUnit>\n"
        f"<sourceImageInformation><fileName>{escape_xml(source)}</fileName></sourceImageInformation>\n"
        f'<Processing ID="OCR_0"><processingDateTime>{when}</processingDateTime>'
        f"<processingStepDescription>{escape_xml(f'OCR by {model}')}</processingStepDescription>"
        f"<processingSoftware><softwareCreator>openai-ocr</softwareCreator>"
        f"<softwareName>{escape_xml(software)}</softwareName>"
        f"<softwareVersion>{escape_xml(version)}</softwareVersion></processingSoftware></Processing>\n"
        f"</Description>\n<Tags>\n{tags}</Tags>\n<Layout>\n")


TAIL = "</Layout>\n</alto>\n"


def write_alto(pages: Iterable[PageLayout], out: IO[str], *, source: str, software: str, version: str,
               model: str) -> None:
    """The pages as one ALTO document, written to `out` page by page."""
    out.write(head(source=source, software=software, version=version, model=model))
    for page in pages:
        out.write(ET.tostring(page_element(page), encoding="unicode"))
        out.write("\n")
    out.write(TAIL)
