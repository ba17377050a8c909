"""X-Request-ID (kept from the client when sane, else new), one JSON access line and the
request metrics, for every answer (413s and 401s of the other middleware included); and the
usage meter of the request, whose charges (made by the service code that answers it) are
counted for the caller's key id when the answer is sent."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from openai_ocr.api.middleware.asgi import Scope
from openai_ocr.metrics import Metrics
from openai_ocr.protocol.usage import UsageTotals
from openai_ocr.runtime import runtime_of
from openai_ocr.service.usage import metering


def access_usage(total: UsageTotals) -> dict[str, Any]:
    """What the request cost, for its access line (nothing for requests that read no page)."""
    if not total.pages and not total.images:
        return {}
    return {"pages": total.pages, "images": total.images, "image_tokens": total.image_tokens,
            "prompt_tokens": total.prompt_tokens, "completion_tokens": total.completion_tokens,
            "engine_ms": round(total.engine_seconds * 1000, 1)}


#: A fixed name, not `__name__`: the one-JSON-line-per-request access log, which deployments
#: route or silence on its own (README, "Observability").
access_log = logging.getLogger("openai_ocr.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestObserverMiddleware:
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
            with metering() as meter:
                await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            state = scope.get("state", {})
            runtime = runtime_of(getattr(scope.get("app"), "state", None))
            if runtime is not None:
                runtime.service.usage.record(meter, state.get("caller"), route)
            access_log.info(json.dumps({
                "request_id": request_id, "method": scope["method"], "path": scope["path"],
                "route": route, "status": status, "duration_ms": round(elapsed * 1000, 1),
                "client": (scope.get("client") or ("", 0))[0], "caller": state.get("caller"),
                "key_id": state.get("caller"),  # the key's short hash, never the key
                # its name in auth.keys_file: a label only (owners and usage go by key_id)
                "key_name": runtime.keys.name_of(state.get("caller")) if runtime is not None else None,
                "trace_id": state.get("trace_id"),  # set where tracing is on (middleware/tracing.py)
                **access_usage(meter.total()),
            }))
