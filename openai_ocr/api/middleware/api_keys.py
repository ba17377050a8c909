"""API keys checked from the headers, before any byte of the body is read or parsed.

A FastAPI dependency runs only after the body has been read and parsed (a 48 MB JSON body
cost 1.7 GB before its 401), so this middleware answers 401 first. It reads the keys from the
app's Runtime (bound by create_app, or by the vLLM plugin's init_state), so it works the
same on our app and on vLLM's, and leaves the caller's key id in the request state, where
the route dependency (`require_api_key`, the per-key rate limit) finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers

from openai_ocr.api.dependencies import authenticated_caller
from openai_ocr.api.middleware.asgi import Scope, send_json
from openai_ocr.errors import Unauthorized
from openai_ocr.runtime import runtime_of

OPEN_PATHS = frozenset({"/", "/health", "/ready", "/live", "/metrics", "/docs", "/redoc",
                        "/openapi.json", "/docs/oauth2-redirect"})
"""Probes, scrapers and documentation: open (docs are guarded by their own route when
`auth.protect_docs` is set)."""
OPEN_PREFIXES = ("/playground", "/ui/", "/docs-assets/")
"""The playground page and its assets (it asks for the key itself; its own route guards it
under `auth.protect_docs`), and the offline Swagger/ReDoc assets."""


def every_path_but_open(path: str) -> bool:
    return path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES)


def compat_paths(path: str) -> bool:
    """Our routes on vLLM's app; vLLM's own `--api-key` guards its `/v1` routes."""
    return (path in ("/ocr", "/v1/ocr", "/v1/files", "/v1/batches", "/v1/usage")
            or path.startswith(("/ocr/", "/v1/files/", "/v1/batches/")))


class APIKeyMiddleware:
    def __init__(self, app: Any, protected: Callable[[str], bool] = every_path_but_open) -> None:
        self.app = app
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") != "OPTIONS" and self.protected(scope["path"]):
            runtime = runtime_of(getattr(scope.get("app"), "state", None))
            if runtime is not None:  # (not bound yet: the route itself answers 503)
                try:
                    caller = authenticated_caller(Headers(scope=scope), runtime.keys)
                except Unauthorized:
                    await _refuse(send)
                    return
                scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _refuse(send: Any) -> None:
    error = Unauthorized()
    await send_json(send, 401, error.as_json(),
                    [(b"connection", b"close"),
                     *((k.lower().encode(), v.encode()) for k, v in error.headers.items())])
