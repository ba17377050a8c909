"""Every route served by the embedded CPU engine: real rapidocr, real uvicorn, real clients."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.ocr.resolution import MODES, image_tokens
from openai_ocr.settings import load_settings
from tests.helpers import b64, parse_sse, png_header_only, require, serve

require("rapidocr", "the lite extra")

LINES = ["Invoice number 2041", "Total due 37.50 EUR", "Thank you for your order"]


def page_png() -> bytes:
    font = ImageFont.load_default(size=30)
    image = Image.new("RGB", (900, 320), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(LINES):
        draw.text((40, 40 + i * 90), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PAGE = page_png()


def words(text: str) -> list[str]:
    return re.sub(r"<\|.*?\|>|\[\[.*?\]\]", " ", text).split()


@pytest.fixture(scope="module")
def lite_server() -> Iterator[str]:
    with serve(load_settings(overrides={"engine": {"kind": "lite"}})) as (url, _):
        yield url


def test_ocr_file_free_ocr_returns_the_page_text(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr/file", files={"file": ("p.png", PAGE, "image/png")},
                   data={"mode": "free_ocr"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert words(body["text"]) == " ".join(LINES).split()
    assert body["finish_reason"] == "stop" and body["usage"]["completion_tokens"] > 0


def test_usage_counts_the_page_as_deepseek_ocr_would(lite_server: str) -> None:
    """Vision tokens in the default mode, not a few tokens of prompt text; one try, timed."""
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(PAGE), "output": "json"}, timeout=120)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    vision = image_tokens("deepseek-ocr", MODES["deepseek-ocr"]["gundam"], 900, 320)
    assert usage["image_tokens"] == vision and usage["prompt_tokens"] > vision
    assert usage["attempts"] == 1 and usage["engine_ms"] > 0
    assert r.json()["pages"][0]["quality"] == {"flags": [], "attempts": 1, "engine": "lite",
                                               "resolution": "gundam", "loop_chars_removed": 0}


def test_markdown_mode_answers_in_grounding_format(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(PAGE)}, timeout=120)
    assert r.status_code == 200, r.text
    text = r.json()["text"]
    boxes = re.findall(r"<\|ref\|>(\w+)<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>", text)
    assert boxes, text
    for _label, *coords in boxes:
        assert all(0 <= int(c) <= 999 for c in coords)
    assert words(text)[-5:] == LINES[-1].split()[-5:]


def test_unsupported_prompt_is_a_clear_400(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(PAGE), "mode": "describe"},
                   timeout=60)
    assert r.status_code == 400
    assert "lite" in r.json()["error"]["message"].lower()


def test_openai_sdk_stream_and_non_stream_agree(lite_server: str) -> None:
    client = openai.OpenAI(base_url=f"{lite_server}/v1", api_key="unused", timeout=120)
    model = client.models.list().data[0].id  # the engine's own name; aliases follow
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(PAGE)}},
        {"type": "text", "text": "Free OCR."}]}]
    full = client.chat.completions.create(model=model, messages=messages)
    text = full.choices[0].message.content or ""
    assert words(text) == " ".join(LINES).split()
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=model, messages=messages, stream=True) if c.choices)
    assert streamed == text


def test_legacy_stream_and_batch(lite_server: str) -> None:
    with httpx.stream("POST", f"{lite_server}/ocr/stream", files={"file": ("p.png", PAGE, "image/png")},
                      data={"mode": "free_ocr"}, timeout=120) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    streamed = "".join(json.loads(e)["text"] for e in events[:-1])
    assert words(streamed) == " ".join(LINES).split()
    r = httpx.post(f"{lite_server}/ocr/batch", json={"requests": [
        {"image_base64": b64(PAGE), "mode": "free_ocr"}, {"image_base64": "bad!"}]}, timeout=120)
    assert [x["status_code"] for x in r.json()["results"]] == [200, 400]


def test_health_names_the_lite_engine(lite_server: str) -> None:
    body = httpx.get(f"{lite_server}/health").json()
    assert body["engine"] == "lite" and body["model_loaded"] is True


KEY = {"X-API-Key": "k"}


@pytest.fixture(scope="module")
def keyed_lite_server() -> Iterator[str]:
    settings = load_settings(overrides={"engine": {"kind": "lite"}, "auth": {"api_keys": ["k"]},
                                        "limits": {"max_body_bytes": 2_000_000}})
    with serve(settings) as (url, _):
        yield url


@pytest.mark.parametrize("headers, path, kwargs, status", [
    ({}, "/ocr", {"json": {"image_base64": b64(PAGE)}}, 401),
    ({"X-API-Key": "nope"}, "/v1/models", {}, 401),
    (KEY, "/ocr/file", {"files": {"file": ("b.png", png_header_only(20000, 20000))}}, 413),
    (KEY, "/ocr/file", {"files": {"file": ("t.png", PAGE[:200])}}, 400),
    (KEY, "/ocr", {"json": {"image_base64": "@@"}}, 400),
    (KEY, "/ocr", {"content": b"x" * 2_100_000, "headers": {"content-type": "application/json", **KEY}}, 413),
    (KEY, "/ocr/batch", {"json": {"requests": [{"image_base64": b64(PAGE)}] * 101}}, 413),
    (KEY, "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "Free OCR."}]}]}}, 400),
], ids=["no-key", "wrong-key", "bomb", "truncated", "bad-base64", "big-body", "big-batch", "remote-url"])
def test_abuse_in_lite_mode_gets_designed_answers(keyed_lite_server: str, headers: dict, path: str,
                                                  kwargs: dict, status: int) -> None:
    """Keys, bombs and broken input in lite mode: the designed 4xx."""
    method = "GET" if path == "/v1/models" else "POST"
    r = httpx.request(method, f"{keyed_lite_server}{path}", timeout=60, **{"headers": headers, **kwargs})
    assert r.status_code == status, (path, r.text)
    assert r.json()["error"]["code"] == status


def test_lite_mode_serves_normally_with_a_key(keyed_lite_server: str) -> None:
    r = httpx.post(f"{keyed_lite_server}/ocr", json={"image_base64": b64(PAGE), "mode": "free_ocr"},
                   headers=KEY, timeout=120)
    assert r.status_code == 200 and words(r.json()["text"]) == " ".join(LINES).split()


def test_lite_answers_to_the_deepseek_ocr_names(lite_server: str) -> None:
    listed = [m["id"] for m in httpx.get(f"{lite_server}/v1/models").json()["data"]]
    assert {"deepseek-ai/DeepSeek-OCR", "deepseek-ai/DeepSeek-OCR-2"} <= set(listed[1:])
    client = openai.OpenAI(base_url=f"{lite_server}/v1", api_key="unused", max_retries=0, timeout=120)
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PAGE)}"}}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "Free OCR."}]}]
    reply = client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR", messages=messages)
    assert words(reply.choices[0].message.content or "") == " ".join(LINES).split()
    with pytest.raises(openai.NotFoundError, match="model_not_found|does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=messages)


def test_resolution_fields_are_accepted_and_reported_as_unused(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr/file", files={"file": ("p.png", PAGE, "image/png")},
                   data={"mode": "free_ocr", "resolution": "tiny"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolution"] == "tiny"
    assert any("lite engine" in w and "resolution" in w for w in body["warnings"]), body["warnings"]
    assert words(body["text"]) == " ".join(LINES).split()  # read at full resolution all the same
    plain = httpx.post(f"{lite_server}/ocr", json={"image_base64": b64(PAGE), "mode": "free_ocr"},
                       timeout=120).json()
    assert not any("lite engine" in w for w in plain["warnings"])
