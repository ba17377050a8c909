"""DeepSeek-OCR-2 behind the launcher and plugin (tiny checkpoint, random weights).

A second vLLM server (its own start, about as long as the first): kept to two engine
requests. The family is recognised from the checkpoint's architecture, not the served name.
The tiled request uses a 2:1 page (two 768 tiles) rather than A4 (six): the same code and
formula, a third of the vision work; test_ocr2_formula checks A4's count.
"""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from openai_ocr.ocr.resolution import MODES, image_tokens
from tests.helpers import ENGINE_API_KEY, ENGINE_AUTH, OCR2_SERVED_NAME, b64, png_bytes, require

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

TIMEOUT = httpx.Timeout(900, connect=10)
FAMILY = "deepseek-ocr-2"
A4, SQUARE, WIDE = (1190, 1684), (500, 400), (800, 400)


def page(size: tuple[int, int]) -> str:
    return b64(png_bytes(*size))


@pytest.fixture(scope="module")
def text_tokens(tiny_ocr2_checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_ocr2_checkpoint))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def test_ocr2_formula() -> None:
    """257 for the global view alone (16x16 + separator, no newline tokens); 144 per tile."""
    gundam = MODES[FAMILY]["gundam"]
    assert image_tokens(FAMILY, gundam, *SQUARE) == 257
    assert image_tokens(FAMILY, gundam, *A4) == 257 + 6 * 144
    assert image_tokens(FAMILY, gundam, *WIDE) == 257 + 2 * 144


def test_ocr2_serves_its_prompts_and_mode_only(vllm_ocr2_server: str, text_tokens) -> None:
    with httpx.Client(base_url=vllm_ocr2_server, timeout=TIMEOUT, headers=ENGINE_AUTH) as client:
        r = client.post("/ocr", json={"image_base64": page(SQUARE), "mode": "describe"})
        assert r.status_code == 400
        assert "markdown" in r.json()["error"]["message"] and "free_ocr" in r.json()["error"]["message"]
        r = client.post("/ocr", json={"image_base64": page(SQUARE), "resolution": "tiny"})
        assert r.status_code == 400 and "768" in r.json()["error"]["message"]
        r = client.post("/v1/chat/completions", json={
            "model": OCR2_SERVED_NAME, "max_tokens": 1,
            "mm_processor_kwargs": {"base_size": 1024, "image_size": 640, "crop_mode": True},
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + page(SQUARE)}},
                {"type": "text", "text": "Free OCR."}]}]})
        assert r.status_code == 400 and "768" in r.text

        r = client.post("/ocr", json={"image_base64": page(WIDE), "mode": "markdown", "max_tokens": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resolution"] == "gundam"
        assert body["usage"]["prompt_tokens"] == 1 + 257 + 2 * 144 + text_tokens(
            "\n<|grounding|>Convert the document to markdown.")


def test_ocr2_chat_completions_with_its_mode(vllm_ocr2_server: str, text_tokens) -> None:
    client = OpenAI(base_url=f"{vllm_ocr2_server}/v1", api_key=ENGINE_API_KEY, timeout=900, max_retries=0)
    answer = client.chat.completions.create(
        model=OCR2_SERVED_NAME, max_tokens=1, temperature=0,
        extra_body={"mm_processor_kwargs": {"resolution": "gundam"}},
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + page(SQUARE)}},
            {"type": "text", "text": "Free OCR."}]}])
    assert answer.usage.prompt_tokens == 1 + 257 + text_tokens("\nFree OCR.")
