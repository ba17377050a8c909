"""Decoding of request inputs into validated page images: base64, data URLs, uploads, PDFs.

Everything here is pure (bytes in, bytes out) and raises `OCRError`s with a 4xx status, so
bad input never reaches an engine. `open_checked_image` passes a sound PNG, JPEG or WebP page
on as it is, checked from its container in microseconds (`containers`); everything else goes
through `probe_document`, which reads headers only (sizes, frame and page counts), and
`render_page` / `load_image`, which decode: CPU work that the service runs in its decoder
processes (`openai_ocr.inputs.pool`), where an overrunning task can be killed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pybase64
from PIL import Image, ImageOps, UnidentifiedImageError

from openai_ocr.errors import BadRequest, PayloadTooLarge
from openai_ocr.inputs.containers import check_container
from openai_ocr.inputs.frames import frame_table
from openai_ocr.inputs.page_ranges import PageSpec, parse_pages
from openai_ocr.inputs.pdf import PdfPages, is_pdf
from openai_ocr.inputs.text_density import PageText, combined, estimate_or_none, from_image

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
    #: how much text the page holds, where it was asked for (`resolution: auto`); None else
    text_estimate: PageText | None = None

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{pybase64.b64encode(self.data).decode('ascii')}"


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
    if len(text) // 4 * 3 > max_bytes:
        raise PayloadTooLarge(f"{param} decodes to more than {max_bytes} bytes", param=param)
    try:  # canonical base64 (what clients send): SIMD, 50 times faster than binascii
        data = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = _lenient_base64(text, param)
    if not data:
        raise BadRequest(f"{param} is empty", param=param)
    return data


def _lenient_base64(text: str, param: str) -> bytes:
    """Base64 with line breaks, missing padding or the URL-safe alphabet, still validated."""
    text = _WHITESPACE_RE.sub("", text).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{param} is not valid base64: {exc}", param=param) from None


def load_image(data: bytes, *, max_pixels: int, max_bytes: int, param: str = "image",
               estimate: bool = False) -> ImageInput:
    """Validate image bytes fully (header, pixel count, complete decode) and normalise them.

    The pixel count is checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing. EXIF rotation is applied, because engines read pixels
    as stored. With `estimate`, the page's text is estimated from the decoded pixels.
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
    except MemoryError:
        raise PayloadTooLarge(f"{param} needs too much memory to decode", param=param) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes is bad input
        raise BadRequest(f"{param} is a corrupt or truncated image ({_short(exc)})", param=param) from None
    if width < 1 or height < 1:
        raise BadRequest(f"{param} has no pixels", param=param)

    try:
        page = _normalised(image, data, fmt, width, height)
        if estimate:
            upright = image if image.getexif().get(_EXIF_ORIENTATION, 1) in (None, 1) \
                else ImageOps.exif_transpose(image)
            page = dataclasses.replace(page, text_estimate=estimate_or_none(from_image, upright))
        return page
    except MemoryError:
        raise PayloadTooLarge(f"{param} needs too much memory to decode", param=param) from None
    except Exception as exc:  # noqa: BLE001 - e.g. a broken EXIF block
        raise BadRequest(f"{param} is a corrupt or truncated image ({_short(exc)})", param=param) from None


def _normalised(image: Image.Image, data: bytes, fmt: str, width: int, height: int) -> ImageInput:
    """The bytes as they are where engines read them as such, else upright PNG."""
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if fmt in PASS_THROUGH and orientation in (None, 1) and not getattr(image, "is_animated", False):
        return ImageInput(data=data, mime=PASS_THROUGH[fmt], width=width, height=height)
    normalised = ImageOps.exif_transpose(image)
    if normalised.mode not in ("RGB", "RGBA", "L", "LA"):
        normalised = normalised.convert("RGBA" if "A" in normalised.getbands() else "RGB")
    out = io.BytesIO()
    normalised.save(out, format="PNG", compress_level=PNG_LEVEL)
    return ImageInput(data=out.getvalue(), mime="image/png",
                      width=normalised.width, height=normalised.height)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


PNG_LEVEL = 1
"""zlib level of the PNGs this server writes (rendered PDF pages, frames): level 1 encodes a
144-dpi page about twice as fast as Pillow's default 6 (and on text pages the files came out
no larger: 408 against 455 KiB)."""


def encode_png(image: Image.Image) -> ImageInput:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return ImageInput(data=out.getvalue(), mime="image/png", width=image.width, height=image.height)


