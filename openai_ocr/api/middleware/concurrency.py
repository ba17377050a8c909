"""A bounded number of requests at once, answered with a JSON 503 and Retry-After past it.

uvicorn's own `limit_concurrency` counts connections and tasks together and answers a
plain-text 503 to everyone past it, probes included: a few hundred slow uploads took every
slot, and `/live` failed with them. Here requests are counted from their headers to the end
of their answer (their body's upload included, which `BodyDeadlineMiddleware` bounds in
time); the probes (`/live`, `/ready`, `/health`, `/metrics`) count apart, in slots of their
own, so a full server still answers them. `openai-ocr serve` runs uvicorn without its limit.
"""

from __future__ import annotations

from typing import Any

from openai_ocr.api.middleware.asgi import Scope, send_json
from openai_ocr.errors import Unavailable

PROBE_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})
PROBE_SLOTS = 32
"""Probe requests at once (cheap, and never waiting on a request body)."""
RETRY_AFTER_S = 1


class ConcurrencyLimitMiddleware:
    def __init__(self, app: Any, limit: int, probe_limit: int = PROBE_SLOTS) -> None:
        self.app = app
        self.limits = {False: limit, True: probe_limit}
        #: requests in flight: {is a probe: count}
        self.active = {False: 0, True: 0}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        probe = scope["path"] in PROBE_PATHS
        if self.active[probe] >= self.limits[probe]:
            await _refuse(send, self.limits[probe])
            return
        self.active[probe] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active[probe] -= 1


async def _refuse(send: Any, limit: int) -> None:
    error = Unavailable(f"the server is handling {limit} requests, its limit "
                        "(connections.limit_concurrency); retry shortly",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    await send_json(send, 503, error.as_json(),
                    [(b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")])
