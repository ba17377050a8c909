"""The server span of each request, where the app's Runtime traces (`telemetry`): it continues
the client's W3C `traceparent` when one is sent, is named `METHOD route` once routed, and
makes the request's spans its children. The answer carries a `traceparent` naming it (a
client finds its trace), the access line its trace id (`state["trace_id"]`), and reading the
request body is a child span. Tracing off: the request passes untouched."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from openai_ocr import telemetry
from openai_ocr.api.middleware.asgi import Scope
from openai_ocr.runtime import runtime_of

TRACEPARENT = telemetry.TRACEPARENT.encode()


class TracingMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        runtime = runtime_of(getattr(scope.get("app"), "state", None)) if scope["type"] == "http" else None
        tracer = runtime.telemetry.tracer if runtime is not None else None
        if tracer is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        method = scope["method"]
        state = scope.setdefault("state", {})
        span = tracer.start_span(method, context=telemetry.PROPAGATOR.extract(headers), kind=SpanKind.SERVER,
                                 attributes={"http.request.method": method, "url.path": scope["path"],
                                             "request.id": state.get("request_id", "")})
        state["trace_id"] = telemetry.trace_id_of(span)
        traceparent = (telemetry.traceparent_of(span) or "").encode()
        status = 500
        body: dict[str, int] = {"bytes": 0}

        async def timed_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request" and "end" not in body:
                body.setdefault("start", telemetry.now_ns())
                body["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body["end"] = telemetry.now_ns()
                    if body["bytes"]:
                        telemetry.timed_span("read body", body["start"], body["end"],
                                             {"http.request.body.size": body["bytes"]})
            return message

        async def traced_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if traceparent:
                    message = {**message, "headers": [*message.get("headers", []), (TRACEPARENT, traceparent)]}
            await send(message)

        try:
            with telemetry.serving(tracer, span):
                await self.app(scope, timed_receive, traced_send)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
