"""The HTTP layer of every mode, installed in one place (as vLLM's `serve/middleware/register.py`)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openai_ocr.api.http_errors import install_error_handlers
from openai_ocr.api.middleware.api_keys import APIKeyMiddleware, compat_paths, every_path_but_open
from openai_ocr.api.middleware.body_deadline import BodyDeadlineMiddleware
from openai_ocr.api.middleware.body_limit import BodySizeLimitMiddleware
from openai_ocr.api.middleware.concurrency import ConcurrencyLimitMiddleware
from openai_ocr.api.middleware.request_observer import RequestObserverMiddleware
from openai_ocr.api.middleware.tracing import TracingMiddleware
from openai_ocr.api.middleware.vllm_chat import VLLMChatMiddleware
from openai_ocr.metrics import Metrics
from openai_ocr.settings import Settings

MULTIPART_FRAMING = 1024 * 1024
"""Room for the multipart framing around an upload of the largest allowed size."""


def install_http_layer(app: FastAPI, settings: Settings, metrics: Metrics, *,
                       own_app: bool = True) -> None:
    """The HTTP contract of every mode: a limit on requests at once (JSON 503, probes apart),
    body-size limit and body deadline, API keys checked before any body is read,
    X-Request-ID, one access line and request counters per request, and the
    `{"error": ...}` shape for unknown routes.

    On vLLM's app (`own_app=False`) these wrap vLLM's own `/v1` routes too (validation errors
    of those routes stay vLLM's, and vLLM's `--api-key` guards them); our keys guard our
    routes, and vLLM's chat route gets our chat route's contract (`VLLMChatMiddleware`: JSON
    bounds, keys, quotas, usage; file parts answered by the project).
    """
    install_error_handlers(app, validation=own_app)
    # Added innermost first: the request observer is outermost, so request ids and logs see
    # every answer, 503s, 408s, 413s and 401s included; the concurrency limit comes next, so
    # a refused request costs nothing more.
    if not own_app:
        app.add_middleware(VLLMChatMiddleware)
    upload = settings.storage.max_upload_bytes + MULTIPART_FRAMING
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.limits.max_body_bytes,
                       path_limits={"/v1/files": max(upload, settings.limits.max_body_bytes)})
    connections = settings.connections
    app.add_middleware(BodyDeadlineMiddleware, grace_s=connections.body_timeout_s,
                       min_rate=connections.body_min_rate)
    # On vLLM's app, vLLM's `--api-key` guards its own routes; keys of a keys file (which
    # vLLM cannot read: hashes, env references) are checked here on every route instead.
    everywhere = own_app or bool(settings.auth.keys_file)
    app.add_middleware(APIKeyMiddleware, protected=every_path_but_open if everywhere else compat_paths)
    if settings.server.cors_origins and own_app:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           allow_credentials="*" not in settings.server.cors_origins)
    app.add_middleware(ConcurrencyLimitMiddleware, limit=connections.limit_concurrency)
    app.state.metrics = metrics
    # the request's server span (where tracing is on), inside the observer so its access line
    # carries the trace id
    app.add_middleware(TracingMiddleware)
    app.add_middleware(RequestObserverMiddleware, metrics=metrics)
