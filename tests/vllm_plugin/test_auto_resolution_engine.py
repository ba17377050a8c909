"""`resolution: "auto"` on the real vLLM engine (tiny DeepSeek-OCR, random weights): the page
goes to the engine as its chosen mode's three values, and the engine's prompt holds exactly
that mode's vision tokens; `auto` itself is refused by the engine's gate. Nothing here says
how well a mode reads (random weights)."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.ocr.resolution import MODES, image_tokens
from tests.helpers import ENGINE_AUTH, SERVED_NAME, b64, data_url, require, require_file

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

TIMEOUT = httpx.Timeout(900, connect=10)
PROMPT = "\nFree OCR."
SIZE = (1280, 720)


def slide() -> bytes:
    image = Image.new("RGB", SIZE, "white")
    font = ImageFont.truetype(str(require_file("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                               "fonts-dejavu-core")), 64)
    ImageDraw.Draw(image).text((80, 300), "Quarterly results 2026", fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def client(vllm_server: str) -> httpx.Client:
    with httpx.Client(base_url=vllm_server, timeout=TIMEOUT, headers=ENGINE_AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def text_tokens(tiny_checkpoint) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(tiny_checkpoint)).encode(PROMPT, add_special_tokens=False))


def test_auto_reaches_the_engine_as_the_mode_it_picked(client: httpx.Client, text_tokens: int) -> None:
    r = client.post("/ocr", json={"image_base64": b64(slide()), "resolution": "auto", "mode": "free_ocr",
                                  "max_tokens": 1, "output": "json"})
    assert r.status_code == 200, r.text
    body = r.json()
    (page,) = body["pages"]
    mode = page["quality"]["resolution"]
    assert body["resolution"] == "auto" and mode in ("tiny", "small")
    vision = image_tokens("deepseek-ocr", MODES["deepseek-ocr"][mode], *SIZE)
    assert page["usage"]["image_tokens"] == vision
    assert body["usage"]["prompt_tokens"] == 1 + vision + text_tokens


def test_auto_is_refused_by_the_engine_s_gate(client: httpx.Client) -> None:
    message = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(slide())}},
                                            {"type": "text", "text": "Free OCR."}]}]
    r = client.post("/v1/chat/completions", json={"model": SERVED_NAME, "messages": message, "max_tokens": 1,
                                                  "mm_processor_kwargs": {"resolution": "auto"}})
    assert r.status_code == 400, r.text
    assert "per page" in r.text and "gundam" in r.text
    assert client.get("/health").json()["model_loaded"] is True
