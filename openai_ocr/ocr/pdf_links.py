"""The hyperlinks of PDF pages: the URIs of their link annotations (Mistral's `hyperlinks`).

Reads the PDF with pdfium, so the server calls `page_links` in its decoder processes
(`openai_ocr.inputs.pool`), as it renders pages: a hostile PDF costs one killable worker.
What comes back is bounded (links per page, characters per link) whatever the file holds.
"""

from __future__ import annotations

import ctypes

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from openai_ocr.inputs.pdf import PDFIUM_LOCK

MAX_LINKS_PER_PAGE = 500
MAX_LINK_CHARS = 2048
"""A longer URI is left out (a link that long is data, not an address)."""


def _uri(document: object, link: object) -> str | None:
    action = pdfium_c.FPDFLink_GetAction(link)
    if not action or pdfium_c.FPDFAction_GetType(action) != pdfium_c.PDFACTION_URI:
        return None
    size = pdfium_c.FPDFAction_GetURIPath(document, action, None, 0)
    if size <= 1 or size > MAX_LINK_CHARS + 1:
        return None
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFAction_GetURIPath(document, action, buffer, size)
    uri = buffer.value.decode("utf-8", "replace").strip()
    return uri or None


def page_links(data: bytes | str, numbers: list[int]) -> dict[int, list[str]]:
    """Page number (1-based) -> the URIs its link annotations point to, in the order the
    page lists them, each once. A PDF pdfium cannot read gives no links (the pages were
    read already; this is an extra, never a reason to fail the answer). `data`: the PDF's
    bytes, or its file's path."""
    found: dict[int, list[str]] = {}
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return found
        try:
            for number in numbers:
                if not 1 <= number <= len(document):
                    continue
                page = document[number - 1]
                try:
                    uris: dict[str, None] = {}
                    position, link = ctypes.c_int(0), pdfium_c.FPDF_LINK()
                    while len(uris) < MAX_LINKS_PER_PAGE and pdfium_c.FPDFLink_Enumerate(
                            page.raw, ctypes.byref(position), ctypes.byref(link)):
                        if (uri := _uri(document.raw, link)) is not None:
                            uris[uri] = None
                    found[number] = list(uris)
                finally:
                    page.close()
        finally:
            document.close()
    return found
