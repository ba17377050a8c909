"""App assembly for the modes the project serves itself (upstream gateway and lite)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openai_ocr import __version__
from openai_ocr.backends.base import ChatBackend
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.dependencies import STATE_KEY
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        logger.info("serving %s with the %s engine", backend.model, backend.kind)
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", redoc_url="/redoc")
    setattr(app.state, STATE_KEY, OCRService(backend, settings))
    if settings.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           allow_credentials="*" not in settings.server.cors_origins)
    attach_compat_routes(app)
    app.include_router(openai_router)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, str]:
        return {"name": "openai-ocr", "version": __version__, "model": backend.model,
                "engine": backend.kind, "docs": "/docs", "openai_base_url": "/v1"}

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings and engine come from the environment."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings, build_backend(settings, settings.engine.kind))
