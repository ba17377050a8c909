"""ASGI middleware of the project's own app: body-size limit, request ids, logs, metrics.

Pure ASGI (no BaseHTTPMiddleware), so streaming responses pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException

from openai_ocr.errors import PayloadTooLarge
from openai_ocr.metrics import Metrics

#: A fixed name, not `__name__`: the one-JSON-line-per-request access log, which deployments
#: route or silence on its own (README, "Observability").
access_log = logging.getLogger("openai_ocr.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Scope = dict[str, Any]


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException, so FastAPI's body parsing lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body larger than {limit} bytes")


async def send_json(send: Any, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON answer from pure ASGI middleware (which runs before FastAPI's responses)."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


async def _refuse_too_large(send: Any, max_bytes: int) -> None:
    error = PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    await send_json(send, 413, error.as_json(), [(b"connection", b"close")])


class BodySizeLimitMiddleware:
    """413 for bodies over `max_bytes`: from Content-Length at once, else while streaming in."""

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


class RequestObserverMiddleware:
    """X-Request-ID (kept from the client when sane, else new), one JSON log line, metrics."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (REQUEST_ID_HEADER.encode(), request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            state = scope.get("state", {})
            access_log.info(json.dumps({
                "request_id": request_id, "method": scope["method"], "path": scope["path"],
                "route": route, "status": status, "duration_ms": round(elapsed * 1000, 1),
                "client": (scope.get("client") or ("", 0))[0], "caller": state.get("caller"),
            }))
