"""The server's assembly: the app of the gateway and lite modes, and the routes of every mode.

In vllm mode vLLM builds the app; the endpoint plugin calls `attach_compat_routes` on it.

`openai_ocr.server:app` is a module-level ASGI app configured from the environment and the
config file, so the usual run forms work: `uvicorn openai_ocr.server:app --workers 4`, `gunicorn openai_ocr.server:app
-w 4 -k uvicorn.workers.UvicornWorker`. It is built on first access, in the process that
serves it, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from openai_ocr import __version__
from openai_ocr.api.middleware.register import install_http_layer
from openai_ocr.api.routes import batches, files, health, mistral, openai, ui, usage
from openai_ocr.api.routes.docs import mount_docs
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.engines.base import ChatEngine
from openai_ocr.metrics import metrics_for
from openai_ocr.runtime import Runtime
from openai_ocr.settings import Settings, load_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """DeepSeek-OCR behind an OpenAI-compatible API.

* `/v1/chat/completions`, `/v1/models`: the OpenAI API (use the official SDKs with `base_url`).
* `/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`, `/health`: the legacy OCR routes, each
  translated into a chat completion with DeepSeek-OCR's official prompt templates.
* `/playground` (and `/` in a browser): a web page to try it, served by this server.
* `/v1/files`, `/v1/batches`: the OpenAI Files and Batch API, durable across restarts.
* `/v1/usage`: usage per API key (pages, images, tokens, engine time) by day.
"""


def attach_compat_routes(app: FastAPI) -> None:
    """Mount the legacy routes on an app (ours, or vLLM's through the endpoint plugin)."""
    app.include_router(compat_router)
    app.include_router(mistral.router)
    app.include_router(health.router)
    app.include_router(ui.router)  # `/` (page or JSON summary), /playground, /ui/*
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(usage.router)


def engine_kind(settings: Settings) -> str:
    """The engine an app of this module serves: `engine.kind`, where `auto` means the upstream
    when one is configured, else the embedded lite engine (vLLM runs as its own server)."""
    kind = settings.engine.kind
    if kind == "auto":
        return "upstream" if settings.upstream.url else "lite"
    if kind == "vllm":
        raise RuntimeError("the vllm engine runs inside vLLM's own server: start it with "
                           "`openai-ocr serve MODEL` (or `vllm serve` with VLLM_PLUGINS=openai_ocr)")
    return kind


def build_engine(settings: Settings, kind: str) -> ChatEngine:
    """The engine for a resolved engine kind (vllm runs inside vLLM's server instead)."""
    if kind == "upstream":
        from openai_ocr.engines.upstream import UpstreamEngine

        return UpstreamEngine(settings.upstream, settings.engine.model)
    if kind == "lite":
        from openai_ocr.engines.lite.engine import LiteEngine

        return LiteEngine(settings)
    raise ValueError(f"no in-process app for engine {kind!r}")


def create_app(settings: Settings, engine: ChatEngine, *,
               registry: CollectorRegistry | None = None) -> FastAPI:
    """The FastAPI app of the upstream and lite modes.

    Its metrics go to `registry` (default: prometheus_client's global one), which `/metrics`
    serves; apps built with their own registries in one process count apart.
    """
    metrics = metrics_for(registry)
    runtime = Runtime(settings, engine, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    protect_docs = bool(settings.auth.protect_docs and runtime.keys.enabled)
    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,  # mount_docs serves them
                  openapi_url=None if protect_docs else "/openapi.json")
    runtime.bind(app.state)
    install_http_layer(app, settings, metrics)
    attach_compat_routes(app)
    app.include_router(openai.router)
    app.include_router(health.metrics_router)
    mount_docs(app, protected=protect_docs)
    return app


def app_from_settings(settings: Settings | None = None) -> FastAPI:
    """The app for `settings`, else for the config file and environment (what `uvicorn
    openai_ocr.server:app` gets)."""
    settings = settings or load_settings()
    return create_app(settings, build_engine(settings, engine_kind(settings)))


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """`openai_ocr.server:app`, built on first access (uvicorn and gunicorn look it up by name)."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = app_from_settings()
    return _app
