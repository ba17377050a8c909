"""Container checks: sound PNG/JPEG/WebP pass without a decode, broken ones are 400s, and
what only a decode can judge (rotation, animation, other formats) is left to the decoder."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from openai_ocr.errors import OCRError
from openai_ocr.inputs.containers import check_container
from openai_ocr.inputs.documents import load_image

LIMITS = {"max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


def page(mode: str = "RGB", size: tuple[int, int] = (120, 80)) -> Image.Image:
    image = Image.new(mode, size, "white")
    ImageDraw.Draw(image).text((5, 5), "Invoice 2026", fill="black")
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


SOUND = {
    "png rgb": (encoded(page(), "PNG"), "image/png"),
    "png grey": (encoded(page("L"), "PNG"), "image/png"),
    "png palette": (encoded(page().convert("P"), "PNG"), "image/png"),
    "png interlaced": (encoded(page(), "PNG", interlace=1), "image/png"),
    "png 16-bit": (encoded(page("I;16"), "PNG"), "image/png"),
    "jpeg baseline": (encoded(page(), "JPEG"), "image/jpeg"),
    "jpeg progressive": (encoded(page(), "JPEG", progressive=True), "image/jpeg"),
    "jpeg grey": (encoded(page("L"), "JPEG"), "image/jpeg"),
    "jpeg cmyk": (encoded(page("CMYK"), "JPEG"), "image/jpeg"),
    "webp lossy": (encoded(page(), "WEBP"), "image/webp"),
    "webp lossless": (encoded(page(), "WEBP", lossless=True), "image/webp"),
}


@pytest.mark.parametrize("name", list(SOUND))
def test_sound_images_pass_with_their_size(name: str) -> None:
    data, mime = SOUND[name]
    container = check_container(data)
    assert container is not None
    assert (container.mime, container.width, container.height) == (mime, 120, 80)
    assert load_image(data, **LIMITS).mime == mime  # the decoder agrees they are sound


def with_exif_orientation(data: bytes, fmt: str, orientation: int) -> bytes:
    image = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, fmt, exif=exif.tobytes())


@pytest.mark.parametrize("data", [
    with_exif_orientation(SOUND["jpeg baseline"][0], "JPEG", 6),
    with_exif_orientation(SOUND["png rgb"][0], "PNG", 6),
    with_exif_orientation(SOUND["webp lossy"][0], "WEBP", 6),
    encoded(page(), "PNG", save_all=True, append_images=[Image.new("RGB", (120, 80), "black")]),
    encoded(page(), "WEBP", save_all=True, append_images=[Image.new("RGB", (120, 80), "black")]),
    encoded(page(), "GIF"), encoded(page(), "BMP"), encoded(page(), "TIFF"),
], ids=["jpeg rotated", "png exif", "webp exif", "apng", "animated webp", "gif", "bmp", "tiff"])
def test_what_only_a_decode_can_judge_is_left_to_the_decoder(data: bytes) -> None:
    assert check_container(data) is None


def test_an_upright_exif_block_does_not_force_a_decode() -> None:
    assert check_container(with_exif_orientation(SOUND["jpeg baseline"][0], "JPEG", 1)) is not None


def flip_byte(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x55]) + data[position + 1:]


def png_chunks(data: bytes) -> list[tuple[bytes, int]]:
    """(type, offset) of each chunk."""
    out, position = [], 8
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        out.append((kind, position))
        position += 12 + length
    return out


def idat_offset(data: bytes) -> int:
    return next(offset for kind, offset in png_chunks(data) if kind == b"IDAT")


def replace_ihdr(data: bytes, depth: int, colour: int) -> bytes:
    body = struct.pack(">IIBBBBB", 120, 80, depth, colour, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + body + struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return data[:8] + chunk + data[8 + 25:]


def without_chunk(data: bytes, name: bytes) -> bytes:
    for kind, offset in png_chunks(data):
        if kind == name:
            (length,) = struct.unpack_from(">I", data, offset)
            return data[:offset] + data[offset + 12 + length:]
    raise AssertionError(name)


PNG = SOUND["png rgb"][0]
JPEG = SOUND["jpeg baseline"][0]
WEBP = SOUND["webp lossy"][0]


@pytest.mark.parametrize("data, needle", [
    (flip_byte(PNG, idat_offset(PNG) + 20), "CRC"),
    (PNG[:len(PNG) // 2], "runs past the end"),
    (without_chunk(PNG, b"IEND"), "IEND"),
    (replace_ihdr(PNG, 3, 2), "bit depth 3"),
    (without_chunk(SOUND["png palette"][0], b"PLTE"), "PLTE"),
    (JPEG[:len(JPEG) - 200], "end-of-image"),
    (JPEG[:40], "runs past the end"),
    (JPEG[:JPEG.index(b"\xff\xdb")] + b"\x00" + JPEG[JPEG.index(b"\xff\xdb") + 1:], "no JPEG marker"),
    (WEBP[:len(WEBP) - 50], "truncated"),
], ids=["png crc", "png truncated", "png no iend", "png bad header", "palette without plte",
        "jpeg truncated", "jpeg header only", "jpeg broken marker", "webp truncated"])
def test_broken_containers_are_400_naming_the_fault(data: bytes, needle: str) -> None:
    with pytest.raises(OCRError) as err:
        check_container(data, "image")
    assert err.value.status_code == 400 and needle in err.value.message, err.value.message


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["png rgb", "png palette", "jpeg baseline", "jpeg progressive", "webp lossy"]),
       st.floats(0.0, 0.999))
def test_no_truncated_file_passes(name: str, keep: float) -> None:
    """A cut anywhere: refused, or left to the decoder; never sent on as sound."""
    data = SOUND[name][0]
    cut = data[:int(len(data) * keep)]
    try:
        assert check_container(cut) is None
    except OCRError as exc:
        assert exc.status_code == 400
