"""Confidence on the real vLLM engine (tiny DeepSeek-OCR, random weights): vLLM's token
log-probabilities line up with the answer (`skip_special_tokens: false`), and the routes turn
them into page and block confidences in 0..1.

The expected figures come from the same request sent to `/v1/chat/completions` (greedy
decoding: the same tokens), never from the code under test. Requests read the page at the
tiny resolution and write a few tokens (the random model writes filler tokens, no loop).
"""

from __future__ import annotations

import importlib.util
import json
import math
from typing import Any

import httpx
import pytest

from openai_ocr.ocr.confidence import TokenScores
from openai_ocr.ocr.resolution import MODES
from tests.helpers import ENGINE_AUTH, SERVED_NAME, b64, png_bytes, require
from tests.helpers import data_url as url_of

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

TIMEOUT = httpx.Timeout(900, connect=10)
TINY = {"resolution": "tiny"}
NGRAM_XARGS = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}
TOKENS = 10
PAGE = png_bytes(400, 300, text="Invoice 42")


@pytest.fixture(scope="module")
def client(vllm_server: str) -> httpx.Client:
    with httpx.Client(base_url=vllm_server, timeout=TIMEOUT, headers=ENGINE_AUTH) as c:
        yield c


def chat_body(**extra: Any) -> dict[str, Any]:
    """What `/ocr` sends for `mode: free_ocr`, `max_tokens: TOKENS` at the tiny resolution."""
    return {"model": SERVED_NAME, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url_of(PAGE)}}, {"type": "text", "text": "Free OCR."}]}],
        "temperature": 0, "max_tokens": TOKENS, "skip_special_tokens": False, "vllm_xargs": NGRAM_XARGS,
        "mm_processor_kwargs": MODES["deepseek-ocr"]["tiny"].mm_processor_kwargs(), "logprobs": True, **extra}


@pytest.fixture(scope="module")
def chat(client: httpx.Client) -> dict[str, Any]:
    r = client.post("/v1/chat/completions", json=chat_body())
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_token_texts_concatenate_to_the_answer(chat: dict[str, Any]) -> None:
    choice = chat["choices"][0]
    tokens = choice["logprobs"]["content"]
    assert len(tokens) == chat["usage"]["completion_tokens"] == TOKENS
    assert "".join(t["token"] for t in tokens) == choice["message"]["content"]
    assert all(t["logprob"] <= 0 for t in tokens)
    scores = TokenScores.align(choice["message"]["content"], [(t["token"], t["logprob"]) for t in tokens])
    assert scores.exact


def test_ocr_json_pages_carry_the_engines_confidence(client: httpx.Client, chat: dict[str, Any]) -> None:
    r = client.post("/ocr", json={"image_base64": b64(PAGE), "mode": "free_ocr", "max_tokens": TOKENS,
                                  "output": "json", **TINY})
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    assert page["quality"]["attempts"] == 1 and page["text"] == chat["choices"][0]["message"]["content"]
    written = [t["logprob"] for t in chat["choices"][0]["logprobs"]["content"] if t["token"].strip()]
    confidence = page["confidence"]
    assert 0 <= confidence["minimum"] <= confidence["average"] <= 1
    assert confidence["average"] == pytest.approx(math.exp(sum(written) / len(written)), rel=1e-3)
    assert confidence["minimum"] == pytest.approx(math.exp(min(written)), rel=1e-3)
    for block in page["blocks"]:
        assert 0 <= block["confidence"]["minimum"] <= block["confidence"]["average"] <= 1


def test_the_stream_collects_the_logprobs_of_its_chunks(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/chat/completions", json=chat_body(stream=True)) as r:
        assert r.status_code == 200
        events = [json.loads(line[5:]) for line in r.iter_lines()
                  if line.startswith("data:") and line.strip() != "data: [DONE]"]
    choices = [e["choices"][0] for e in events if e.get("choices")]
    text = "".join(c["delta"].get("content") or "" for c in choices)
    tokens = [t for c in choices for t in ((c.get("logprobs") or {}).get("content") or [])]
    assert "".join(t["token"] for t in tokens) == text and len(tokens) == TOKENS
    with client.stream("POST", "/ocr/stream", files={"file": ("p.png", PAGE, "image/png")},
                       data={"mode": "free_ocr", "max_tokens": str(TOKENS), "output": "json", **TINY}) as r:
        assert r.status_code == 200
        payloads = [json.loads(line[5:]) for line in r.iter_lines()
                    if line.startswith("data:") and line.strip() != "data: [DONE]"]
    (end,) = [p for p in payloads if p["type"] == "page_end"]
    confidence = end["result"]["confidence"]
    assert confidence is not None and 0 <= confidence["minimum"] <= confidence["average"] <= 1


def test_word_boxes_need_the_lite_engine_or_get_it(client: httpx.Client) -> None:
    r = client.post("/ocr", json={"image_base64": b64(PAGE), "mode": "free_ocr", "max_tokens": TOKENS,
                                  "output": "json", "word_boxes": True, **TINY})
    if importlib.util.find_spec("rapidocr") is None:  # this environment has no lite extra
        assert r.status_code == 400, r.text
        assert "pip install 'openai-ocr[lite]'" in r.json()["error"]["message"]
    else:
        assert r.status_code == 200, r.text
        (page,) = r.json()["pages"]
        assert all(b["words"] is not None for b in page["blocks"])
