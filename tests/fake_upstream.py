"""A small real OpenAI-compatible server for tests: records requests, answers scripted text.

It stands in for a remote vLLM node (outside the project), so the gateway can be tested over
real HTTP. Each chat answer is `reply_for(prompt)`: the reply set for that prompt text, or
`default_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


class FakeUpstream:
    def __init__(self, model: str = "deepseek-ai/DeepSeek-OCR") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.default_reply = "Hello\nworld"
        self.replies: dict[str, str] = {}
        self.finish_reason = "stop"
        self.chunk_delay_s = 0.0
        self.delay_s = 0.0
        #: requests the engine works on at once (like a GPU's batch); None = unbounded
        self.capacity: int | None = None
        self._slots: tuple[int, asyncio.Semaphore] | None = None
        self.in_flight = 0
        self.max_in_flight = 0  # the most chat requests it held at once since reset()
        self.reply_fn: Callable[[dict[str, Any]], str] | None = None
        self.disconnected = asyncio.Event()
        self.app = self._build()

    def reset(self) -> None:
        self.requests.clear()
        self.replies.clear()
        self.default_reply = "Hello\nworld"
        self.finish_reason = "stop"
        self.chunk_delay_s = 0.0
        self.delay_s = 0.0
        self.capacity = None
        self.max_in_flight = 0
        self.reply_fn = None
        self.disconnected = asyncio.Event()

    def _engine_slots(self) -> Any:
        """A semaphore of `capacity` slots (no limit without one)."""
        if self.capacity is None:
            return contextlib.nullcontext()
        if self._slots is None or self._slots[0] != self.capacity:
            self._slots = (self.capacity, asyncio.Semaphore(self.capacity))
        return self._slots[1]

    def reply_for(self, body: dict[str, Any]) -> str:
        if self.reply_fn is not None:
            return self.reply_fn(body)
        texts = [part.get("text", "") for m in body["messages"] if isinstance(m.get("content"), list)
                 for part in m["content"] if part.get("type") == "text"]
        prompt = texts[-1] if texts else ""
        return self.replies.get(prompt, self.default_reply)

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            text = self.reply_for(body)
            usage = {"prompt_tokens": 278, "completion_tokens": len(text.split()),
                     "total_tokens": 278 + len(text.split())}
            if not body.get("stream"):
                if self.delay_s:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    try:
                        async with self._engine_slots():
                            if not await self._sleep_unless_gone(request, self.delay_s):
                                return JSONResponse({}, status_code=499)
                    finally:
                        self.in_flight -= 1
                return JSONResponse({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": self.finish_reason}],
                    "usage": usage})
            return StreamingResponse(self._stream(body, text, usage, request),
                                     media_type="text/event-stream")

        return app

    async def _sleep_unless_gone(self, request: Request, seconds: float) -> bool:
        """Sleep like a slow engine; False (and `disconnected` set) if the client left."""
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if await request.is_disconnected():
                self.disconnected.set()
                return False
            await asyncio.sleep(0.02)
        return True

    async def _stream(self, body: dict[str, Any], text: str, usage: dict[str, int],
                      request: Request) -> Any:
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                     "created": 0, "model": body["model"], "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        try:
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                          "finish_reason": None}])
            pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
            for piece in pieces:
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            yield event([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}])
            if body.get("stream_options", {}).get("include_usage"):
                yield event([], usage=usage)
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.disconnected.set()
            raise
