"""The gateway in front of nodes that fail or serve another model name (scale-out behaviour)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, png_bytes, running_server

UPSTREAM = "http://node.test/v1"
COMPLETION = {"id": "1", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "page text"}}],
              "usage": {"prompt_tokens": 278, "completion_tokens": 2, "total_tokens": 280}}
PAGE = {"image_base64": b64(png_bytes())}


@pytest.fixture()
def retrying_gateway():
    """A gateway retrying twice, in front of a respx-mocked upstream (loopback passes through)."""
    settings = gateway_settings(UPSTREAM, upstream={"max_retries": 2, "timeout_s": 5.0})
    app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    with respx.mock(assert_all_called=False, using="httpx") as mock:
        mock.route(host="127.0.0.1").pass_through()
        with running_server(app) as url:
            yield url, mock


@pytest.mark.parametrize("failures", [
    [httpx.Response(502, json={"error": {"message": "bad gateway"}})],
    [httpx.Response(503, json={"error": {"message": "node starting"}}),
     httpx.ConnectError("node gone")],
])
def test_a_failing_node_is_retried_before_answering(retrying_gateway, failures: list) -> None:
    url, mock = retrying_gateway
    answers = iter([*failures, httpx.Response(200, json=COMPLETION)])

    def answer(request: httpx.Request) -> httpx.Response:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    route = mock.post(f"{UPSTREAM}/chat/completions").mock(side_effect=answer)
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "page text"
    assert route.call_count == len(failures) + 1


def test_retries_are_bounded_then_502(retrying_gateway) -> None:
    url, mock = retrying_gateway
    route = mock.post(f"{UPSTREAM}/chat/completions").mock(
        return_value=httpx.Response(503, json={"error": {"message": "still down"}}))
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 502 and "still down" in r.json()["error"]["message"]
    assert route.call_count == 3  # the first try and two retries


def test_a_client_error_is_not_retried(retrying_gateway) -> None:
    url, mock = retrying_gateway
    route = mock.post(f"{UPSTREAM}/chat/completions").mock(
        return_value=httpx.Response(400, json={"error": {"message": "bad image"}}))
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 400 and route.call_count == 1


class BreaksAfterTwoChunks(httpx.AsyncByteStream):
    """An SSE body whose connection drops after two chunks, as when a node dies mid-answer."""

    async def __aiter__(self):  # type: ignore[override]
        for piece in ("Hello", " wor"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


@pytest.mark.parametrize("path, kwargs", [
    ("/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("/v1/chat/completions", {"json": {"stream": True, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_bytes())}},
        {"type": "text", "text": "Free OCR."}]}]}}),
])
def test_a_stream_that_broke_after_its_first_bytes_ends_with_an_error_event(
        retrying_gateway, path: str, kwargs: dict) -> None:
    url, mock = retrying_gateway
    route = mock.post(f"{UPSTREAM}/chat/completions").mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=BreaksAfterTwoChunks()))
    with httpx.stream("POST", f"{url}{path}", timeout=30, **kwargs) as r:
        assert r.status_code == 200
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    assert "error" in json.loads(data[-2]), data[-2]
    assert "Hello" in "".join(data[:-2])
    assert route.call_count == 1, "a stream that already sent bytes must not be retried"


def test_without_a_model_name_the_gateway_serves_the_upstreams_only_model(
        fake_upstream: tuple[FakeUpstream, str]) -> None:
    fake, upstream_url = fake_upstream
    fake.reset()
    fake.model = "acme/ocr-node"
    try:
        settings = gateway_settings(upstream_url, engine={"model": ""})
        app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
        with running_server(app) as url:
            health = httpx.get(f"{url}/health").json()
            models = httpx.get(f"{url}/v1/models").json()
            answer = httpx.post(f"{url}/ocr", json=PAGE, timeout=30).json()
    finally:
        fake.model = "deepseek-ai/DeepSeek-OCR"
    assert health["status"] == "healthy" and health["model"] == "acme/ocr-node"
    assert [m["id"] for m in models["data"]] == ["acme/ocr-node"]
    assert answer["model"] == "acme/ocr-node"
    assert fake.requests[-1]["model"] == "acme/ocr-node"
