"""The lite engine reads every page at full resolution, yet with `resolution: "auto"` it counts
the vision tokens DeepSeek-OCR would spend in the mode auto picks for the page, in
`usage.image_tokens` and in `usage.prompt_tokens` alike."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.ocr.resolution import MODES, image_tokens
from openai_ocr.settings import load_settings
from tests.helpers import b64, png_of, require, require_file, serve

require("rapidocr", "the lite extra")

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def slide() -> bytes:
    image = Image.new("RGB", (1280, 720), "white")
    font = ImageFont.truetype(str(require_file(FONT, "fonts-dejavu-core")), 64)
    ImageDraw.Draw(image).text((80, 300), "Quarterly results 2026", fill="black", font=font)
    return png_of(image)


@pytest.fixture(scope="module")
def lite_server() -> Iterator[str]:
    with serve(load_settings(overrides={"engine": {"kind": "lite"}})) as (url, _):
        yield url


def test_usage_follows_the_mode_auto_picked(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(slide()), "output": "json",
                                               "resolution": "auto"}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    (page,) = body["pages"]
    mode = page["quality"]["resolution"]
    assert mode in ("tiny", "small") and body["resolution"] == "auto"
    vision = image_tokens("deepseek-ocr", MODES["deepseek-ocr"][mode], 1280, 720)
    assert page["usage"]["image_tokens"] == vision
    # the prompt: BOS, those vision tokens and a dozen tokens of prompt text (not Gundam's 483)
    assert 1 + vision < page["usage"]["prompt_tokens"] < vision + 40
    assert any("lite engine" in w and "resolution" in w for w in body["warnings"])
