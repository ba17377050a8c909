"""Decoding of request inputs into validated images: base64, data URLs and uploads.

Everything here is pure (bytes in, bytes out) and raises `OCRError`s with a 4xx status, so
bad input never reaches an engine. Callers run `load_image` in a thread: decoding a large
image is CPU work.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from openai_ocr.errors import BadRequest, PayloadTooLarge

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


def decode_base64_payload(value: str, *, max_bytes: int, param: str = "image_base64") -> bytes:
    """Decode plain base64 or a `data:...;base64,` URL, checking the size before decoding."""
    text = value.strip()
    if not text:
        raise BadRequest(f"{param} is empty", param=param)
    if text[:5].lower() == "data:":
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
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(f"{param} is not a supported image ({_short(exc)}); "
                         f"accepted formats: {', '.join(sorted(ACCEPTED_FORMATS))}", param=param) from None
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
