"""OpenTelemetry traces: one trace per request, exported over OTLP/HTTP when configured.

Off (no `telemetry.otlp_endpoint`, no `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`): no tracer
provider is made, the SDK is not imported, and every helper here is a context-variable read
that hands back a shared no-op span.

On, each app's `Telemetry` (made and started by its Runtime) holds a tracer provider of its
own, not the process-wide one: several apps in one process (the tests) trace independently.
The HTTP layer opens the request's server span (continuing a client's W3C `traceparent`) and
makes the app's tracer current for the request (`serving`); the code below it opens child
spans with `span()`, which are no-ops outside a traced request (the batch runner, start-up).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from openai_ocr.settings import TelemetrySettings

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
"""Where an OTLP/HTTP collector takes traces, below its base URL."""
TRACEPARENT = "traceparent"

PROPAGATOR = TraceContextTextMapPropagator()
"""W3C trace context only (`traceparent`, `tracestate`): what vLLM and collectors read."""

AttributeValue = str | int | float | bool

_tracer: ContextVar[Tracer | None] = ContextVar("openai_ocr_tracer", default=None)
_page: ContextVar[int | None] = ContextVar("openai_ocr_traced_page", default=None)
_OFF: contextlib.nullcontext[Span] = contextlib.nullcontext(INVALID_SPAN)
"""What `span()` returns outside a traced request: no span, nothing recorded."""


def traces_endpoint(settings: TelemetrySettings, env: Mapping[str, str] = os.environ) -> str | None:
    """The OTLP/HTTP URL traces are posted to, or None (tracing off).

    `telemetry.otlp_endpoint` first, then the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    (used as given) and `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL). A base URL without a path
    (`http://collector:4318`) gets the spec's `/v1/traces`.
    """
    if settings.otlp_endpoint:
        return _with_traces_path(settings.otlp_endpoint)
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + TRACES_PATH
    return None


def _with_traces_path(url: str) -> str:
    return url.rstrip("/") + TRACES_PATH if urlsplit(url).path in ("", "/") else url


class Telemetry:
    """The tracer provider of one app: made at `start` when an endpoint is set, flushed and
    shut down at `stop`."""

    def __init__(self, settings: TelemetrySettings) -> None:
        self.settings = settings
        self.endpoint = traces_endpoint(settings)
        self.provider: Any = None
        #: the app's tracer; None while tracing is off
        self.tracer: Tracer | None = None

    def start(self) -> None:
        if self.endpoint is None or self.provider is not None:
            return
        # imported only when on: the SDK and the exporter (protobuf, requests) cost start-up time
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": self.settings.service_name})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint)))
        self.provider = provider
        self.tracer = provider.get_tracer("openai_ocr")
        logger.info("tracing: spans go to %s as %s", self.endpoint, self.settings.service_name)

    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        """Export the spans ended so far now (True when done in time)."""
        return bool(self.provider.force_flush(timeout_ms)) if self.provider is not None else True

    def stop(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # exports what is queued
            self.provider, self.tracer = None, None


@contextlib.contextmanager
def serving(tracer: Tracer, span: Span) -> Iterator[None]:
    """`span` current, and `tracer` the one `span()` uses, for the block (a request)."""
    tracer_token = _tracer.set(tracer)
    context_token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(context_token)
        _tracer.reset(tracer_token)


def span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None,
         kind: SpanKind = SpanKind.INTERNAL) -> contextlib.AbstractContextManager[Span]:
    """A child span of the current one, current for the block; inside a traced request only
    (elsewhere a shared no-op span). Attributes that are None are left out."""
    tracer = _tracer.get()
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, attributes=_present(attributes), kind=kind)


def recording() -> bool:
    """Whether spans made now are recorded (a traced request, sampled)."""
    return _tracer.get() is not None and trace.get_current_span().is_recording()


def timed_span(name: str, start_ns: int, end_ns: int,
               attributes: Mapping[str, AttributeValue | None] | None = None) -> None:
    """A finished child span of the current one, from times measured elsewhere (a decoder
    process, a request body read by the server); `time.time_ns()` clock."""
    tracer = _tracer.get()
    if tracer is None:
        return
    done = tracer.start_span(name, attributes=_present(attributes), start_time=start_ns)
    done.end(end_time=end_ns)


def event(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> None:
    """An event on the current span, inside a traced request (a stream's events: spans do not
    stay open across an answer's yields, whose context is the streaming task's)."""
    if _tracer.get() is not None:
        trace.get_current_span().add_event(name, _present(attributes))


@contextlib.contextmanager
def page(number: int) -> Iterator[Span]:
    """A page's span; the engine calls inside it carry its number (`current_page`)."""
    token = _page.set(number)
    try:
        with span("page", {"ocr.page": number}) as current:
            yield current
    finally:
        _page.reset(token)


def current_page() -> int | None:
    """The number of the page whose span is open here (None outside one)."""
    return _page.get()


def with_traceparent(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current span's `traceparent` inside a traced request (the upstream
    joins the trace); `headers` themselves otherwise."""
    if _tracer.get() is None or not trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier = dict(headers)
    PROPAGATOR.inject(carrier)
    return carrier


def traceparent_of(current: Span) -> str | None:
    """The W3C `traceparent` naming `current` (None for a span that is not valid)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
    return carrier.get(TRACEPARENT)


def trace_id_of(current: Span) -> str | None:
    """The 32-hex-digit trace id of `current` (None for a span that is not valid)."""
    context = current.get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def now_ns() -> int:
    return time.time_ns()


def _present(attributes: Mapping[str, AttributeValue | None] | None) -> dict[str, AttributeValue] | None:
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}
