"""The gateway against an upstream as strict as vLLM: keys, model names, one image, the n-gram
arguments' types, and an engine that fails in the middle of a stream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, gateway_settings, parse_sse, png_bytes, serve

UPSTREAM_KEY = "sk-upstream-93b1"
IMAGE_URL = "data:image/png;base64," + b64(png_bytes())


def chat_body(*parts: dict, **extra: object) -> dict:
    return {"model": SERVED_NAME, "messages": [{"role": "user", "content": list(parts)}], **extra}


IMAGE_PART = {"type": "image_url", "image_url": {"url": IMAGE_URL}}
TEXT_PART = {"type": "text", "text": "Free OCR."}


@pytest.fixture(scope="module")
def keyed_upstream_gateway(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[tuple[str, FastAPI]]:
    with serve(gateway_settings(fake_upstream[1], upstream={"api_key": UPSTREAM_KEY})) as served:
        yield served


def test_upstream_api_key_is_sent(keyed_upstream_gateway: tuple[str, FastAPI], upstream: FakeUpstream) -> None:
    upstream.api_key = UPSTREAM_KEY
    url, _ = keyed_upstream_gateway
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
    assert [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=30).json()["data"]] == [SERVED_NAME]


def test_without_the_upstream_key_the_gateway_reports_the_upstream_failure(
        gateway: str, upstream: FakeUpstream) -> None:
    """The default gateway has no upstream key: the upstream's 401 is its failure (502), and
    the gateway is not ready."""
    upstream.api_key = UPSTREAM_KEY
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30)
    assert r.status_code == 502 and "401" in r.json()["error"]["message"], r.text
    ready = httpx.get(f"{gateway}/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["model_loaded"] is False
    assert upstream.requests == []


def test_upstream_api_key_flag_reaches_the_settings() -> None:
    from openai_ocr.cli.main import build_parser
    from openai_ocr.cli.serve import overrides_from_args
    from openai_ocr.settings import load_settings

    args, _ = build_parser().parse_known_args(["serve", "--upstream-url", "http://h:1/v1",
                                               "--upstream-api-key", UPSTREAM_KEY])
    settings = load_settings(overrides=overrides_from_args(args))
    assert settings.upstream.api_key.get_secret_value() == UPSTREAM_KEY


def test_a_model_the_upstream_does_not_serve_is_404_and_not_ready(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> None:
    settings = gateway_settings(fake_upstream[1], engine={"model": "deepseek-ai/DeepSeek-OCR-2"})
    with serve(settings) as (url, _):
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert "deepseek-ai/DeepSeek-OCR-2" in ready.json()["engine_status"]["detail"]
        r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30)
        assert r.status_code == 404, r.text
        assert "does not exist" in r.json()["error"]["message"]
    assert upstream.requests == []


def test_chat_model_names_are_checked_by_the_upstream(gateway: str, upstream: FakeUpstream) -> None:
    """An unknown model name is a 404 naming the served ones (checked against the upstream's
    model list, before anything is sent); no name means the served one."""
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    messages = chat_body(IMAGE_PART, TEXT_PART)["messages"]
    with pytest.raises(openai.NotFoundError, match="whatever.*deepseek-ai/DeepSeek-OCR"):
        client.chat.completions.create(model="whatever", messages=messages)
    assert upstream.requests == []
    r = httpx.post(f"{gateway}/v1/chat/completions", json={"messages": messages}, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello\nworld"
    assert [r["model"] for r in upstream.requests] == [SERVED_NAME]


def test_every_request_carries_n_gram_arguments_vllm_accepts(gateway: str, upstream: FakeUpstream) -> None:
    """The strict fake refuses wrong types; the gateway's own guard arguments pass it."""
    for path, kwargs in (("/ocr", {"json": {"image_base64": b64(png_bytes())}}),
                         ("/v1/chat/completions", {"json": chat_body(IMAGE_PART, TEXT_PART)})):
        r = httpx.post(f"{gateway}{path}", timeout=30, **kwargs)
        assert r.status_code == 200, (path, r.text)
    xargs = [r["vllm_xargs"] for r in upstream.requests]
    assert all(isinstance(x["ngram_size"], int) and isinstance(x["window_size"], int) for x in xargs), xargs


@pytest.mark.parametrize("xargs, needle", [
    ({"ngram_size": "30"}, "ngram_size"),
    ({"ngram_size": 30, "window_size": 1.5}, "window_size"),
    ({"ngram_size": 30, "whitelist_token_ids": ["128821"]}, "whitelist_token_ids"),
    ({"ngram_size": {"nested": 1}}, "vllm_xargs"),
])
def test_bad_n_gram_arguments_are_a_400(gateway: str, upstream: FakeUpstream, xargs: dict, needle: str) -> None:
    r = httpx.post(f"{gateway}/v1/chat/completions", json=chat_body(IMAGE_PART, TEXT_PART, vllm_xargs=xargs),
                   timeout=30)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]


def test_two_images_in_one_prompt_are_a_400(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/v1/chat/completions", json=chat_body(IMAGE_PART, IMAGE_PART, TEXT_PART),
                   timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


def test_an_engine_failing_mid_stream_reaches_the_ocr_stream_client(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = "abcdefghijklmnop"
    upstream.fail_after_chunks = 2  # "abc", "def", then vLLM's error event
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("p.png", png_bytes(), "image/png")},
                      timeout=30) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    payloads = [json.loads(e) for e in events if e != "[DONE]"]
    assert "".join(p.get("text", "") for p in payloads if p["type"] == "text") == "abcdef"
    (error,) = [p for p in payloads if p["type"] == "error"]
    assert "mid-stream" in error["error"]["message"] and error["error"]["code"] >= 500
    assert not any(p["type"] == "done" for p in payloads)


def test_an_engine_failing_mid_stream_reaches_the_openai_sdk(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = "abcdefghijklmnop"
    upstream.fail_after_chunks = 2
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model=SERVED_NAME, stream=True,
                                            messages=chat_body(IMAGE_PART, TEXT_PART)["messages"])
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(received) == "abcdef"
