"""Small test images made on the fly (no files, no downloads)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image, ImageDraw


def png_bytes(width: int = 64, height: int = 48, text: str = "Hi") -> bytes:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((4, 4), text, fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "gray").save(out, format="JPEG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but holds none: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
