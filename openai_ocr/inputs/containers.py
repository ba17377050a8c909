"""PNG, JPEG and WebP checked from their containers alone, without decoding a pixel.

A full decode costs 6-50 ms a page (measured in `scripts/bench_image_checks.py`) and is only
needed where the image must change (EXIF rotation, animation) or the format has no cheaper
check. What these walkers check instead, in well under a millisecond:

- PNG: the signature, IHDR's size and its valid depth/colour combinations, every chunk's
  CRC-32 (as Pillow's `verify()` does), IDAT present, IEND reached: a flipped bit or a
  truncated file is found.
- JPEG: the marker segments up to the scan (lengths inside the file, a baseline or
  progressive frame header with the size), EXIF orientation, and an EOI marker after the scan
  (a truncated file has none).
- WebP: the RIFF length against the file's, then the size and flags from libwebp's own
  container parser (through Pillow, which does not decode pixels on open).

`None` means "decode it fully to tell": other formats, rotated, animated, or unusual files.
Pure Python with bounded loops (segments and chunks are counted), so hostile headers cost
microseconds here, never a stall.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from openai_ocr.errors import BadRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
_PNG_DECODE_FIRST = {b"acTL", b"eXIf"}  # animated, or possibly rotated: decode to tell
_MAX_CHUNKS = 100_000

_JPEG_FRAMES = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive (Huffman)
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_MAX_SEGMENTS = 256
_WEBP_EXIF = 0x08  # VP8X flag: an EXIF chunk follows the image
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Container:
    """What a checked container says: its format, MIME type and size in pixels."""

    format: str
    mime: str
    width: int
    height: int


def check_container(data: bytes, param: str = "image") -> Container | None:
    """The image's container, checked; None where only a full decode can tell; 400 if broken."""
    if data.startswith(PNG_SIGNATURE):
        return _png(memoryview(data), param)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data, param)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, param)
    return None


def _corrupt(param: str, why: str) -> BadRequest:
    return BadRequest(f"{param} is a corrupt or truncated image ({why})", param=param)


def _png(view: memoryview, param: str) -> Container | None:
    size = len(view)
    position = len(PNG_SIGNATURE)
    width = height = colour = 0
    seen_palette = seen_idat = False
    for count in range(_MAX_CHUNKS):
        if position + 12 > size:
            raise _corrupt(param, "PNG ends before its IEND chunk")
        length, kind = struct.unpack_from(">I4s", view, position)
        end = position + 8 + length
        if length > 0x7FFFFFFF or end + 4 > size:
            raise _corrupt(param, f"PNG chunk {kind!r} runs past the end of the file")
        (crc,) = struct.unpack_from(">I", view, end)
        if zlib.crc32(view[position + 4:end]) != crc:
            raise _corrupt(param, f"PNG chunk {kind.decode('latin-1')} fails its CRC check")
        if count == 0:
            if kind != b"IHDR" or length != 13:
                raise _corrupt(param, "PNG does not start with an IHDR chunk")
            width, height, depth, colour, *methods = struct.unpack_from(">IIBBBBB", view, position + 8)
            if depth not in _PNG_DEPTHS.get(colour, set()) or methods[0] or methods[1] or methods[2] > 1:
                raise _corrupt(param, f"PNG header: bit depth {depth}, colour type {colour}, "
                               f"methods {methods}")
        elif kind in _PNG_DECODE_FIRST:
            return None
        elif kind == b"PLTE":
            seen_palette = True
        elif kind == b"IDAT":
            if colour == 3 and not seen_palette:
                raise _corrupt(param, "palette PNG has no PLTE chunk before its image data")
            seen_idat = True
        elif kind == b"IEND":
            if not seen_idat:
                raise _corrupt(param, "PNG has no image data")
            return Container("PNG", "image/png", width, height)
        position = end + 4
    return None  # more chunks than any real page has: let the decoder judge


def _jpeg(data: bytes, param: str) -> Container | None:
    size = len(data)
    position = 2
    width = height = 0
    for _ in range(_MAX_SEGMENTS):
        if position + 4 > size:
            raise _corrupt(param, "JPEG ends before its image data")
        if data[position] != 0xFF:
            raise _corrupt(param, f"no JPEG marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        end = position + 2 + length
        if length < 2 or end > size:
            raise _corrupt(param, f"JPEG segment {marker:#04x} runs past the end of the file")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _JPEG_FRAMES or length < 8:
                return None  # lossless, arithmetic or hierarchical coding: rare, decode to tell
            height, width = struct.unpack_from(">HH", data, position + 5)
        elif marker == 0xE1 and data[position + 4:position + 10] == b"Exif\x00\x00":
            if _exif_orientation(data[position + 10:end]) not in (None, 1):
                return None  # must be turned upright: decoded and re-encoded
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            if not width or not height:
                raise _corrupt(param, "JPEG has no frame header before its image data")
            if data.rfind(b"\xff\xd9", end) < 0:
                raise _corrupt(param, "JPEG has no end-of-image marker: it is truncated")
            return Container("JPEG", "image/jpeg", width, height)
        elif marker == 0xD9:
            raise _corrupt(param, "JPEG ends before its image data")
        position = end
    return None  # more segments than any real page has: let the decoder judge


def _exif_orientation(tiff: bytes) -> int | None:
    try:
        exif = Image.Exif()
        exif.load(b"Exif\x00\x00" + tiff)
        value = exif.get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - a broken EXIF block: let the decoder judge
        return -1
    return value if isinstance(value, int) else None


def _webp(data: bytes, param: str) -> Container | None:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 > len(data) or riff_size < 12:
        raise _corrupt(param, "WebP is shorter than its RIFF header says: it is truncated")
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as image:
            if getattr(image, "is_animated", False) or _webp_flags(data) & _WEBP_EXIF:
                return None  # animated, or may carry a rotation
            width, height = image.size
    except Exception as exc:  # noqa: BLE001 - libwebp refused the container
        raise _corrupt(param, f"WebP container: {exc}") from None
    return Container("WEBP", "image/webp", width, height)


def _webp_flags(data: bytes) -> int:
    """The VP8X header's feature flags (only extended WebP files carry EXIF)."""
    return data[20] if data[12:16] == b"VP8X" and len(data) > 20 else 0
