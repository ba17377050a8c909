"""The gateway in front of nodes that fail or serve another model name (scale-out behaviour)."""

from __future__ import annotations

import json

import httpx
import pytest

from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, png_bytes, running_server
from tests.scripted_upstream import DROP, Answer, scripted_upstream

PAGE = {"image_base64": b64(png_bytes())}


@pytest.fixture(scope="module")
def scripted_gateway():
    """A gateway retrying twice, in front of an upstream that fails as told, on loopback."""
    with scripted_upstream() as upstream:
        settings = gateway_settings(upstream.url, upstream={"max_retries": 2, "timeout_s": 5.0})
        app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
        with running_server(app) as url:
            yield url, upstream


@pytest.mark.parametrize("failures", [
    [Answer(502, {"error": {"message": "bad gateway"}})],
    [Answer(503, {"error": {"message": "node starting"}}), DROP],
    [DROP, DROP],
], ids=["502", "503-then-dropped", "dropped-twice"])
def test_a_failing_node_is_retried_before_answering(scripted_gateway, failures: list) -> None:
    url, upstream = scripted_gateway
    upstream.play(*failures)
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "page text"
    assert upstream.chat_calls == len(failures) + 1


def test_retries_are_bounded_then_502(scripted_gateway) -> None:
    url, upstream = scripted_gateway
    upstream.play(*[Answer(503, {"error": {"message": "still down"}})] * 4)
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 502 and "still down" in r.json()["error"]["message"]
    assert upstream.chat_calls == 3  # the first try and two retries


@pytest.mark.parametrize("status", [400, 422])
def test_a_client_error_is_not_retried(scripted_gateway, status: int) -> None:
    url, upstream = scripted_gateway
    upstream.play(Answer(status, {"error": {"message": "bad image"}}))
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == status and "bad image" in r.json()["error"]["message"]
    assert upstream.chat_calls == 1


def two_chunks_then_cut() -> Answer:
    """An SSE body whose connection drops after two chunks, as when a node dies mid-answer."""
    events = []
    for piece in ("Hello", " wor"):
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        events.append(f"data: {json.dumps(chunk)}\n\n")
    return Answer(200, "".join(events).encode(), "text/event-stream", cut=True)


@pytest.mark.parametrize("path, kwargs", [
    ("/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("/v1/chat/completions", {"json": {"stream": True, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_bytes())}},
        {"type": "text", "text": "Free OCR."}]}]}}),
])
def test_a_stream_that_broke_after_its_first_bytes_ends_with_an_error_event(
        scripted_gateway, path: str, kwargs: dict) -> None:
    url, upstream = scripted_gateway
    upstream.play(two_chunks_then_cut())
    with httpx.stream("POST", f"{url}{path}", timeout=30, **kwargs) as r:
        assert r.status_code == 200
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    assert "error" in json.loads(data[-2]), data[-2]
    assert "Hello" in "".join(data[:-2])
    assert upstream.chat_calls == 1, "a stream that already sent bytes must not be retried"


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
