"""A small real OpenAI-compatible server for tests: records requests, answers scripted text.

It stands in for a remote vLLM node (outside the project), so the gateway can be tested over
real HTTP. It refuses what vLLM 0.32 serving DeepSeek-OCR refuses, with vLLM's error bodies:
an unknown model name (404), `vllm_xargs` of the wrong types (400: the request schema allows
str/int/float or lists of them; DeepSeek-OCR's n-gram processor wants positive ints for
`ngram_size`/`window_size`, and something iterable for `whitelist_token_ids`), more than one
image in a prompt (400, as `--limit-mm-per-prompt image=1`), and a missing or wrong
`Authorization: Bearer` when started with a key (401, as `--api-key`). tests/refusals.py holds
these cases as one table, run against this fake and against the real vLLM server.
Each chat answer is `reply_for(prompt)`: the reply set for that prompt text, or
`default_reply`. `fail_after_chunks` makes a stream break off with vLLM's in-stream `error`
event; clearing `hold` keeps every answer waiting until it is set again (the test's event, no
sleep windows). `logprobs_fn(text)` scripts token log-probabilities: the answer's tokens as
(token text, logprob) pairs, sent as vLLM sends them (`choices[0].logprobs.content`, one
token per stream chunk) to a request that asks for `logprobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

XARG_SCALARS = (str, int, float)


def vllm_error(status: int, message: str, err_type: str, param: str | None = None) -> JSONResponse:
    """vLLM's ErrorResponse body."""
    return JSONResponse({"error": {"message": message, "type": err_type, "param": param, "code": status}},
                        status_code=status)


def xargs_schema_problem(xargs: Any) -> str | None:
    """Why vLLM's request schema refuses these `vllm_xargs` (its validation error), or None."""
    if xargs is None:
        return None
    if not isinstance(xargs, dict):
        return "1 validation error: {'loc': 'body.vllm_xargs', 'msg': 'Input should be a valid dictionary'}"
    for key, v in xargs.items():
        if not (isinstance(v, XARG_SCALARS) or (isinstance(v, list) and all(isinstance(x, XARG_SCALARS) for x in v))):
            return (f"validation errors: {{'loc': 'body.vllm_xargs.{key}', 'msg': 'Input should be a valid "
                    "string, integer, number or list of them'}")
    return None


def xargs_problem(xargs: Any) -> str | None:
    """Why DeepSeek-OCR's n-gram logits processor refuses these (schema-valid) `vllm_xargs`, or None."""
    if not isinstance(xargs, dict):
        return None
    ngram, window = xargs.get("ngram_size"), xargs.get("window_size", 100)
    if ngram is None:
        return None
    if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram <= 0:
        return f"`ngram_size` has to be a strictly positive integer, got {ngram}."
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return f"`window_size` has to be a strictly positive integer, got {window}."
    whitelist = xargs.get("whitelist_token_ids")
    if whitelist is not None and not isinstance(whitelist, list | str):  # vLLM: any iterable passes
        return f"`whitelist_token_ids` has to be a sequence of integers, got {whitelist}."
    return None


def image_count(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if isinstance(m.get("content"), list)
               for part in m["content"] if isinstance(part, dict) and part.get("type") == "image_url")


def logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    """One entry of `logprobs.content`, as vLLM writes it."""
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []}


