"""OpenTelemetry traces through the gateway: the SDK's OTLP/HTTP exporter posts to an
in-process receiver (tests/otlp_receiver.py), as it would to a collector; the fake upstream
records the `traceparent` it is sent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from openai_ocr.runtime import runtime_of
from openai_ocr.settings import TelemetrySettings
from openai_ocr.telemetry import Telemetry, traces_endpoint
from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, gateway_settings, parse_sse, serve, wait_until
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan, otlp_receiver

SERVER, CLIENT = 2, 3  # the protobuf's SpanKind
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
Traced = tuple[str, OTLPReceiver, Telemetry]


@pytest.fixture()
def traced(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> Iterator[Traced]:
    """(URL, receiver, telemetry) of a gateway exporting its traces to a receiver."""
    with otlp_receiver() as receiver, \
            serve(gateway_settings(fake_upstream[1], telemetry={"otlp_endpoint": receiver.url,
                                                                "service_name": "ocr-under-test"})) as (url, app):
        runtime = runtime_of(app.state)
        assert runtime is not None
        yield url, receiver, runtime.telemetry


def trace_of(receiver: OTLPReceiver, telemetry: Telemetry, trace_id: str, server_name: str) -> list[ReceivedSpan]:
    """The trace's spans once its server span (the last to end) has arrived; flushed, not slept."""
    def arrived() -> bool:
        telemetry.force_flush()
        return any(s.trace_id == trace_id for s in receiver.named(server_name))

    wait_until(arrived, timeout_s=20, what="the request's server span at the receiver")
    return receiver.in_trace(trace_id)


def access_line(caplog: pytest.LogCaptureFixture, request_id: str) -> dict:
    found: list[dict] = []

    def logged() -> bool:
        found[:] = [line for rec in caplog.records if rec.name == "openai_ocr.access"
                    for line in [json.loads(rec.getMessage())] if line["request_id"] == request_id]
        return bool(found)

    wait_until(logged, what="the access line")
    return found[0]


