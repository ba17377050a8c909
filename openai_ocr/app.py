"""App assembly for the modes the project serves itself (upstream gateway and lite)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from openai_ocr import __version__
from openai_ocr.backends.base import ChatBackend
from openai_ocr.backends.gated import gated
from openai_ocr.compat_routes import health_router
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.dependencies import STATE_KEY, ApiKeyDep
from openai_ocr.http_errors import OCRRoute
from openai_ocr.middleware import BodySizeLimitMiddleware, RequestObserverMiddleware
from openai_ocr.mistral_routes import router as mistral_router
from openai_ocr.openai_routes import router as openai_router
from openai_ocr.serving import OCRService
from openai_ocr.settings import Settings

logger = logging.getLogger(__name__)

SETTINGS_ENV = "OPENAI_OCR_SETTINGS_JSON"
"""Resolved settings handed to uvicorn worker processes (see `app_from_env`)."""

DESCRIPTION = """DeepSeek-OCR behind an OpenAI-compatible API.

* `/v1/chat/completions`, `/v1/models`: the OpenAI API (use the official SDKs with `base_url`).
* `/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`, `/health`: the legacy OCR routes, each
  translated into a chat completion with DeepSeek-OCR's official prompt templates.
"""


def attach_compat_routes(app: FastAPI) -> None:
    """Mount the legacy routes on an app (ours, or vLLM's through the endpoint plugin)."""
    app.include_router(compat_router)
    app.include_router(mistral_router)
    app.include_router(health_router)


metrics_router = APIRouter(tags=["Monitoring"])


@metrics_router.get("/metrics", summary="Prometheus metrics", include_in_schema=True,
                    response_class=Response)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def protected_docs_router(app: FastAPI) -> APIRouter:
    """/openapi.json, /docs and /redoc behind the API key (auth.protect_docs)."""
    router = APIRouter(dependencies=[ApiKeyDep], include_in_schema=False, route_class=OCRRoute)

    @router.get("/openapi.json")
    async def openapi() -> dict:
        return app.openapi()

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="openai-ocr")

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="openai-ocr")

    return router


def build_backend(settings: Settings, kind: str) -> ChatBackend:
    """The backend for a resolved engine kind (vllm runs inside vLLM's server instead)."""
    if kind == "upstream":
        from openai_ocr.backends.upstream import UpstreamBackend

        return UpstreamBackend(settings.upstream, settings.engine.model)
    if kind == "lite":
        from openai_ocr.backends.lite import LiteBackend

        return LiteBackend(settings)
    raise ValueError(f"no in-process app for engine {kind!r}")


def create_app(settings: Settings, backend: ChatBackend) -> FastAPI:
    """The FastAPI app of the upstream and lite modes."""
    backend = gated(backend, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        logger.info("serving %s with the %s engine", backend.model, backend.kind)
        try:
            yield
        finally:
            await backend.close()

    protect_docs = bool(settings.auth.protect_docs and settings.auth.api_keys)
    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None if protect_docs else "/docs",
                  redoc_url=None if protect_docs else "/redoc",
                  openapi_url=None if protect_docs else "/openapi.json")
    setattr(app.state, STATE_KEY, OCRService(backend, settings))
    # Outermost first: request ids and logs see every answer, 413s included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    if settings.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           allow_credentials="*" not in settings.server.cors_origins)
    app.add_middleware(RequestObserverMiddleware)
    attach_compat_routes(app)
    app.include_router(openai_router)
    app.include_router(metrics_router)
    if protect_docs:
        app.include_router(protected_docs_router(app))

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"name": "openai-ocr", "version": __version__, "model": backend.model,
                "engine": backend.kind, "docs": "/docs", "openai_base_url": "/v1"}

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings and engine come from the environment."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings, build_backend(settings, settings.engine.kind))
