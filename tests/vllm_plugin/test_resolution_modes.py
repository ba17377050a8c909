"""Per-request resolution modes on the real vLLM engine (tiny DeepSeek-OCR, random weights).

The plugin's processor must put exactly as many `<image>` placeholders in the prompt as the
vision encoders produce, for every mode and aspect ratio, or the engine fails. So each check
runs a real request and compares `usage.prompt_tokens` with BOS + the formula's image tokens
+ the prompt's text tokens. Requests are batched: one `/ocr/batch` covers every mode (and
puts images of different sizes into the same encoder batches), one token each.
"""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from openai_ocr.ocr.resolution import MODES, image_tokens
from tests.helpers import ENGINE_API_KEY, ENGINE_AUTH, SERVED_NAME, b64, png_bytes, require
from tests.helpers import data_url as url_of

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

TIMEOUT = httpx.Timeout(900, connect=10)
FAMILY = "deepseek-ocr"
#: (width, height): small square, A4 portrait at 144 dpi, wide landscape (gundam: a row of two tiles)
SQUARE, A4, WIDE = (400, 400), (1190, 1684), (1400, 700)
PROMPT = "\nFree OCR."


def png(size: tuple[int, int]) -> bytes:
    return png_bytes(*size, text="Invoice 42")


def page(size: tuple[int, int]) -> str:
    return b64(png(size))


def data_url(size: tuple[int, int]) -> str:
    return url_of(png(size))


def expected(mode: str, size: tuple[int, int], text_tokens: int) -> int:
    return 1 + image_tokens(FAMILY, MODES[FAMILY][mode], *size) + text_tokens


@pytest.fixture(scope="module")
def client(vllm_server: str) -> httpx.Client:
    with httpx.Client(base_url=vllm_server, timeout=TIMEOUT, headers=ENGINE_AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def prompt_tokens(tiny_checkpoint) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(tiny_checkpoint)).encode(PROMPT, add_special_tokens=False))


def test_formula_matches_the_issue() -> None:
    """Tiny 73, Small 111, Base 273, Large 421 image tokens (vLLM's separators included)."""
    counts = {m: image_tokens(FAMILY, MODES[FAMILY][m], *A4) for m in ("tiny", "small", "base", "large")}
    assert counts == {"tiny": 73, "small": 111, "base": 273, "large": 421}


def test_invalid_modes_are_400_and_the_engine_keeps_serving(client: httpx.Client) -> None:
    """Refused before the engine: by our gate (chat) and by the legacy route (/ocr)."""
    message = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(SQUARE)}},
                                            {"type": "text", "text": "Free OCR."}]}]
    for kwargs in ({"base_size": 777}, {"resolution": "huge"}, {"base_size": 512, "crop_mode": True},
                   {"num_crops": 9}):
        r = client.post("/v1/chat/completions", json={
            "model": SERVED_NAME, "messages": message, "max_tokens": 1,
            "mm_processor_kwargs": kwargs})
        assert r.status_code == 400, (kwargs, r.text)
        assert "tiny" in r.text and "gundam" in r.text, r.text
    r = client.post("/ocr", json={"image_base64": page(SQUARE), "resolution": "huge", "max_tokens": 1})
    assert r.status_code == 400 and "gundam" in r.json()["error"]["message"]
    r = client.post("/ocr", json={"image_base64": page(SQUARE), "base_size": 777, "max_tokens": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "base_size"
    assert client.get("/health").json()["model_loaded"] is True


def test_every_mode_and_aspect_ratio(client: httpx.Client, prompt_tokens: int) -> None:
    """One request per mode, sizes mixed; the token counts prove the placeholders match.

    Aspect ratios matter to the tiled mode only (the others pad the page to one square
    view), so gundam gets two shapes (2x3 tiles, a row of tiles) and the other modes A4; a
    wide page in tiny mode runs in the raw-sizes test below, gundam on a page too small to
    tile (273 tokens) in test_vllm_engine.py's /ocr/file request.

    Sent one at a time: on the CPU build (float32, eager) SAM's global attention over a Large
    page takes several GB, and a batch encoding Large and Gundam pages together can exhaust
    a 24 GB machine (docs/resolution-modes.md)."""
    cases = [("tiny", A4), ("small", A4), ("base", A4), ("large", A4), ("gundam", A4), ("gundam", WIDE)]
    got = []
    for mode, size in cases:
        r = client.post("/ocr", json={"image_base64": page(size), "resolution": mode, "mode": "free_ocr",
                                      "max_tokens": 1})
        assert r.status_code == 200, (mode, size, r.text)
        got.append((r.json()["resolution"], r.json()["usage"]["prompt_tokens"]))
    assert got == [(mode, expected(mode, size, prompt_tokens)) for mode, size in cases]
    # The A4 figures of docs/resolution-modes.md; Gundam tiles an A4 page 2x3 (903 image tokens).
    assert [tokens - 1 - prompt_tokens for _, tokens in got[:5]] == [73, 111, 273, 421, 903]


def test_raw_sizes_and_mm_processor_kwargs_through_the_openai_sdk(vllm_server: str,
                                                                  prompt_tokens: int) -> None:
    client = OpenAI(base_url=f"{vllm_server}/v1", api_key=ENGINE_API_KEY, timeout=900, max_retries=0)
    message = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(A4)}},
                                            {"type": "text", "text": "Free OCR."}]}]
    for kwargs, mode in (({"resolution": "tiny"}, "tiny"),
                         ({"base_size": 640, "image_size": 640, "crop_mode": False}, "small")):
        answer = client.chat.completions.create(
            model=SERVED_NAME, messages=message, max_tokens=1, temperature=0,
            extra_body={"mm_processor_kwargs": kwargs})
        assert answer.usage.prompt_tokens == expected(mode, A4, prompt_tokens), kwargs
    # the legacy multipart form takes the old server's raw fields
    r = httpx.post(f"{vllm_server}/ocr/file", files={"file": ("p.png", png(WIDE), "image/png")},
                   data={"base_size": "512", "image_size": "512", "crop_mode": "false",
                         "mode": "free_ocr", "max_tokens": "1"}, timeout=TIMEOUT, headers=ENGINE_AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["resolution"], r.json()["usage"]["prompt_tokens"]) == (
        "tiny", expected("tiny", WIDE, prompt_tokens))
