"""The server's assembly: the app of the gateway and lite modes, and the routes of every mode.

In vllm mode vLLM builds the app; the endpoint plugin calls `attach_compat_routes` on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openai_ocr import __version__
from openai_ocr.api.auth_middleware import APIKeyMiddleware
from openai_ocr.api.dependencies import STATE_KEY
from openai_ocr.api.middleware import BodySizeLimitMiddleware, RequestObserverMiddleware
from openai_ocr.api.routes import health, mistral, openai
from openai_ocr.api.routes.docs import protected_docs_router
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.engines.base import ChatEngine
from openai_ocr.engines.gated import gated
from openai_ocr.service.serving import OCRService
from openai_ocr.settings import SETTINGS_FILE_ENV, Settings, handed_over

logger = logging.getLogger(__name__)

DESCRIPTION = """DeepSeek-OCR behind an OpenAI-compatible API.

* `/v1/chat/completions`, `/v1/models`: the OpenAI API (use the official SDKs with `base_url`).
* `/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`, `/health`: the legacy OCR routes, each
  translated into a chat completion with DeepSeek-OCR's official prompt templates.
"""


def attach_compat_routes(app: FastAPI) -> None:
    """Mount the legacy routes on an app (ours, or vLLM's through the endpoint plugin)."""
    app.include_router(compat_router)
    app.include_router(mistral.router)
    app.include_router(health.router)


def build_engine(settings: Settings, kind: str) -> ChatEngine:
    """The engine for a resolved engine kind (vllm runs inside vLLM's server instead)."""
    if kind == "upstream":
        from openai_ocr.engines.upstream import UpstreamEngine

        return UpstreamEngine(settings.upstream, settings.engine.model)
    if kind == "lite":
        from openai_ocr.engines.lite.engine import LiteEngine

        return LiteEngine(settings)
    raise ValueError(f"no in-process app for engine {kind!r}")


def create_app(settings: Settings, engine: ChatEngine) -> FastAPI:
    """The FastAPI app of the upstream and lite modes."""
    engine = gated(engine, settings)
    service = OCRService(engine, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        await service.start()
        logger.info("serving %s with the %s engine", engine.model, engine.kind)
        try:
            yield
        finally:
            service.close()
            await engine.close()

    protect_docs = bool(settings.auth.protect_docs and settings.auth.api_keys)
    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None if protect_docs else "/docs",
                  redoc_url=None if protect_docs else "/redoc",
                  openapi_url=None if protect_docs else "/openapi.json")
    setattr(app.state, STATE_KEY, service)
    # Outermost first: request ids and logs see every answer, 413s included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(APIKeyMiddleware)  # keys before bodies
    if settings.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           allow_credentials="*" not in settings.server.cors_origins)
    app.add_middleware(RequestObserverMiddleware)
    attach_compat_routes(app)
    app.include_router(openai.router)
    app.include_router(health.metrics_router)
    if protect_docs:
        app.include_router(protected_docs_router(app))

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"name": "openai-ocr", "version": __version__, "model": engine.model,
                "engine": engine.kind, "docs": "/docs", "openai_base_url": "/v1"}

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the file `hand_over` wrote."""
    settings = handed_over()
    if settings is None:
        raise RuntimeError(f"no settings handed over (${SETTINGS_FILE_ENV} is not set)")
    return create_app(settings, build_engine(settings, settings.engine.kind))
