"""The server's assembly: the app of the gateway and lite modes, and the routes of every mode.

In vllm mode vLLM builds the app; the endpoint plugin calls `attach_compat_routes` on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry

from openai_ocr import __version__
from openai_ocr.api.auth_middleware import APIKeyMiddleware, compat_paths, every_path_but_open
from openai_ocr.api.dependencies import BATCHES_KEY, STATE_KEY
from openai_ocr.api.document_chat import DocumentChatMiddleware
from openai_ocr.api.http_errors import install_error_handlers
from openai_ocr.api.middleware import BodySizeLimitMiddleware, RequestObserverMiddleware
from openai_ocr.api.routes import batches, files, health, mistral, openai, ui
from openai_ocr.api.routes.docs import mount_docs
from openai_ocr.compat_routes import router as compat_router
from openai_ocr.engines.base import ChatEngine
from openai_ocr.engines.gated import gated
from openai_ocr.metrics import Metrics, metrics_for
from openai_ocr.service.batches import BatchService
from openai_ocr.service.serving import OCRService
from openai_ocr.settings import SETTINGS_FILE_ENV, Settings, handed_over
from openai_ocr.storage.store import Store

logger = logging.getLogger(__name__)

DESCRIPTION = """DeepSeek-OCR behind an OpenAI-compatible API.

* `/v1/chat/completions`, `/v1/models`: the OpenAI API (use the official SDKs with `base_url`).
* `/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`, `/health`: the legacy OCR routes, each
  translated into a chat completion with DeepSeek-OCR's official prompt templates.
* `/playground` (and `/` in a browser): a web page to try it, served by this server.
* `/v1/files`, `/v1/batches`: the OpenAI Files and Batch API, durable across restarts.
"""


def attach_compat_routes(app: FastAPI) -> None:
    """Mount the legacy routes on an app (ours, or vLLM's through the endpoint plugin)."""
    app.include_router(compat_router)
    app.include_router(mistral.router)
    app.include_router(health.router)
    app.include_router(ui.router)  # `/` (page or JSON summary), /playground, /ui/*
    app.include_router(files.router)
    app.include_router(batches.router)


def install_http_layer(app: FastAPI, settings: Settings, metrics: Metrics, *,
                       own_app: bool = True) -> None:
    """The HTTP contract of every mode: body-size limit, API keys checked before any body is
    read, X-Request-ID, one access line and request counters per request, and the
    `{"error": ...}` shape for unknown routes.

    On vLLM's app (`own_app=False`) these wrap vLLM's own `/v1` routes too (validation errors
    of those routes stay vLLM's, and vLLM's `--api-key` guards them); our keys guard our routes.
    """
    install_error_handlers(app, validation=own_app)
    # Added innermost first: the request observer is outermost, so request ids and logs see
    # every answer, 413s and 401s included.
    if not own_app:  # PDFs and uploaded files in chat, which vLLM's own route cannot take
        app.add_middleware(DocumentChatMiddleware)
    upload = settings.storage.max_upload_bytes + 1024 * 1024  # plus the multipart framing
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.limits.max_body_bytes,
                       path_limits={"/v1/files": max(upload, settings.limits.max_body_bytes)})
    app.add_middleware(APIKeyMiddleware, protected=every_path_but_open if own_app else compat_paths)
    if settings.server.cors_origins and own_app:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           allow_credentials="*" not in settings.server.cors_origins)
    app.state.metrics = metrics
    app.add_middleware(RequestObserverMiddleware, metrics=metrics)


def batch_service(service: OCRService, metrics: Metrics | None = None) -> BatchService | None:
    """The store and batch runner of a service (bound to it), or None with batches off."""
    if not service.settings.batches.enabled:
        return None
    service.store = Store(service.settings.storage)
    return BatchService(service, service.store, metrics)


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
    engine.use_metrics(metrics)
    engine = gated(engine, settings, metrics)
    service = OCRService(engine, settings)
    runner = batch_service(service, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        await service.start()
        logger.info("serving %s with the %s engine", engine.model, engine.kind)
        if runner is not None:
            await runner.start()  # resumes the batches a previous run left unfinished
        try:
            yield
        finally:
            service.close()
            if runner is not None:
                await runner.close()
                runner.store.close()
            await engine.close()

    protect_docs = bool(settings.auth.protect_docs and settings.auth.api_keys)
    app = FastAPI(title="openai-ocr", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,  # mount_docs serves them
                  openapi_url=None if protect_docs else "/openapi.json")
    setattr(app.state, STATE_KEY, service)
    install_http_layer(app, settings, metrics)
    setattr(app.state, BATCHES_KEY, runner)
    attach_compat_routes(app)
    app.include_router(openai.router)
    app.include_router(health.metrics_router)
    mount_docs(app, protected=protect_docs)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the file `hand_over` wrote."""
    settings = handed_over()
    if settings is None:
        raise RuntimeError(f"no settings handed over (${SETTINGS_FILE_ENV} is not set)")
    return create_app(settings, build_engine(settings, settings.engine.kind))
