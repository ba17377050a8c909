"""PDF pages to images with pypdfium2 (pdfium inside the wheel; BSD/Apache licensed).

pdfium is not thread-safe, so every call into it holds one process-wide lock. The server
renders in its decoder processes (`openai_ocr.inputs.pool`), each with its own pdfium, so a
slow page holds one process, not every request; there the lock is never contended. Pages
render lazily, one at a time, as the engine needs them (bounded memory for long documents).
"""

from __future__ import annotations

import math
import threading

import pypdfium2 as pdfium
from PIL import Image

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.text_density import PageText, from_text_layer

PDFIUM_LOCK = threading.Lock()
POINTS_PER_INCH = 72.0


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF-")


class PdfPages:
    """An open PDF whose pages render on demand."""

    def __init__(self, data: bytes | str) -> None:
        """`data`: the PDF's bytes, or the path of its file (pdfium reads only what it needs)."""
        try:
            with PDFIUM_LOCK:
                self._doc = pdfium.PdfDocument(data)
                self.page_count = len(self._doc)
        except pdfium.PdfiumError as exc:
            text = str(exc)
            if "password" in text.lower():
                raise BadRequest("the PDF is password-protected; send it decrypted",
                                 param="file") from None
            raise BadRequest(f"the PDF cannot be read ({text})", param="file") from None
        if self.page_count < 1:
            self.close()
            raise BadRequest("the PDF has no pages", param="file")

    def page_size_px(self, number: int, dpi: float) -> tuple[int, int]:
        with PDFIUM_LOCK:
            width, height = self._doc[number - 1].get_size()
        scale = dpi / POINTS_PER_INCH
        return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))  # as pdfium

    def render(self, number: int, dpi: float) -> Image.Image:
        """Page `number` (1-based) as an RGB image at `dpi`."""
        with PDFIUM_LOCK:
            page = self._doc[number - 1]
            try:
                # RGB byte order from pdfium itself: no BGR-to-RGB pass over the pixels
                bitmap = page.render(scale=dpi / POINTS_PER_INCH, rev_byteorder=True)
                image: Image.Image = bitmap.to_pil()  # pypdfium2 has no type hints
                return image if image.mode == "RGB" else image.convert("RGB")
            except pdfium.PdfiumError as exc:
                raise BadRequest(f"page {number} of the PDF cannot be rendered ({exc})",
                                 param="file") from None
            finally:
                page.close()

    def text_layer(self, number: int, scale: float) -> PageText:
        """How much text page `number`'s own text layer holds (`scale`: image pixels per PDF
        point of the rendered page)."""
        with PDFIUM_LOCK:
            page = self._doc[number - 1]
            try:
                return from_text_layer(page, scale)
            finally:
                page.close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._doc.close()

    def __enter__(self) -> PdfPages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
