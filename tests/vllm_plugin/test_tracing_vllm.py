"""vllm mode, traced: vLLM exports its own spans (`--otlp-traces-endpoint`) and our plugin
its spans, both to the session's OTLP receiver; a page's engine call hands its trace context
to vLLM's chat handler, so vLLM's `llm_request` span is the child of our `engine call` span in
the client's trace; a chat request vLLM answers itself reaches vLLM with our server span's
context, so its `llm_request` span is that span's child."""

from __future__ import annotations

import base64
import secrets

import httpx

from tests.helpers import ENGINE_AUTH, SERVED_NAME, image_messages, png_bytes, require, wait_until
from tests.otlp_receiver import OTLPReceiver

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

TOKENS = 2


def test_vllms_request_span_is_the_child_of_our_engine_call(vllm_server: str, vllm_traces: OTLPReceiver) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    r = httpx.post(f"{vllm_server}/ocr", timeout=600,
                   headers={**ENGINE_AUTH, "traceparent": f"00-{trace_id}-{client_span}-01"},
                   json={"image_base64": base64.b64encode(png_bytes(320, 200, "Invoice 42")).decode(),
                         "mode": "free_ocr", "max_tokens": TOKENS, "resolution": "tiny"})
    assert r.status_code == 200, r.text
    assert r.headers["traceparent"].split("-")[1] == trace_id
    wait_until(lambda: {"engine call", "llm_request"} <= {s.name for s in vllm_traces.in_trace(trace_id)},
               60, "our spans and vLLM's exported")
    spans = vllm_traces.in_trace(trace_id)
    [server] = [s for s in spans if s.name == "POST /ocr"]
    assert server.parent_id == client_span
    [call] = [s for s in spans if s.name == "engine call"]
    [request] = [s for s in spans if s.name == "llm_request"]
    assert request.parent_id == call.span_id
    assert request.attributes["gen_ai.usage.completion_tokens"] == TOKENS
    assert call.start_ns <= request.start_ns and request.end_ns <= call.end_ns + 1_000_000


def test_a_chat_vllm_answers_itself_is_traced_under_our_server_span(
        vllm_server: str, vllm_traces: OTLPReceiver) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    r = httpx.post(f"{vllm_server}/v1/chat/completions", timeout=600,
                   headers={**ENGINE_AUTH, "traceparent": f"00-{trace_id}-{client_span}-01"},
                   json={"model": SERVED_NAME, "max_tokens": TOKENS, "mm_processor_kwargs": {"resolution": "tiny"},
                         "messages": image_messages(png_bytes(320, 200, "Invoice 42"))})
    assert r.status_code == 200, r.text
    wait_until(lambda: {"POST /v1/chat/completions", "llm_request"}
               <= {s.name for s in vllm_traces.in_trace(trace_id)}, 60, "our span and vLLM's exported")
    spans = vllm_traces.in_trace(trace_id)
    [server] = [s for s in spans if s.name == "POST /v1/chat/completions"]
    [request] = [s for s in spans if s.name == "llm_request"]
    assert server.parent_id == client_span and request.parent_id == server.span_id
