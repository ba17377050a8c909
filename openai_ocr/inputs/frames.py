"""Frame tables of multi-frame TIFF and GIF files, read from the headers alone.

Pillow's `n_frames` walks every frame (a TIFF's IFD chain, a GIF's blocks) before it can
answer, with a cost that grows faster than the count; a 2 MB TIFF can hold 40,000 IFDs.
These walkers stop at `cap` frames and report each frame's size, so limits apply before
any pixel is decoded. Pure: bytes in, sizes out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from openai_ocr.errors import BadRequest, PayloadTooLarge

_TIFF_MAGIC = {b"II*\x00": "<", b"MM\x00*": ">"}
_BIGTIFF_MAGIC = {b"II+\x00": "<", b"MM\x00+": ">"}
_WIDTH, _LENGTH = 256, 257
# TIFF field types holding one integer: BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG, LONG8.
_INT_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q"}


@dataclass(frozen=True)
class FrameTable:
    """What the header says: the format, and (width, height) of each frame, in order."""

    format: str
    sizes: list[tuple[int, int]]


def is_tiff(data: bytes) -> bool:
    return data[:4] in _TIFF_MAGIC or data[:4] in _BIGTIFF_MAGIC


def is_gif(data: bytes) -> bool:
    return data[:6] in (b"GIF87a", b"GIF89a")


def frame_table(data: bytes, cap: int, param: str = "file") -> FrameTable | None:
    """Frames of a TIFF or GIF (None for other formats); 413 past `cap` frames, 400 if unreadable."""
    if is_tiff(data):
        return FrameTable("TIFF", _tiff_sizes(data, cap, param))
    if is_gif(data):
        return FrameTable("GIF", _gif_sizes(data, cap, param))
    return None


def _too_many(cap: int, param: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{param} has more than {cap} frames; at most {cap} pages per request",
                           param=param)


def _tiff_sizes(data: bytes, cap: int, param: str) -> list[tuple[int, int]]:
    big = data[:4] in _BIGTIFF_MAGIC
    order = (_BIGTIFF_MAGIC if big else _TIFF_MAGIC)[data[:4]]
    count_fmt, entry_size, offset_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
    try:
        offset = struct.unpack_from(order + offset_fmt, data, 8 if big else 4)[0]
        sizes: list[tuple[int, int]] = []
        seen: set[int] = set()
        while offset:
            if offset in seen:  # a loop in the chain ends it, as libtiff does
                break
            if len(sizes) >= cap:
                raise _too_many(cap, param)
            seen.add(offset)
            count = struct.unpack_from(order + count_fmt, data, offset)[0]
            start = offset + struct.calcsize(count_fmt)
            if start + count * entry_size > len(data):
                raise BadRequest(f"{param}: TIFF directory {len(sizes) + 1} is truncated",
                                 param=param)
            tags: dict[int, int] = {}
            for i in range(count):
                at = start + i * entry_size
                tag, kind = struct.unpack_from(order + "HH", data, at)
                if tag in (_WIDTH, _LENGTH) and kind in _INT_TYPES:
                    tags[tag] = struct.unpack_from(order + _INT_TYPES[kind], data,
                                                   at + (12 if big else 8))[0]
            if _WIDTH not in tags or _LENGTH not in tags:
                raise BadRequest(f"{param}: TIFF frame {len(sizes) + 1} has no width or height",
                                 param=param)
            sizes.append((tags[_WIDTH], tags[_LENGTH]))
            offset = struct.unpack_from(order + offset_fmt, data, start + count * entry_size)[0]
    except struct.error:
        raise BadRequest(f"{param} is a truncated TIFF", param=param) from None
    if not sizes:
        raise BadRequest(f"{param} is a TIFF without images", param=param)
    return sizes


def _skip_sub_blocks(data: bytes, at: int) -> int:
    while True:
        size = data[at]
        at += 1 + size
        if size == 0:
            return at


def _gif_sizes(data: bytes, cap: int, param: str) -> list[tuple[int, int]]:
    """Every GIF frame is composed onto the full canvas, so each costs the canvas size."""
    try:
        width, height, flags = struct.unpack_from("<HHB", data, 6)
        at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        frames = 0
        while at < len(data):
            block = data[at]
            if block == 0x3B:  # trailer
                break
            if block == 0x21:  # extension: label, then sub-blocks
                at = _skip_sub_blocks(data, at + 2)
            elif block == 0x2C:  # image descriptor, optional local table, LZW size, sub-blocks
                if frames >= cap:
                    raise _too_many(cap, param)
                frames += 1
                local = data[at + 9]
                at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
                at = _skip_sub_blocks(data, at + 1)
            else:
                break  # garbage after the last frame: Pillow stops there too
    except IndexError:
        pass  # truncated in a frame: the decoder reports it for that page
    except struct.error:
        raise BadRequest(f"{param} is a truncated GIF", param=param) from None
    return [(width, height)] * max(frames, 1)
