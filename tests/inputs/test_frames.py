"""Multi-frame inputs: frame tables from headers (capped), and pages that never mix."""

from __future__ import annotations

import io
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from openai_ocr.errors import BadRequest, PayloadTooLarge
from openai_ocr.inputs.documents import open_document, probe_document
from openai_ocr.inputs.frames import frame_table
from tests.helpers import gif_with_frames, many_ifd_tiff, text_frames_tiff

LIMITS = {"dpi": 72, "max_pages": 1000, "max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


def test_concurrent_pages_of_a_multi_frame_file_never_mix() -> None:
    """Fails where one shared Pillow image is seeked from several threads."""
    data = text_frames_tiff(24)
    with open_document(data, pages=None, **LIMITS) as doc:
        for _ in range(3):
            with ThreadPoolExecutor(8) as pool:
                widths = list(pool.map(lambda n: doc.page_image(n).width, doc.pages * 2))
            assert widths == [200 + n for n in doc.pages * 2]


def test_frame_count_is_capped_while_reading() -> None:
    data = many_ifd_tiff(4000)
    with pytest.raises(PayloadTooLarge, match="more than 1000 frames"):
        frame_table(data, cap=1000)
    table = frame_table(many_ifd_tiff(30), cap=1000)
    assert table is not None and table.format == "TIFF" and len(table.sizes) == 30


def test_every_selected_frame_is_size_checked_before_decoding() -> None:
    small, big = Image.new("L", (10, 10)), Image.new("L", (1, 1))
    out = io.BytesIO()
    small.save(out, format="TIFF", save_all=True, append_images=[big])
    data = bytearray(out.getvalue())
    # rewrite frame 2's width and height tags to 20000 x 20000 (its pixels stay 1x1)
    offset = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, offset)[0]
    offset = struct.unpack_from("<I", data, offset + 2 + count * 12)[0]
    count = struct.unpack_from("<H", data, offset)[0]
    for i in range(count):
        at = offset + 2 + i * 12
        tag, kind = struct.unpack_from("<HH", data, at)
        if tag in (256, 257):
            struct.pack_into("<HHI" + ("H2x" if kind == 3 else "I"), data, at, tag, kind, 1, 20000)
    assert probe_document(bytes(data), pages="1", **{**LIMITS, "max_pixels": 1000}).pages == [1]
    with pytest.raises(PayloadTooLarge, match="frame 2"):
        probe_document(bytes(data), pages="2", **{**LIMITS, "max_pixels": 1000})


def test_tiff_without_dimensions_is_a_400() -> None:
    header = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 259, 3, 1, 1)
    with pytest.raises(BadRequest, match="no width or height"):
        frame_table(header + struct.pack("<I", 0), cap=10)


def test_gif_frames_count_as_pages_and_cost_the_frames_before_them() -> None:
    data = gif_with_frames(5, 300, 200)
    table = frame_table(data, cap=100)
    assert table is not None and table.sizes == [(300, 200)] * 5
    info = probe_document(data, pages="2,5", **LIMITS)
    assert info.kind == "frames" and info.page_count == 5
    assert info.page_pixels == {2: 2 * 60_000, 5: 5 * 60_000}
    with pytest.raises(PayloadTooLarge):
        frame_table(gif_with_frames(1001, 8000, 8000), cap=1000)
