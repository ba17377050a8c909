"""Decoding of request inputs into validated page images: base64, data URLs, uploads, PDFs.

Everything here is pure (bytes in, bytes out) and raises `OCRError`s with a 4xx status, so
bad input never reaches an engine. Callers run `load_image` in a thread: decoding a large
image is CPU work.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from openai_ocr.errors import BadRequest, PayloadTooLarge
from openai_ocr.inputs.page_ranges import parse_pages
from openai_ocr.inputs.pdf import PdfPages, is_pdf

logger = logging.getLogger(__name__)

# Formats sent on as they are; anything else Pillow reads is re-encoded as PNG.
PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Formats accepted at all: raster formats that Pillow decodes safely.
ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM"}

_DATA_URL_RE = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.I)
_WHITESPACE_RE = re.compile(r"\s+")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInput:
    """An image that decoded cleanly, ready to send to an engine."""

    data: bytes
    mime: str
    width: int
    height: int

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def is_data_url(value: str) -> bool:
    """`data:...` (any case, surrounding whitespace ignored): inline content, never fetched."""
    return value.strip()[:5].lower() == "data:"


def decode_base64_payload(value: str, *, max_bytes: int, param: str = "image_base64") -> bytes:
    """Decode plain base64 or a `data:...;base64,` URL, checking the size before decoding."""
    text = value.strip()
    if not text:
        raise BadRequest(f"{param} is empty", param=param)
    if is_data_url(text):
        match = _DATA_URL_RE.match(text)
        if match is None:
            raise BadRequest(f"{param} is a malformed data URL", param=param)
        if ";base64" not in match.group("params").lower():
            raise BadRequest(f"{param}: only base64 data URLs are supported", param=param)
        text = text[match.end():]
    text = _WHITESPACE_RE.sub("", text)
    if len(text) // 4 * 3 > max_bytes:
        raise PayloadTooLarge(f"{param} decodes to more than {max_bytes} bytes", param=param)
    text = text.replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{param} is not valid base64: {exc}", param=param) from None
    if not data:
        raise BadRequest(f"{param} is empty", param=param)
    return data


def load_image(data: bytes, *, max_pixels: int, max_bytes: int, param: str = "image") -> ImageInput:
    """Validate image bytes fully (header, pixel count, complete decode) and normalise them.

    The pixel count is checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing. EXIF rotation is applied, because engines read pixels
    as stored.
    """
    if not data:
        raise BadRequest(f"{param} is empty", param=param)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{param} is larger than {max_bytes} bytes", param=param)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS))
            fmt = image.format or ""
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"{param} has {width}x{height} = {width * height} pixels; "
                    f"the limit is {max_pixels}", param=param)
            image.load()
    except PayloadTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{param} has too many pixels; the limit is {max_pixels}",
                              param=param) from None
    except UnidentifiedImageError:
        raise BadRequest(f"{param} is not a supported image or PDF; accepted formats: "
                         f"{', '.join([*sorted(ACCEPTED_FORMATS), 'PDF'])}", param=param) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"{param} is a corrupt or truncated image ({_short(exc)})", param=param) from None
    if width < 1 or height < 1:
        raise BadRequest(f"{param} has no pixels", param=param)

    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if fmt in PASS_THROUGH and orientation in (None, 1) and not getattr(image, "is_animated", False):
        return ImageInput(data=data, mime=PASS_THROUGH[fmt], width=width, height=height)
    normalised = ImageOps.exif_transpose(image)
    if normalised.mode not in ("RGB", "RGBA", "L", "LA"):
        normalised = normalised.convert("RGBA" if "A" in normalised.getbands() else "RGB")
    out = io.BytesIO()
    normalised.save(out, format="PNG")
    return ImageInput(data=out.getvalue(), mime="image/png",
                      width=normalised.width, height=normalised.height)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def encode_png(image: Image.Image) -> ImageInput:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return ImageInput(data=out.getvalue(), mime="image/png", width=image.width, height=image.height)


class Document:
    """Pages of one input (an image, a multi-frame TIFF or a PDF), rendered on demand.

    `pages` holds the selected 1-based page numbers, in answer order. `page_image` is
    blocking CPU work: call it in a thread.
    """

    kind: str = "image"
    pages: list[int]
    page_count: int

    def page_image(self, number: int) -> ImageInput:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (PDF handles)."""

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SingleImage(Document):
    def __init__(self, image: ImageInput) -> None:
        self.image = image
        self.pages = [1]
        self.page_count = 1

    def page_image(self, number: int) -> ImageInput:
        return self.image