@dataclass(frozen=True)
class DocumentInfo:
    """What the headers say about an input, before any pixel is decoded (small, picklable).

    `page_pixels` is the decoding cost of each selected page in pixels: its size, or for a
    GIF frame k the k frames Pillow composes to reach it.
    """

    kind: str  # "image", "frames" (multi-frame TIFF or GIF) or "pdf"
    page_count: int
    pages: list[int]
    page_pixels: dict[int, int]
    dpi: float = 72.0


def probe_document(data: bytes, *, pages: PageSpec, dpi: float, max_pages: int,
                   max_pixels: int, max_bytes: int, param: str = "file",
                   max_aspect_ratio: float = 0.0) -> DocumentInfo:
    """Identify an input and select its pages, checking every limit from the headers alone."""
    if not data:
        raise BadRequest(f"{param} is empty", param=param)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{param} is larger than {max_bytes} bytes", param=param)
    if is_pdf(data):
        with PdfPages(data) as pdf:
            selected = _select(pages, pdf.page_count, max_pages)
            rendered = {n: min(max_pixels, _area(pdf.page_size_px(n, dpi))) for n in selected}
            return DocumentInfo("pdf", pdf.page_count, selected, rendered, dpi)
    table = frame_table(data, cap=max_pages, param=param)
    if table is not None and len(table.sizes) > 1:
        selected = _select(pages, len(table.sizes), max_pages)
        cost: dict[int, int] = {}
        for number in selected:
            size = table.sizes[number - 1]
            _check_size(size, max_pixels, max_aspect_ratio, f"{param} frame {number}", param)
            cost[number] = _area(size) * (number if table.format == "GIF" else 1)
        return DocumentInfo("frames", len(table.sizes), selected, cost)
    _select(pages, 1, max_pages)  # "1" or "all" are fine for an image, "2" is not
    size = _header_size(data, param)
    _check_size(size, max_pixels, max_aspect_ratio, param, param)
    return DocumentInfo("image", 1, [1], {1: _area(size)})


def render_page(data: bytes | str, info: DocumentInfo, number: int, *, max_pixels: int,
                max_bytes: int, param: str = "file", estimate: bool = False) -> ImageInput:
    """Decode or render one page. Opens its own handle, so concurrent calls share nothing;
    a PDF may come as the path of its file (`Document.source`).

    With `estimate`, the page's text is estimated on the pixels in hand (a PDF page: from its
    text layer where that covers the page's ink) and carried as `text_estimate`.
    """
    if info.kind == "pdf":
        with PdfPages(data) as pdf:
            width, height = pdf.page_size_px(number, info.dpi)
            dpi = info.dpi
            if width * height > max_pixels:
                dpi = info.dpi * (max_pixels / (width * height)) ** 0.5 * 0.999
                logger.info("page %d rendered at %.0f dpi to stay under %d pixels", number, dpi,
                            max_pixels)
            image = pdf.render(number, dpi)
            page = encode_png(image)
            if estimate:
                layer = estimate_or_none(pdf.text_layer, number, dpi / 72.0)
                pixels = estimate_or_none(from_image, image)
                text = combined(layer, pixels) if layer and pixels else layer or pixels
                page = dataclasses.replace(page, text_estimate=text)
            return page
    if not isinstance(data, bytes):
        raise TypeError("only a PDF is read from its file")
    if info.kind == "frames":
        return _frame(data, number, max_pixels, param, estimate)
    return load_image(data, max_pixels=max_pixels, max_bytes=max_bytes, param=param, estimate=estimate)


def _frame(data: bytes, number: int, max_pixels: int, param: str, estimate: bool = False) -> ImageInput:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["TIFF", "GIF"]) as image:
                image.seek(number - 1)
                if image.width * image.height > max_pixels:
                    raise PayloadTooLarge(f"{param} frame {number} has more than {max_pixels} "
                                          "pixels", param=param)
                frame = ImageOps.exif_transpose(image).convert("RGB")
    except PayloadTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{param} frame {number} has too many pixels", param=param) from None
    except MemoryError:
        raise PayloadTooLarge(f"{param} frame {number} needs too much memory", param=param) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes is bad input
        raise BadRequest(f"{param} frame {number} is corrupt ({_short(exc)})", param=param) from None
    page = encode_png(frame)
    if estimate:
        page = dataclasses.replace(page, text_estimate=estimate_or_none(from_image, frame))
    return page


def _header_size(data: bytes, param: str) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS)) as image:
                return image.size
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"{param} has too many pixels ({_short(exc)})", param=param) from None
    except UnidentifiedImageError:
        raise BadRequest(f"{param} is not a supported image or PDF; accepted formats: "
                         f"{', '.join([*sorted(ACCEPTED_FORMATS), 'PDF'])}", param=param) from None
    except Exception as exc:  # noqa: BLE001 - a header Pillow cannot read is bad input
        raise BadRequest(f"{param} is a corrupt or truncated image ({_short(exc)})", param=param) from None


