"""vllm mode: the chat requests vLLM answers itself are held to the caller's quotas and counted
in its usage, as on our own chat route.

vLLM's `/v1/chat/completions` is outside the project: a stand-in route answers in vLLM's
shapes (a JSON completion with `usage`; a stream whose last chunk carries it when the client
asks for `stream_options.include_usage`). Around it runs the project's code as the endpoint
plugin installs it (`install_http_layer(own_app=False)`, the compat routes, a bound Runtime).
The engine tests check the same against a real vLLM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CollectorRegistry

from openai_ocr.api.middleware.register import install_http_layer
from openai_ocr.metrics import metrics_for
from openai_ocr.runtime import Runtime
from openai_ocr.server import attach_compat_routes, build_engine
from openai_ocr.service.keys import key_id
from tests.fake_upstream import FakeUpstream
from tests.helpers import data_url, gateway_settings, png_bytes, running_server, wait_until

KEY = "vllm-mode-key-0123456789"
PAGES_PER_DAY = 3
PROMPT, WRITTEN = 280, 7


def vllm_chat_route(app: FastAPI, seen: list[dict[str, Any]]) -> None:
    """vLLM's chat route as the client sees it: prompt tokens grow with the images."""

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        seen.append(body)
        images = sum(part.get("type") == "image_url" for m in body["messages"]
                     for part in (m["content"] if isinstance(m["content"], list) else []))
        usage = {"prompt_tokens": PROMPT * images, "completion_tokens": WRITTEN,
                 "total_tokens": PROMPT * images + WRITTEN, "prompt_tokens_details": None}
        if body.get("model") == "refuse":
            return JSONResponse({"error": {"message": "no such model", "code": 404}}, status_code=404)
        if not body.get("stream"):
            return {"id": "chatcmpl-1", "object": "chat.completion", "model": "served-ocr", "usage": usage,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "text"},
                                 "finish_reason": "stop"}]}

        async def events() -> AsyncIterator[bytes]:
            for word in ("te", "xt"):
                chunk = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "served-ocr",
                         "choices": [{"index": 0, "delta": {"content": word}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            if (body.get("stream_options") or {}).get("include_usage"):
                last = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "served-ocr",
                        "choices": [], "usage": usage}
                text = f"data: {json.dumps(last)}\n\n".encode()
                yield text[:25]  # a line split over two body messages
                yield text[25:]
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture()
def vllm_mode(fake_upstream: tuple[FakeUpstream, str], tmp_path: Path) -> Iterator[tuple[str, FastAPI, list]]:
    """(URL, app, bodies vLLM's route saw) of a vLLM-like app with our plugin's layer and runtime,
    one key with a day quota."""
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[keys]]\nname = "team"\nsha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"\n'
                    f"pages_per_day = {PAGES_PER_DAY}\nmax_concurrent = 1\n")
    settings = gateway_settings(fake_upstream[1], storage={"dir": str(tmp_path / "store")},
                                auth={"keys_file": str(keys)})
    metrics = metrics_for(CollectorRegistry())
    runtime = Runtime(settings, build_engine(settings, "upstream"), metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        runtime.bind(app.state)
        yield
        await runtime.stop()

    app = FastAPI(lifespan=lifespan)
    seen: list[dict[str, Any]] = []
    vllm_chat_route(app, seen)
    attach_compat_routes(app)
    install_http_layer(app, settings, metrics, own_app=False)
    with running_server(app) as url:
        yield url, app, seen


def chat(url: str, images: int, **extra: Any) -> httpx.Response:
    content = [{"type": "image_url", "image_url": {"url": data_url(png_bytes())}}] * images
    return httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                      json={"model": "served-ocr", "messages": [
                          {"role": "user", "content": [*content, {"type": "text", "text": "Free OCR."}]}], **extra})


def chat_usage(url: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/v1/usage", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    rows = [b for b in r.json()["data"] if b["route"] == "/v1/chat/completions"]
    return rows[0] if rows else {}


def test_vllms_chat_answers_are_counted_and_held_to_the_quota(vllm_mode: tuple[str, FastAPI, list]) -> None:
    url, _, seen = vllm_mode
    assert chat(url, images=1, model="refuse").status_code == 404  # vLLM's refusal: nothing counted
    assert chat(url, images=2).status_code == 200
    wait_until(lambda: chat_usage(url).get("pages") == 2, 10, "the JSON answer counted")
    row = chat_usage(url)
    assert row["key_id"] == key_id(KEY) and row["model"] == "served-ocr"
    assert (row["images"], row["prompt_tokens"], row["completion_tokens"]) == (2, 2 * PROMPT, WRITTEN)

    with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "served-ocr", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": [
                                {"type": "image_url", "image_url": {"url": data_url(png_bytes())}}]}]}) as r:
        assert r.status_code == 200 and "".join(r.iter_text()).endswith("data: [DONE]\n\n")
    wait_until(lambda: chat_usage(url).get("pages") == 3, 10, "the stream counted")
    row = chat_usage(url)
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (2, 3 * PROMPT, 2 * WRITTEN)

    refused = chat(url, images=1)  # 3 pages of 3 read today
    assert refused.status_code == 429, refused.text
    assert "pages_per_day" in refused.json()["error"]["message"] and refused.headers["Retry-After"]
    assert len(seen) == 3, "the request over the quota reached vLLM"
    assert chat_usage(url)["requests"] == 2


def test_a_wrong_key_is_refused_before_vllm_reads_the_body(vllm_mode: tuple[str, FastAPI, list]) -> None:
    url, _, seen = vllm_mode
    r = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer nope"},
                   json={"model": "served-ocr", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == 401
    assert seen == []


def test_a_key_at_its_concurrent_limit_gets_a_429_for_the_next_chat(vllm_mode: tuple[str, FastAPI, list]) -> None:
    url, app, seen = vllm_mode
    runtime = app.state.openai_ocr
    runtime.quotas.enter(key_id(KEY))  # one request of the key in flight (max_concurrent = 1)
    try:
        r = chat(url, images=1)
        assert r.status_code == 429 and "max_concurrent" in r.json()["error"]["message"]
    finally:
        runtime.quotas.leave(key_id(KEY))
    assert chat(url, images=1).status_code == 200 and len(seen) == 1