class ImageFrames(Document):
    """A multi-frame TIFF (or GIF): one page per frame, each re-encoded as PNG."""

    kind = "tiff"

    def __init__(self, image: Image.Image, pages: list[int], max_pixels: int) -> None:
        self._image = image
        self.page_count = getattr(image, "n_frames", 1)
        self.pages = pages
        self._max_pixels = max_pixels

    def page_image(self, number: int) -> ImageInput:
        try:
            self._image.seek(number - 1)
            frame = ImageOps.exif_transpose(self._image).convert("RGB")
        except (OSError, ValueError, EOFError) as exc:
            raise BadRequest(f"frame {number} is corrupt ({_short(exc)})", param="file") from None
        if frame.width * frame.height > self._max_pixels:
            raise PayloadTooLarge(f"frame {number} has more than {self._max_pixels} pixels")
        return encode_png(frame)


class PdfDocumentPages(Document):
    """A PDF rendered at `dpi`, lowered per page where needed to stay under the pixel limit."""

    kind = "pdf"

    def __init__(self, pdf: PdfPages, pages: list[int], dpi: float, max_pixels: int) -> None:
        self._pdf = pdf
        self.page_count = pdf.page_count
        self.pages = pages
        self._dpi = dpi
        self._max_pixels = max_pixels

    def page_image(self, number: int) -> ImageInput:
        width, height = self._pdf.page_size_px(number, self._dpi)
        dpi = self._dpi
        if width * height > self._max_pixels:
            dpi = self._dpi * (self._max_pixels / (width * height)) ** 0.5 * 0.999
            logger.info("page %d rendered at %.0f dpi to stay under %d pixels", number, dpi,
                        self._max_pixels)
        return encode_png(self._pdf.render(number, dpi))

    def close(self) -> None:
        self._pdf.close()


def open_document(data: bytes, *, pages: str | None, dpi: float, max_pages: int,
                  max_pixels: int, max_bytes: int, param: str = "file") -> Document:
    """Open any accepted input as a Document, with page selection and limits applied."""
    if not data:
        raise BadRequest(f"{param} is empty", param=param)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{param} is larger than {max_bytes} bytes", param=param)
    if is_pdf(data):
        pdf = PdfPages(data)
        try:
            selected = _select(pages, pdf.page_count, max_pages)
        except Exception:
            pdf.close()
            raise
        return PdfDocumentPages(pdf, selected, dpi, max_pixels)
    frames = _frame_count(data)
    if frames > 1:
        image = Image.open(io.BytesIO(data), formats=["TIFF", "GIF"])
        width, height = image.size
        if width * height > max_pixels:
            raise PayloadTooLarge(f"{param} has {width}x{height} pixels per frame; the limit "
                                  f"is {max_pixels}", param=param)
        return ImageFrames(image, _select(pages, frames, max_pages), max_pixels)
    _select(pages, 1, max_pages)  # "1" or "all" are fine for an image, "2" is not
    return SingleImage(load_image(data, max_pixels=max_pixels, max_bytes=max_bytes, param=param))


def _frame_count(data: bytes) -> int:
    """Frames of a multi-page TIFF/GIF; 1 for anything else (load_image judges those)."""
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF", "GIF"]) as image:
            return int(getattr(image, "n_frames", 1))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError):
        return 1


def _select(spec: str | None, page_count: int, max_pages: int) -> list[int]:
    selected = parse_pages(spec, page_count)
    if len(selected) > max_pages:
        raise PayloadTooLarge(f"{len(selected)} pages selected; at most {max_pages} pages per "
                              "request (select fewer with `pages`)", param="pages")
    return selected