def _check_size(size: tuple[int, int], max_pixels: int, max_aspect_ratio: float, what: str,
                param: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise BadRequest(f"{what} has no pixels", param=param)
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{what} has {width}x{height} = {width * height} pixels; "
                              f"the limit is {max_pixels}", param=param)
    if max_aspect_ratio and max(width, height) / min(width, height) > max_aspect_ratio:
        raise BadRequest(f"{what} is {width}x{height}: longer than {max_aspect_ratio:g} times its "
                         "width or height", param=param)


def _area(size: tuple[int, int]) -> int:
    return int(size[0]) * int(size[1])


class Document:
    """Pages of one input (an image, a multi-frame TIFF or GIF, or a PDF), rendered on demand.

    Holds the bytes and what `probe_document` found; `page_image` is blocking CPU work (the
    service runs it in its decoder processes) unless the page is `ready`: an image whose
    container was checked and that goes to the engine as it is. `deadline`
    (time.monotonic) ends all its work.
    """

    def __init__(self, data: bytes, info: DocumentInfo, *, max_pixels: int, max_bytes: int,
                 param: str = "file", deadline: float | None = None,
                 ready: ImageInput | None = None) -> None:
        self.data = data
        self.info = info
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.param = param
        self.deadline = deadline
        self.ready = ready
        #: the PDF as a file, which each page's task opens itself instead of being sent the
        #: document's bytes (a long PDF's pages would each copy them to a decoder process)
        self.path: str | None = None
        #: the input's size as received (an Office document's, where `data` is its PDF)
        self.input_bytes = len(data)
        self._closers: list[Callable[[], None]] = []

    @property
    def source(self) -> bytes | str:
        """What a page's task reads the document from: its file where it has one."""
        return self.path if self.path is not None and self.kind == "pdf" else self.data

    def on_close(self, release: Callable[[], None]) -> None:
        """Call `release` when the document is closed (a temporary file, a shared read)."""
        self._closers.append(release)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def pages(self) -> list[int]:
        return self.info.pages

    @property
    def page_count(self) -> int:
        return self.info.page_count

    def page_image(self, number: int) -> ImageInput:
        if self.ready is not None:
            return self.ready
        return render_page(self.source, self.info, number, max_pixels=self.max_pixels,
                           max_bytes=self.max_bytes, param=self.param)

    def close(self) -> None:
        """Drop the bytes (long-lived references, streams, must not keep them) and release
        what the document held."""
        self.data = b""
        self.ready = None
        self.path = None
        closers, self._closers = self._closers, []
        for release in closers:
            release()

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_document(data: bytes, *, pages: PageSpec, dpi: float, max_pages: int,
                  max_pixels: int, max_bytes: int, param: str = "file",
                  max_aspect_ratio: float = 0.0) -> Document:
    """Open any accepted input as a Document, with page selection and limits applied."""
    info = probe_document(data, pages=pages, dpi=dpi, max_pages=max_pages, max_pixels=max_pixels,
                          max_bytes=max_bytes, param=param, max_aspect_ratio=max_aspect_ratio)
    return Document(data, info, max_pixels=max_pixels, max_bytes=max_bytes, param=param)


def open_checked_image(data: bytes, *, pages: PageSpec, max_pages: int, max_pixels: int,
                       max_bytes: int, param: str = "file",
                       max_aspect_ratio: float = 0.0) -> Document | None:
    """A PNG, JPEG or WebP page that goes to the engine as it is, checked from its container
    alone (no pixel decoded; `containers`); None where it must be decoded (`open_document`)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{param} is larger than {max_bytes} bytes", param=param)
    container = check_container(data, param)
    if container is None:
        return None
    _select(pages, 1, max_pages)
    size = (container.width, container.height)
    _check_size(size, max_pixels, max_aspect_ratio, param, param)
    return Document(data, DocumentInfo("image", 1, [1], {1: _area(size)}), max_pixels=max_pixels,
                    max_bytes=max_bytes, param=param,
                    ready=ImageInput(data, container.mime, *size))


def _select(spec: PageSpec, page_count: int, max_pages: int) -> list[int]:
    selected = parse_pages(spec, page_count)
    if len(selected) > max_pages:
        raise PayloadTooLarge(f"{len(selected)} pages selected; at most {max_pages} pages per "
                              "request (select fewer with `pages`)", param="pages")
    return selected
