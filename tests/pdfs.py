"""PDF test inputs: the born-digital PDF every machine has, and PDFs made on the fly."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pypdfium2 as pdfium

SYSTEM_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")


def system_pdf() -> bytes:
    return SYSTEM_PDF.read_bytes()


def blank_pdf(pages: int, width: float = 200, height: float = 100) -> bytes:
    doc = pdfium.PdfDocument.new()
    for _ in range(pages):
        doc.new_page(width, height)
    out = io.BytesIO()
    doc.save(out)
    doc.close()
    return out.getvalue()


def encrypted_pdf() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_size_of(data_url: str) -> tuple[int, int]:
    from PIL import Image

    data = base64.b64decode(data_url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return image.size
