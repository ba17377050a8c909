"""vllm mode: chat requests holding a `file` part answered by the project, the rest by vLLM.

vLLM's own `/v1/chat/completions` takes images, not PDFs or multi-page TIFFs, and knows
nothing of files uploaded to `/v1/files`. In the other modes our chat route answers those
(`DocumentChat`: one engine request a page, joined with the page separator). On vLLM's app
this pure ASGI middleware reads the chat body (already bounded by the body-size limit and
deadline) and refuses one over the JSON limits (`check_json_bounds`: 413 before anyone
parses it); a body without the bytes `"file"` goes on to vLLM at once, replayed as
received; one whose messages hold a file part is answered by the same code as our route,
with vLLM's API keys (checked here, whatever the order of vLLM's own key check and this
middleware).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request

from openai_ocr.api.chat_answer import answer_chat
from openai_ocr.api.dependencies import authenticated_caller
from openai_ocr.api.http_errors import error_response, json_limits
from openai_ocr.api.middleware.asgi import Scope
from openai_ocr.errors import BadRequest, OCRError, validation_message
from openai_ocr.inputs.json_bounds import check_json_bounds
from openai_ocr.protocol.openai import ChatCompletionBody
from openai_ocr.runtime import runtime_of
from openai_ocr.service.chat_documents import file_part_location

CHAT_PATH = "/v1/chat/completions"


class FileChatMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != CHAT_PATH:
            await self.app(scope, receive, send)
            return
        body, ended = await _read_body(receive)
        sent = False

        async def replayed() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        runtime = runtime_of(getattr(scope.get("app"), "state", None))
        if not ended:
            try:  # every chat body, before vLLM or we parse it
                check_json_bounds(body, *json_limits(scope.get("app")))
            except OCRError as exc:
                await error_response(exc, {"Connection": "close"})(scope, replayed, send)
                return
        if ended or runtime is None or b'"file"' not in body or (parsed := _file_chat(body)) is None:
            await self.app(scope, replayed, send)
            return
        request = Request(scope, replayed)
        try:
            request.state.caller = authenticated_caller(Headers(scope=scope), runtime.keys)
            response = await answer_chat(request, runtime.service, _validated(parsed))
        except OCRError as exc:
            response = error_response(exc)
        await response(scope, replayed, send)


async def _read_body(receive: Any) -> tuple[bytes, bool]:
    """The whole body, and whether the client left while it was sent."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), False


def _file_chat(body: bytes) -> dict[str, Any] | None:
    """The parsed request if its messages hold a file part (else vLLM answers it)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("messages"), list):
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
