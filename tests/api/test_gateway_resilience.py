"""The gateway in front of nodes that fail or serve another model name (scale-out behaviour)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, image_messages, png_bytes, scripted_gateway, serve
from tests.scripted_upstream import DROP, STALL, Answer, ScriptedUpstream

PAGE = {"image_base64": b64(png_bytes())}


@pytest.fixture(scope="module")
def retrying_gateway() -> Iterator[tuple[str, ScriptedUpstream]]:
    """A gateway retrying twice, in front of an upstream that fails as told."""
    with scripted_gateway(max_retries=2, timeout_s=5.0) as served:
        yield served


@pytest.fixture(scope="module")
def impatient_gateway() -> Iterator[tuple[str, ScriptedUpstream]]:
    """The same with a 2 s read time-out: the stalling node's tests wait for it to pass."""
    with scripted_gateway(max_retries=2, timeout_s=2.0) as served:
        yield served


@pytest.mark.parametrize("failures", [
    [Answer(502, {"error": {"message": "bad gateway"}})],
    [Answer(503, {"error": {"message": "node starting"}}), DROP],
    [DROP, DROP],
    [Answer(408, {"error": {"message": "request timeout"}})],
    [Answer(409, {"error": {"message": "conflict"}})],
    [Answer(429, {"error": {"message": "rate limited"}}), Answer(429, {"error": {"message": "still"}})],
], ids=["502", "503-then-dropped", "dropped-twice", "408", "409", "429-twice"])
def test_a_failing_node_is_retried_before_answering(retrying_gateway: tuple[str, ScriptedUpstream],
                                                    failures: list) -> None:
    """Dropped connections and the answers worth another try (408, 409, 429, 5xx, as the
    openai SDK retries them) are retried, up to `max_retries`."""
    url, upstream = retrying_gateway
    upstream.play(*failures)
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "page text"
    assert upstream.chat_calls == len(failures) + 1


def test_retries_are_bounded_then_502(retrying_gateway: tuple[str, ScriptedUpstream]) -> None:
    url, upstream = retrying_gateway
    upstream.play(*[Answer(503, {"error": {"message": "still down"}})] * 4)
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == 502 and "still down" in r.json()["error"]["message"]
    assert upstream.chat_calls == 3  # the first try and two retries


@pytest.mark.parametrize("status", [400, 422])
def test_a_client_error_is_not_retried(retrying_gateway: tuple[str, ScriptedUpstream], status: int) -> None:
    url, upstream = retrying_gateway
    upstream.play(Answer(status, {"error": {"message": "bad image"}}))
    r = httpx.post(f"{url}/ocr", json=PAGE, timeout=30)
    assert r.status_code == status and "bad image" in r.json()["error"]["message"]
    assert upstream.chat_calls == 1


@pytest.mark.parametrize("path, kwargs", [
    ("/ocr", {"json": PAGE}),
    ("/v1/chat/completions", {"json": {"messages": image_messages(png_bytes())}}),
    ("/v1/chat/completions", {"json": {"messages": image_messages(png_bytes()), "stream": True}}),
], ids=["ocr", "chat", "chat-stream"])
def test_a_read_time_out_is_not_retried(impatient_gateway: tuple[str, ScriptedUpstream], path: str,
                                        kwargs: dict) -> None:
    """The node took the page and may still be working on it: a 504 after one call, though
    retries are configured (a second call would make it read the page twice)."""
    url, upstream = impatient_gateway
    upstream.play(STALL)
    r = httpx.post(f"{url}{path}", timeout=60, **kwargs)
    assert r.status_code == 504 and "in time" in r.json()["error"]["message"], r.text
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
    ("/v1/chat/completions", {"json": {"stream": True, "messages": image_messages(png_bytes())}}),
])
def test_a_stream_that_broke_after_its_first_bytes_ends_with_an_error_event(
        retrying_gateway: tuple[str, ScriptedUpstream], path: str, kwargs: dict) -> None:
    url, upstream = retrying_gateway
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
        with serve(gateway_settings(upstream_url, engine={"model": ""})) as (url, _):
            health = httpx.get(f"{url}/health").json()
            models = httpx.get(f"{url}/v1/models").json()
            answer = httpx.post(f"{url}/ocr", json=PAGE, timeout=30).json()
    finally:
        fake.model = "deepseek-ai/DeepSeek-OCR"
    assert health["status"] == "healthy" and health["model"] == "acme/ocr-node"
    assert [m["id"] for m in models["data"]] == ["acme/ocr-node"]
    assert answer["model"] == "acme/ocr-node"
    assert fake.requests[-1]["model"] == "acme/ocr-node"
