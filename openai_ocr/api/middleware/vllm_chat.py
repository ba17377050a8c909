"""vllm mode: vLLM's `/v1/chat/completions` under the same contract as our chat route.

On vLLM's app this pure ASGI middleware reads every chat body (already bounded by the
body-size limit and deadline) and refuses one over the JSON limits (`check_json_bounds`: 413
before anyone parses it). Then, as the route of the other modes does, it checks the caller's
API key (vLLM's `--api-key` keys and ours, whatever the order of vLLM's own check and this
middleware) and quotas (429 with `Retry-After`; the request holds a `max_concurrent` slot
until its answer has been sent), and counts the request in the caller's usage:

- a request whose messages hold a `file` part (a PDF or multi-page TIFF, inline or uploaded
  to `/v1/files`: vLLM takes images only) is answered by the same code as our route
  (`DocumentChat`: one engine request a page, joined with the page separator), which charges
  what it read;
- any other goes on to vLLM, its body replayed as received; its images are counted as pages
  and its tokens read from vLLM's answer as it passes (`answer_usage`); where we trace, vLLM
  gets our server span's trace context instead of the client's (its span joins ours).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request

from openai_ocr.api.chat_answer import answer_chat
from openai_ocr.api.dependencies import authenticated_caller
from openai_ocr.api.http_errors import error_response, json_limits
from openai_ocr.api.middleware.answer_usage import ChatAnswerUsage
from openai_ocr.api.middleware.asgi import Scope, read_body, replaying
from openai_ocr.errors import BadRequest, OCRError, validation_message
from openai_ocr.inputs.json_bounds import check_json_bounds
from openai_ocr.protocol.openai import ChatCompletionBody
from openai_ocr.runtime import Runtime, runtime_of
from openai_ocr.service.chat_documents import file_part_location, image_parts
from openai_ocr.service.usage import charge
from openai_ocr.telemetry import with_traceparent

CHAT_PATH = "/v1/chat/completions"


class VLLMChatMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != CHAT_PATH:
            await self.app(scope, receive, send)
            return
        body, ended = await read_body(receive)
        replayed = replaying(body, receive)
        if ended:  # the client left: vLLM sees its disconnect
            await self.app(scope, replayed, send)
            return
        try:  # every chat body, before vLLM or we parse it
            check_json_bounds(body, *json_limits(scope.get("app")))
        except OCRError as exc:
            await error_response(exc, {"Connection": "close"})(scope, replayed, send)
            return
        runtime = runtime_of(getattr(scope.get("app"), "state", None))
        if runtime is None:  # our routes not bound yet: vLLM answers as it would without us
            await self.app(scope, replayed, send)
            return
        async with contextlib.AsyncExitStack() as admitted:
            try:
                caller = authenticated_caller(Headers(scope=scope), runtime.keys)
                await admitted.enter_async_context(runtime.quotas.admitted(caller))
            except OCRError as exc:
                await error_response(exc)(scope, replayed, send)
                return
            scope.setdefault("state", {})["caller"] = caller
            parsed = _file_chat(body) if b'"file"' in body else None
            if parsed is None:
                await self._answered_by_vllm(scope, body, replayed, send, runtime)
            else:
                await _answered_here(scope, parsed, replayed, send, runtime)

    async def _answered_by_vllm(self, scope: Scope, body: bytes, receive: Any, send: Any,
                                runtime: Runtime) -> None:
        """vLLM answers; what it answered is charged as our route charges a chat request
        without a file part (`plain_complete`): its images as pages, its tokens."""
        answer = ChatAnswerUsage()
        started = time.perf_counter()
        _hand_over_trace(scope)

        async def watched(message: Any) -> None:
            answer.see(message)
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if answer.status == 200:
                payload = _parsed(body)
                images = image_parts(payload)
                model = answer.model or str(payload.get("model") or runtime.service.engine.model)
                charge(model, answer.usage, pages=images, images=images,
                       engine_seconds=time.perf_counter() - started)


def _hand_over_trace(scope: Scope) -> None:
    """Where we trace, the request's trace context becomes ours (its server span), so the
    `llm_request` span vLLM makes from the headers (where it exports traces) is that span's
    child. The scope is changed in place: the router records the route in it for the outer
    middleware."""
    ours = with_traceparent({})
    if ours:
        kept = [(k, v) for k, v in scope["headers"] if k not in (b"traceparent", b"tracestate")]
        scope["headers"] = [*kept, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in ours.items())]


async def _answered_here(scope: Scope, parsed: dict[str, Any], receive: Any, send: Any,
                         runtime: Runtime) -> None:
    request = Request(scope, receive)
    try:
        response = await answer_chat(request, runtime.service, _validated(parsed))
    except OCRError as exc:
        response = error_response(exc)
    await response(scope, receive, send)


def _parsed(body: bytes) -> dict[str, Any]:
    """The request as JSON (empty when it is not an object: vLLM refused it anyway)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _file_chat(body: bytes) -> dict[str, Any] | None:
    """The parsed request if its messages hold a file part (else vLLM answers it)."""
    parsed = _parsed(body)
    if not isinstance(parsed.get("messages"), list):
        return None
    try:
        return parsed if file_part_location(parsed) is not None else None
    except (BadRequest, AttributeError, TypeError):
        return parsed  # two file parts, or odd messages: our answer names the problem


def _validated(parsed: dict[str, Any]) -> ChatCompletionBody:
    try:
        return ChatCompletionBody.model_validate(parsed)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc.errors())) from None
