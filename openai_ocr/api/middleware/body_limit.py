"""413 for request bodies over their limit: from Content-Length at once, else while they stream in."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import HTTPException

from openai_ocr.api.middleware.asgi import Scope, send_json
from openai_ocr.errors import PayloadTooLarge


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException, so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body larger than {limit} bytes")


async def _refuse_too_large(send: Any, max_bytes: int) -> None:
    error = PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    await send_json(send, 413, error.as_json(), [(b"connection", b"close")])


class BodySizeLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: other limits for exact paths (file uploads may be larger than any request)
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _refuse_too_large(send, max_bytes)
            return
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse_too_large(send, max_bytes)
