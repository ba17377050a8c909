"""The official openai SDK against the gateway's /v1 routes, and upstream failure mapping."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    SERVED_NAME,
    b64,
    free_port,
    gateway_settings,
    image_messages,
    png_bytes,
    scripted_gateway,
    serve,
)
from tests.scripted_upstream import DROP, STALL, Answer, ScriptedUpstream

MESSAGES = image_messages(png_bytes())


def test_sdk_non_stream(gateway: str, upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused")
    completion = client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello\nworld"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 278
    (sent,) = upstream.requests
    assert sent["messages"] == MESSAGES
    # DeepSeek-OCR's defaults were filled in for a client that did not know them
    assert sent["temperature"] == 0.0 and sent["skip_special_tokens"] is False
    assert sent["vllm_xargs"]["ngram_size"] == 30 and sent["max_tokens"] == 8192


def test_sdk_stream_passes_chunks_through(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = "a\nbc\n\ndef ghij"
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="deepseek-ai/DeepSeek-OCR", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True}, temperature=0.1,
        extra_body={"vllm_xargs": {"ngram_size": 20, "window_size": 50}})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.default_reply
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 278
    (sent,) = upstream.requests
    assert sent["stream"] is True and sent["temperature"] == 0.1
    assert sent["vllm_xargs"] == {"ngram_size": 20, "window_size": 50}


def test_sdk_async_client_and_models(gateway: str, upstream: FakeUpstream) -> None:
    async def run() -> tuple[str, list[str]]:
        async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused") as client:
            completion = await client.chat.completions.create(
                model="deepseek-ai/DeepSeek-OCR", messages=MESSAGES)
            models = await client.models.list()
            return completion.choices[0].message.content or "", [m.id for m in models.data]

    text, models = asyncio.run(run())
    assert text == "Hello\nworld" and models == ["deepseek-ai/DeepSeek-OCR"]


def test_sdk_sees_bad_request_for_max_tokens_over_cap(gateway: str, upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=10**6)
    assert upstream.requests == []


@pytest.fixture(scope="module")
def failing_gateway() -> Iterator[tuple[str, ScriptedUpstream]]:
    """A gateway (no retries, 2 s read time-out) in front of an upstream that fails as told."""
    with scripted_gateway(timeout_s=2.0, max_retries=0) as served:
        yield served


@pytest.mark.parametrize("upstream_answer, status, needle", [
    (Answer(500, {"error": {"message": "engine died"}}), 502, "engine died"),
    (Answer(400, {"error": {"message": "image too small"}}), 400, "image too small"),
    (Answer(404, {"detail": "model nope not found"}), 404, "not found"),
    (Answer(413, {"error": {"message": "prompt of 9000 tokens over max_model_len",
                            "type": "BadRequestError", "code": 413}}), 413, "max_model_len"),
    (Answer(422, {"detail": [{"loc": ["body", "messages"], "msg": "Field required",
                              "type": "missing"}]}), 422, "upstream rejected"),
    (Answer(401, {"error": {"message": "bad key"}}), 502, "401"),
    (Answer(502, b"<html>bad gateway</html>", "text/html"), 502, "bad gateway"),
    (DROP, 502, "unreachable"),
    (STALL, 504, "in time"),
], ids=["500", "400", "404", "413", "422", "401", "html-502", "dropped", "stalled"])
@pytest.mark.parametrize("path, kwargs", [
    ("/ocr", {"json": {"image_base64": b64(png_bytes())}}),
    ("/v1/chat/completions", {"json": {"messages": MESSAGES}}),
    ("/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("/v1/chat/completions", {"json": {"messages": MESSAGES, "stream": True}}),
], ids=["ocr", "chat", "ocr-stream", "chat-stream"])
def test_upstream_failures_become_clear_errors(failing_gateway: tuple[str, ScriptedUpstream], upstream_answer: object,
                                               status: int, needle: str, path: str, kwargs: dict) -> None:
    url, upstream = failing_gateway
    upstream.play(upstream_answer)
    r = httpx.post(f"{url}{path}", timeout=30, **kwargs)
    assert r.status_code == status, (path, r.text)
    assert needle in r.json()["error"]["message"], (path, r.text)
    assert upstream.chat_calls == 1, "no retries configured: one call"


def test_a_non_json_success_is_a_502(failing_gateway: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = failing_gateway
    upstream.play(Answer(200, b"OK", "text/plain"))
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES}, timeout=30)
    assert r.status_code == 502 and "not a JSON chat completion" in r.json()["error"]["message"]


def test_a_stream_event_that_is_not_json_is_a_502(failing_gateway: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = failing_gateway
    upstream.play(Answer(200, b"data: <html>oops</html>\n\n", "text/event-stream"))
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES, "stream": True}, timeout=30)
    assert r.status_code == 502 and "not JSON" in r.json()["error"]["message"], r.text


def test_batch_item_failure_upstream_keeps_other_items(failing_gateway: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = failing_gateway
    upstream.play(Answer(200, {"id": "1", "object": "chat.completion", "created": 0, "model": "m",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": "ok"}}]}),
                  Answer(500, {"error": {"message": "boom"}}))
    settings_batch = {"requests": [{"image_base64": b64(png_bytes())}] * 2}
    r = httpx.post(f"{url}/ocr/batch", json=settings_batch, timeout=30)
    assert r.status_code == 200
    statuses = sorted(x["status_code"] for x in r.json()["results"])
    assert statuses == [200, 502]


def test_health_is_503_when_upstream_is_down() -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}/v1"
    with serve(gateway_settings(nothing_listens, upstream={"timeout_s": 1.0})) as (url, _):
        r = httpx.get(f"{url}/health")
        ready = httpx.get(f"{url}/ready", timeout=30)
        live = httpx.get(f"{url}/live", timeout=30)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable" and body["engine_status"]["reachable"] is False
    assert "unreachable" in body["engine_status"]["detail"]
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert live.status_code == 200  # alive, just not ready