class FakeUpstream:
    def __init__(self, model: str = "deepseek-ai/DeepSeek-OCR") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.hold = threading.Event()
        self._slots: tuple[int, asyncio.Semaphore] | None = None
        self.in_flight = 0
        self.app = self._build()
        self.reset()

    def reset(self) -> None:
        self.requests = []
        #: the headers of each chat request taken (in `requests`' order), names in lower case
        self.headers: list[dict[str, str]] = []
        self.replies: dict[str, str] = {}
        self.default_reply = "Hello\nworld"
        self.finish_reason = "stop"
        self.chunk_delay_s = 0.0
        self.delay_s = 0.0  # a slow engine's time per answer (the load script sets it)
        #: the answer to a body: its text, or (text, finish_reason)
        self.reply_fn: Callable[[dict[str, Any]], str | tuple[str, str]] | None = None
        #: the tokens of an answer's text with their log-probabilities (for `logprobs: true`)
        self.logprobs_fn: Callable[[str], list[tuple[str, float]]] | None = None
        self.api_key: str | None = None
        self.fail_after_chunks: int | None = None
        self.answer_order: Callable[[dict[str, Any]], bool] | None = None
        self.hold.set()
        self.cancelled = 0
        self.disconnected = threading.Event()
        #: requests the engine works on at once (like a GPU's batch); None = unbounded
        self.capacity: int | None = None
        self.max_in_flight = 0  # the most chat requests it held at once since reset()

    def _engine_slots(self) -> Any:
        """A semaphore of `capacity` slots (no limit without one)."""
        if self.capacity is None:
            return contextlib.nullcontext()
        if self._slots is None or self._slots[0] != self.capacity:
            self._slots = (self.capacity, asyncio.Semaphore(self.capacity))
        return self._slots[1]

    def reply_for(self, body: dict[str, Any]) -> tuple[str, str]:
        """(text, finish_reason) of the answer to `body`."""
        if self.reply_fn is not None:
            reply = self.reply_fn(body)
            return reply if isinstance(reply, tuple) else (reply, self.finish_reason)
        texts = [part.get("text", "") for m in body["messages"] if isinstance(m.get("content"), list)
                 for part in m["content"] if part.get("type") == "text"]
        prompt = texts[-1] if texts else ""
        return self.replies.get(prompt, self.default_reply), self.finish_reason

    def _refusal(self, request: Request, body: dict[str, Any] | None) -> JSONResponse | None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)  # vLLM's exact body
        if body is None:
            return None
        if body.get("model") != self.model:
            return vllm_error(404, f"The model `{body.get('model')}` does not exist. "
                                   f"Valid aliases: {self.model}.", "NotFoundError", "model")
        if (problem := xargs_schema_problem(body.get("vllm_xargs"))) is not None:
            return vllm_error(400, problem, "Bad Request")  # vLLM's RequestValidationError handler
        if (problem := xargs_problem(body.get("vllm_xargs"))) is not None:
            return vllm_error(400, problem, "BadRequestError")
        if image_count(body) > 1:
            return vllm_error(400, "At most 1 image(s) may be provided in one prompt.", "BadRequestError")
        return None

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models(request: Request) -> Any:
            if (refused := self._refusal(request, None)) is not None:
                return refused
            return {"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            if (refused := self._refusal(request, body)) is not None:
                return refused
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            text, finish_reason = self.reply_for(body)
            usage = {"prompt_tokens": 278, "completion_tokens": len(text.split()),
                     "total_tokens": 278 + len(text.split())}
            if not body.get("stream"):
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    async with self._engine_slots():
                        if not await self._wait_unless_gone(request, body):
                            return JSONResponse({}, status_code=499)
                finally:
                    self.in_flight -= 1
                tokens = self._tokens(body, text)
                return JSONResponse({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": finish_reason,
                                 **({"logprobs": {"content": [logprob_entry(*t) for t in tokens]}}
                                    if tokens is not None else {})}],
                    "usage": usage})
            return StreamingResponse(self._stream(body, text, finish_reason, usage, request),
                                     media_type="text/event-stream")

        return app

    def _tokens(self, body: dict[str, Any], text: str) -> list[tuple[str, float]] | None:
        """The scripted tokens of `text`, when the body asks for logprobs and a script is set."""
        if not body.get("logprobs") or self.logprobs_fn is None:
            return None
        return self.logprobs_fn(text)

    async def _wait_unless_gone(self, request: Request, body: dict[str, Any]) -> bool:
        """Wait while `hold` is clear (or `answer_order` says this body must wait); False, with
        `disconnected` set and `cancelled` counted, if the client left meanwhile. Also waits
        `delay_s`, like an engine busy with the page."""
        ready_at = asyncio.get_running_loop().time() + self.delay_s
        while (not self.hold.is_set() or (self.answer_order is not None and not self.answer_order(body))
               or asyncio.get_running_loop().time() < ready_at):
            if await request.is_disconnected():
                self.cancelled += 1
                self.disconnected.set()
                return False
            await asyncio.sleep(0.01)
        return True

    async def _stream(self, body: dict[str, Any], text: str, finish_reason: str,
                      usage: dict[str, int], request: Request) -> Any:
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                     "created": 0, "model": body["model"], "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        try:
            if not await self._wait_unless_gone(request, body):
                return
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                          "finish_reason": None}])
            tokens = self._tokens(body, text)
            pieces = [text[i:i + 3] for i in range(0, len(text), 3)] if tokens is None else [t for t, _ in tokens]
            for n, piece in enumerate(pieces):
                if self.fail_after_chunks is not None and n == self.fail_after_chunks:
                    # what vLLM's chat stream generator yields when the engine fails mid-answer
                    error = {"error": {"message": "engine core died mid-stream", "type": "InternalServerError",
                                       "param": None, "code": 500}}
                    yield f"data: {json.dumps(error)}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                scored = {} if tokens is None else {"logprobs": {"content": [logprob_entry(*tokens[n])]}}
                yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None, **scored}])
            yield event([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
            if body.get("stream_options", {}).get("include_usage"):
                yield event([], usage=usage)
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.cancelled += 1
            self.disconnected.set()
            raise
