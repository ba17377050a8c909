"""The server's assembly: the app of the gateway and lite modes, and the routes of every mode.

In vllm mode vLLM builds the app; the endpoint plugin calls `attach_compat_routes` on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openai_ocr import __version__
from openai_ocr.api.dependencies import BATCHES_KEY, STATE_KEY
from openai_ocr.api.middleware import BodySizeLimitMiddleware, RequestObserverMiddleware
from openai_ocr.api.routes import batches, files, health, mistral, openai
from openai_ocr.api.routes.docs import protected_docs_router
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.engines.base import ChatEngine
from openai_ocr.engines.gated import gated
from openai_ocr.service.batches import BatchService
from openai_ocr.service.serving import OCRService
from openai_ocr.settings import SETTINGS_ENV, Settings
from openai_ocr.storage.store import Store

logger = logging.getLogger(__name__)

DESCRIPTION = """DeepSeek-OCR behind an OpenAI-compatible API.

* `/v1/chat/completions`, `/v1/models`: the OpenAI API (use the official SDKs with `base_url`).
* `/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`, `/health`: the legacy OCR routes, each
  translated into a chat completion with DeepSeek-OCR's official prompt templates.
* `/v1/files`, `/v1/batches`: the OpenAI Files and Batch API, durable across restarts.
"""


def attach_compat_routes(app: FastAPI) -> None:
    """Mount the legacy routes on an app (ours, or vLLM's through the endpoint plugin)."""
    app.include_router(compat_router)
    app.include_router(mistral.router)
    app.include_router(health.router)
    app.include_router(files.router)
    app.include_router(batches.router)


def batch_service(service: OCRService) -> BatchService | None:
    """The store and batch runner of a service (bound to it), or None with batches off."""
    if not service.settings.batches.enabled:
        return None
    service.store = Store(service.settings.storage)
    return BatchService(service, service.store)


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
    runner = batch_service(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        logger.info("serving %s with the %s engine", engine.model, engine.kind)
        if runner is not None:
            await runner.start()  # resumes the batches a previous run left unfinished
        try:
            yield
        finally:
            if runner is not None:
                await runner.close()
                runner.store.close()
            await engine.close()

    protect_docs = bool(settings.auth.protect_docs and settings.auth.api_keys)
    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None if protect_docs else "/docs",
                  redoc_url=None if protect_docs else "/redoc",
                  openapi_url=None if protect_docs else "/openapi.json")
    setattr(app.state, STATE_KEY, service)
    setattr(app.state, BATCHES_KEY, runner)
    # Outermost first: request ids and logs see every answer, 413s included.
    upload = settings.storage.max_upload_bytes + 1024 * 1024  # plus the multipart framing
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.limits.max_body_bytes,
                       path_limits={"/v1/files": max(upload, settings.limits.max_body_bytes)})
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
    """uvicorn factory for worker processes: settings and engine come from the environment."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings, build_engine(settings, settings.engine.kind))
