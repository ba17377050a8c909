"""The legacy routes through a real gateway (uvicorn on loopback) in front of a fake upstream."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, jpeg_bytes, parse_sse, png_bytes, serve, wait_until

GUARD = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}


def chat_of(upstream: FakeUpstream) -> dict:
    assert len(upstream.requests) == 1, upstream.requests
    return upstream.requests[0]


def content_of(body: dict) -> list[dict]:
    (message,) = body["messages"]
    assert message["role"] == "user"
    return message["content"]


def test_ocr_json_sends_the_exact_recipe_upstream(gateway: str, upstream: FakeUpstream) -> None:
    image = png_bytes()
    upstream.default_reply = "<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# Hi"
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(image)})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["text"] == upstream.default_reply
    assert answer["model"] == "deepseek-ai/DeepSeek-OCR"
    assert answer["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 278
    assert answer["status"] == "success" and answer["request_id"]
    sent = chat_of(upstream)
    assert content_of(sent) == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(image)}},
        {"type": "text", "text": "<|grounding|>Convert the document to markdown."},
    ]
    assert sent["model"] == "deepseek-ai/DeepSeek-OCR"
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == 8192
    assert sent["skip_special_tokens"] is False and sent["stream"] is False
    assert sent["vllm_xargs"] == GUARD


def test_ocr_accepts_data_url_seed_prompt_and_options(gateway: str, upstream: FakeUpstream) -> None:
    image = jpeg_bytes()
    r = httpx.post(f"{gateway}/ocr", json={
        "image_base64": "data:image/jpeg;base64," + b64(image), "prompt": "<image>\nFree OCR.",
        "temperature": 0.2, "max_tokens": 77, "ngram_size": 20, "window_size": 50})
    assert r.status_code == 200, r.text
    sent = chat_of(upstream)
    assert content_of(sent)[0]["image_url"]["url"] == "data:image/jpeg;base64," + b64(image)
    assert content_of(sent)[1] == {"type": "text", "text": "Free OCR."}
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 77)
    assert sent["vllm_xargs"] == {**GUARD, "ngram_size": 20, "window_size": 50}
    assert r.json()["prompt"] == "Free OCR."


@pytest.mark.parametrize("mode, ref, prompt", [
    ("free_ocr", None, "Free OCR."),
    ("ocr", None, "<|grounding|>OCR this image."),
    ("markdown", None, "<|grounding|>Convert the document to markdown."),
    ("figure", None, "Parse the figure."),
    ("describe", None, "Describe this image in detail."),
    ("locate", "the total", "Locate <|ref|>the total<|/ref|> in the image."),
])
def test_named_modes(gateway: str, upstream: FakeUpstream, mode: str, ref: str | None,
                     prompt: str) -> None:
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes()), "mode": mode, "ref": ref})
    assert r.status_code == 200, r.text
    assert content_of(chat_of(upstream))[1]["text"] == prompt


def test_ocr_file_multipart(gateway: str, upstream: FakeUpstream) -> None:
    image = png_bytes()
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("page.png", image, "image/png")},
                   data={"mode": "free_ocr", "max_tokens": "99", "temperature": ""})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Hello\nworld"
    sent = chat_of(upstream)
    assert content_of(sent)[1]["text"] == "Free OCR."
    assert sent["max_tokens"] == 99 and sent["temperature"] == 0.0
    assert content_of(sent)[0]["image_url"]["url"].endswith(b64(image))


def test_ocr_file_takes_options_from_query_like_the_seed(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file?prompt=Free%20OCR.&max_tokens=5",
                   files={"file": ("p.png", png_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    assert content_of(chat_of(upstream))[1]["text"] == "Free OCR."
    assert chat_of(upstream)["max_tokens"] == 5


def test_stream_reproduces_text_with_newlines_exactly(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = "line one\n\n  indented: data: x\r\nlast\n"
    with httpx.stream("POST", f"{gateway}/ocr/stream",
                      files={"file": ("p.png", png_bytes(), "image/png")},
                      data={"mode": "free_ocr"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert "".join(p["text"] for p in payloads) == upstream.default_reply
    assert len(payloads) > 3  # streamed in pieces, not one blob
    final = payloads[-1]
    assert final["finish_reason"] == "stop" and final["usage"]["prompt_tokens"] == 278
    sent = chat_of(upstream)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["vllm_xargs"] == GUARD


def test_stream_bad_input_is_a_json_4xx_not_a_stream(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/stream", files={"file": ("p.png", b"not an image", "image/png")})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert upstream.requests == []


def test_batch_runs_items_in_order_and_isolates_a_corrupt_one(gateway: str, upstream: FakeUpstream) -> None:
    upstream.replies = {"Free OCR.": "first", "Parse the figure.": "third"}
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"image_base64": b64(png_bytes()), "mode": "free_ocr"},
        {"image_base64": b64(b"corrupt bytes"), "mode": "free_ocr"},
        {"image_base64": b64(png_bytes()), "mode": "figure"},
        {"prompt": "no image here"},
        {"image_base64": b64(png_bytes()), "mode": "locate"},
    ]})
    assert r.status_code == 200, r.text
    body = r.json()
    results = body["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert [x["status"] for x in results] == ["success", "error", "success", "error", "error"]
    assert [x["status_code"] for x in results] == [200, 400, 200, 422, 400]
    assert results[0]["text"] == "first" and results[2]["text"] == "third"
    assert "image" in results[1]["error"]["message"]
    assert "image_base64" in results[3]["error"]["message"]
    assert (body["succeeded"], body["failed"]) == (2, 3)
    assert len(upstream.requests) == 2


def test_batch_over_the_limit_is_413(gateway: str, upstream: FakeUpstream) -> None:
    item = {"image_base64": b64(png_bytes(8, 8))}
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [item] * 101})
    assert r.status_code == 413 and "100" in r.json()["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize("path, kwargs, status, needle", [
    ("/ocr", {"json": {"image_base64": "@@@not-base64@@@"}}, 400, "base64"),
    ("/ocr", {"json": {"image_base64": b64(b"plain text, not an image")}}, 400, "image"),
    ("/ocr", {"json": {"image_base64": b64(png_bytes()), "mode": "poetry"}}, 422, "mode"),
    ("/ocr", {"json": {"image_base64": b64(png_bytes()), "mode": "locate"}}, 400, "ref"),
    ("/ocr", {"json": {"image_base64": b64(png_bytes()), "max_tokens": 100000}}, 400, "max_tokens"),
    ("/ocr", {"json": {"image_base64": b64(png_bytes()), "max_tokens": -1}}, 422, "max_tokens"),
    ("/ocr", {"json": {}}, 422, "image_base64"),
    ("/ocr", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "line 1 column 2"),
    ("/ocr/file", {"data": {"prompt": "Free OCR."}}, 422, "file"),
    ("/ocr/file", {"files": {"file": ("e.png", b"", "image/png")}}, 400, "empty"),
    ("/ocr/file", {"files": {"file": ("x.png", png_bytes(), "image/png")},
                   "data": {"mode": "poetry"}}, 422, "mode"),
    ("/ocr/stream", {"data": {}}, 422, "file"),
    ("/ocr/batch", {"json": {"requests": []}}, 422, "requests"),
])
def test_bad_input_gets_a_json_4xx(gateway: str, upstream: FakeUpstream, path: str, kwargs: dict,
                                   status: int, needle: str) -> None:
    r = httpx.post(f"{gateway}{path}", **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert needle in error["message"]
    assert error["code"] == status
    assert upstream.requests == []


def test_health_reports_model_and_upstream(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.get(f"{gateway}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert body["model"] == "deepseek-ai/DeepSeek-OCR" and body["engine"] == "upstream"
    assert body["engine_status"]["reachable"] is True and body["engine_status"]["url"].endswith("/v1")


def test_health_is_503_when_upstream_lacks_the_model(gateway: str, upstream: FakeUpstream) -> None:
    upstream.model = "other-model"
    try:
        r = httpx.get(f"{gateway}/health")
    finally:
        upstream.model = "deepseek-ai/DeepSeek-OCR"
    assert r.status_code == 503
    assert "other-model" in r.json()["engine_status"]["detail"]


def test_docs_and_schema_describe_every_route(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    for path in ("/ocr", "/ocr/file", "/ocr/stream", "/ocr/batch", "/health",
                 "/v1/chat/completions", "/v1/models"):
        assert path in schema["paths"], path
    assert "OCRRequest" in schema["components"]["schemas"]
    assert "OCRResponse" in schema["components"]["schemas"]
    for page in ("/docs", "/redoc"):
        r = httpx.get(f"{gateway}{page}")
        assert r.status_code == 200 and "openapi.json" in r.text


@pytest.mark.parametrize("path, kwargs", [
    ("/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("/v1/chat/completions", {"json": {"stream": True, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_bytes())}},
        {"type": "text", "text": "Free OCR."}]}]}}),
])
def test_client_leaving_a_stream_closes_the_upstream_stream(gateway: str, upstream: FakeUpstream,
                                                            path: str, kwargs: dict) -> None:
    upstream.default_reply = "x" * 600  # 200 chunks
    upstream.chunk_delay_s = 0.05
    with httpx.stream("POST", f"{gateway}{path}", **kwargs) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    wait_until(upstream.disconnected.is_set, 30, "the upstream stream closing after the client left")


def test_cors_origins_come_from_config(fake_upstream: tuple[FakeUpstream, str]) -> None:
    _, upstream_url = fake_upstream
    settings = gateway_settings(upstream_url, server={"cors_origins": ["https://app.example"]})
    with serve(settings) as (url, _):
        r = httpx.options(f"{url}/ocr", headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST"})
        assert r.headers.get("access-control-allow-origin") == "https://app.example"
        r = httpx.options(f"{url}/ocr", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
