"""The official openai SDK against the gateway's /v1 routes, and upstream failure mapping."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
import respx

from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, gateway_settings, png_bytes, serve

IMAGE_URL = "data:image/png;base64," + b64(png_bytes())
MESSAGES = [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    {"type": "text", "text": "Free OCR."}]}]


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


UPSTREAM = "http://upstream.test/v1"


@pytest.fixture(scope="module")
def mocked_gateway():
    """A gateway whose upstream is mocked with respx (loopback calls pass through)."""
    settings = gateway_settings(UPSTREAM, upstream={"timeout_s": 1.0})
    with respx.mock(assert_all_called=False, using="httpx") as mock:
        mock.route(host="127.0.0.1").pass_through()
        with serve(settings) as (url, _):
            yield url, mock


@pytest.mark.parametrize("upstream_answer, status, needle", [
    (httpx.Response(500, json={"error": {"message": "engine died"}}), 502, "engine died"),
    (httpx.Response(400, json={"error": {"message": "image too small"}}), 400, "image too small"),
    (httpx.Response(404, json={"detail": "model nope not found"}), 404, "not found"),
    (httpx.Response(413, json={"error": {"message": "prompt of 9000 tokens over max_model_len",
                                          "type": "BadRequestError", "code": 413}}), 413, "max_model_len"),
    (httpx.Response(422, json={"detail": [{"loc": ["body", "messages"], "msg": "Field required",
                                           "type": "missing"}]}), 422, "upstream rejected"),
    (httpx.Response(401, json={"error": {"message": "bad key"}}), 502, "401"),
    (httpx.ConnectError("refused"), 502, "unreachable"),
    (httpx.ReadTimeout("slow"), 504, "in time"),
])
@pytest.mark.parametrize("path, kwargs", [
    ("/ocr", {"json": {"image_base64": b64(png_bytes())}}),
    ("/v1/chat/completions", {"json": {"messages": MESSAGES}}),
    ("/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("/v1/chat/completions", {"json": {"messages": MESSAGES, "stream": True}}),
], ids=["ocr", "chat", "ocr-stream", "chat-stream"])
def test_upstream_failures_become_clear_errors(mocked_gateway, upstream_answer, status: int,
                                               needle: str, path: str, kwargs: dict) -> None:
    url, mock = mocked_gateway
    route = mock.post(f"{UPSTREAM}/chat/completions")
    if isinstance(upstream_answer, Exception):
        route.side_effect = upstream_answer
    else:
        route.return_value = upstream_answer
    r = httpx.post(f"{url}{path}", timeout=30, **kwargs)
    assert r.status_code == status, (path, r.text)
    assert needle in r.json()["error"]["message"], (path, r.text)


def test_batch_item_failure_upstream_keeps_other_items(mocked_gateway) -> None:
    url, mock = mocked_gateway
    answers = iter([
        httpx.Response(200, json={"id": "1", "object": "chat.completion", "created": 0, "model": "m",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "ok"}}]}),
        httpx.Response(500, json={"error": {"message": "boom"}}),
    ])
    mock.post(f"{UPSTREAM}/chat/completions").mock(side_effect=lambda request: next(answers))
    settings_batch = {"requests": [{"image_base64": b64(png_bytes())}] * 2}
    r = httpx.post(f"{url}/ocr/batch", json=settings_batch, timeout=30)
    assert r.status_code == 200
    statuses = sorted(x["status_code"] for x in r.json()["results"])
    assert statuses == [200, 502]


def test_health_is_503_when_upstream_is_down(mocked_gateway) -> None:
    url, mock = mocked_gateway
    mock.get(f"{UPSTREAM}/models").side_effect = httpx.ConnectError("refused")
    r = httpx.get(f"{url}/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable" and body["engine_status"]["reachable"] is False
    assert "unreachable" in body["engine_status"]["detail"]
    ready = httpx.get(f"{url}/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert httpx.get(f"{url}/live", timeout=30).status_code == 200  # alive, just not ready
