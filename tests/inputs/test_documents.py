import base64
import io

import pytest
from PIL import Image

from openai_ocr.errors import OCRError
from openai_ocr.inputs.documents import decode_base64_payload, load_image
from tests.helpers import b64, jpeg_bytes, png_bytes

LIMITS = {"max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


def test_plain_base64_and_data_url_decode_to_the_same_bytes() -> None:
    data = png_bytes()
    assert decode_base64_payload(b64(data), max_bytes=10**6) == data
    assert decode_base64_payload("data:image/png;base64," + b64(data), max_bytes=10**6) == data
    assert decode_base64_payload(b64(data).rstrip("=") + "\n", max_bytes=10**6) == data  # no padding


@pytest.mark.parametrize("value, status", [
    ("not base64 at all!!", 400),
    ("", 400),
    ("data:image/png,rawtext", 400),
    ("data:garbage", 400),
])
def test_bad_base64_is_400(value: str, status: int) -> None:
    with pytest.raises(OCRError) as err:
        decode_base64_payload(value, max_bytes=10**6)
    assert err.value.status_code == status


def test_oversized_base64_is_413_before_decoding() -> None:
    with pytest.raises(OCRError) as err:
        decode_base64_payload("A" * 4000, max_bytes=1000)
    assert err.value.status_code == 413


def test_png_and_jpeg_pass_through_unchanged() -> None:
    for data, mime in ((png_bytes(), "image/png"), (jpeg_bytes(), "image/jpeg")):
        image = load_image(data, **LIMITS)
        assert (image.data, image.mime, image.width, image.height) == (data, mime, 64, 48)
        assert image.data_url() == f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_other_formats_are_reencoded_as_png() -> None:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), "red").save(out, format="BMP")
    image = load_image(out.getvalue(), **LIMITS)
    assert image.mime == "image/png" and image.data.startswith(b"\x89PNG")
    assert (image.width, image.height) == (30, 20)


def test_exif_rotation_is_applied() -> None:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    Image.new("RGB", (40, 10), "blue").save(out, format="JPEG", exif=exif)
    image = load_image(out.getvalue(), **LIMITS)
    assert (image.width, image.height, image.mime) == (10, 40, "image/png")


@pytest.mark.parametrize("data", [b"hello, this is text", b"%PDF-1.4 nope", png_bytes()[:60]])
def test_non_images_and_truncated_images_are_400(data: bytes) -> None:
    with pytest.raises(OCRError) as err:
        load_image(data, **LIMITS)
    assert err.value.status_code == 400


def test_too_many_pixels_is_413_without_decoding() -> None:
    with pytest.raises(OCRError) as err:
        load_image(png_bytes(200, 200), max_pixels=10_000, max_bytes=10**6)
    assert err.value.status_code == 413 and "pixels" in err.value.message


def test_file_over_byte_limit_is_413() -> None:
    with pytest.raises(OCRError) as err:
        load_image(png_bytes(), max_pixels=10**6, max_bytes=10)
    assert err.value.status_code == 413