def test_a_three_page_pdf_is_one_trace_down_to_the_upstream(
        traced: Traced, upstream: FakeUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    url, receiver, telemetry = traced
    with caplog.at_level(logging.INFO, logger="openai_ocr.access"):
        r = httpx.post(f"{url}/ocr/file", files={"file": ("d.pdf", blank_pdf(3), "application/pdf")},
                       timeout=60)
        assert r.status_code == 200, r.text
        version, trace_id, server_id, flags = r.headers["traceparent"].split("-")
        assert (version, len(trace_id)) == ("00", 32) and int(flags, 16) & 1  # sampled
        line = access_line(caplog, r.headers["x-request-id"])
    assert line["trace_id"] == trace_id

    spans = trace_of(receiver, telemetry, trace_id, "POST /ocr/file")
    by_id = {s.span_id: s for s in spans}
    assert {s.service for s in spans} == {"ocr-under-test"}
    [server] = [s for s in spans if s.kind == SERVER]
    assert (server.name, server.span_id, server.parent_id) == ("POST /ocr/file", server_id, "")
    assert server.attributes["http.route"] == "/ocr/file"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["request.id"] == r.headers["x-request-id"]
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}

    def children(parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
        return [s for s in spans if s.parent_id == parent.span_id and s.name == name]

    [body] = children(server, "read body")
    assert body.attributes["http.request.body.size"] > 0
    [opened] = children(server, "open document")
    assert opened.attributes["ocr.document.pages"] == 3
    assert [s.name for s in spans if s.parent_id == opened.span_id] == ["worker probe_document"]
    pages = sorted(children(server, "page"), key=lambda s: s.attributes["ocr.page"])
    assert [p.attributes["ocr.page"] for p in pages] == [1, 2, 3]
    calls_sent: list[str] = []
    for number, page in enumerate(pages, start=1):
        [render] = children(page, "render page")
        assert render.attributes["ocr.page"] == number
        [worker] = children(render, "worker render_page")  # timed in the decoder process
        assert render.start_ns <= worker.start_ns <= worker.end_ns <= render.end_ns
        assert worker.attributes["process.pid"] > 0
        [call] = children(page, "engine call")
        assert call.attributes["ocr.page"] == number
        assert call.attributes["ocr.attempt"] == 1 and call.attributes["ocr.step"] == "first"
        assert call.attributes["ocr.engine"] == "upstream"
        assert call.attributes["ocr.resolution"] and call.attributes["ocr.mode"]
        assert call.attributes["gen_ai.usage.input_tokens"] == 278
        assert call.attributes["gen_ai.usage.output_tokens"] == 2
        assert call.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        [http_call] = children(call, "POST /chat/completions")
        assert http_call.kind == CLIENT and http_call.attributes["http.response.status_code"] == 200
        calls_sent.append(http_call.span_id)
        [assembly] = children(page, "assemble")  # each page as soon as it is read
        assert assembly.attributes["ocr.page"] == number and call.end_ns <= assembly.start_ns
    assert all(s.parent_id in by_id for s in spans if s is not server)  # one tree

    # the upstream got the trace: each call's traceparent names its client span
    sent = [h["traceparent"].split("-") for h in upstream.headers]
    assert len(sent) == 3 and {s[1] for s in sent} == {trace_id}
    assert sorted(s[2] for s in sent) == sorted(calls_sent)


def test_a_client_trace_is_continued(traced: Traced, upstream: FakeUpstream) -> None:
    url, receiver, telemetry = traced
    r = httpx.post(f"{url}/ocr/file", files={"file": ("d.pdf", blank_pdf(1), "application/pdf")},
                   headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["traceparent"].split("-")[1] == CLIENT_TRACE
    spans = trace_of(receiver, telemetry, CLIENT_TRACE, "POST /ocr/file")
    [server] = [s for s in spans if s.kind == SERVER]
    assert server.parent_id == CLIENT_PARENT
    assert upstream.headers[0]["traceparent"].split("-")[1] == CLIENT_TRACE


def test_a_stream_has_its_events_on_the_trace(traced: Traced,
                                              upstream: FakeUpstream) -> None:
    url, receiver, telemetry = traced
    with httpx.stream("POST", f"{url}/ocr/stream", files={"file": ("d.pdf", blank_pdf(2), "application/pdf")},
                      timeout=60) as r:
        assert r.status_code == 200
        trace_id = r.headers["traceparent"].split("-")[1]
        events = parse_sse(r.iter_lines())
    assert any('"type":"done"' in e for e in events), events
    spans = trace_of(receiver, telemetry, trace_id, "POST /ocr/stream")
    [server] = [s for s in spans if s.kind == SERVER]
    names = [name for name, _ in server.events]
    assert names == ["stream page", "stream page_end", "stream page", "stream page_end", "stream done"]
    assert len([s for s in spans if s.name == "render page"]) == 2
    assert {h["traceparent"].split("-")[1] for h in upstream.headers} == {trace_id}


def test_tracing_off_sends_no_traceparent(gateway: str, upstream: FakeUpstream,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Off, nothing is traced nor passed on, a client's `traceparent` included (the gateway
    takes no part in traces then)."""
    with caplog.at_level(logging.INFO, logger="openai_ocr.access"):
        r = httpx.post(f"{gateway}/ocr/file", files={"file": ("d.pdf", blank_pdf(2), "application/pdf")},
                       headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}, timeout=60)
        assert r.status_code == 200, r.text
        line = access_line(caplog, r.headers["x-request-id"])
    assert "traceparent" not in r.headers
    assert line["trace_id"] is None
    assert len(upstream.headers) == 2
    assert not any("traceparent" in h for h in upstream.headers)


@pytest.mark.parametrize("configured, env, expected", [
    ("", {}, None),
    ("http://collector:4318", {}, "http://collector:4318/v1/traces"),
    ("http://collector:4318/", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http://collector:4318/v1/traces"),
    ("http://collector:4318/custom/path", {}, "http://collector:4318/custom/path"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x"},
     "http://t:9/x"),
])
def test_the_endpoint_comes_from_the_settings_then_the_standard_variables(
        configured: str, env: dict[str, str], expected: str | None) -> None:
    assert traces_endpoint(TelemetrySettings(otlp_endpoint=configured), env) == expected
