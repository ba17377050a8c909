"""The real vLLM engine behind our launcher, template, plugin and in-process engine.

Weights are random, so these tests check the plumbing (prompt shape and token counts,
streaming, the n-gram guard's arguments, errors, aborts), never the text. The default
resolution's prompt is checked once, on vLLM's route and ours; the other requests ask for the
`tiny` resolution (73 image tokens, a 512-pixel view): the same plumbing for a fraction of
the vision towers' time, which is nearly all of a request's.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.helpers import ENGINE_API_KEY, ENGINE_AUTH, SERVED_NAME, image_messages, require
from tests.helpers import png_bytes as any_png
from tests.vllm_plugin.tiny_checkpoint import SPECIAL_TOKENS

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

BOS_ID = SPECIAL_TOKENS["<｜begin▁of▁sentence｜>"]
IMAGE_ID = SPECIAL_TOKENS["<image>"]
#: DeepSeek-OCR's processor (IMAGE_SIZE 640, BASE_SIZE 1024): an image of at most 640x640 is
#: not tiled and takes 273 image tokens
SMALL_IMAGE_TOKENS = 273
TINY = {"resolution": "tiny"}
TINY_IMAGE_TOKENS = 73
NGRAM_XARGS = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}
TIMEOUT = httpx.Timeout(600, connect=10)


def png_bytes() -> bytes:
    """A 320x200 page: at most 640x640, so not tiled (SMALL_IMAGE_TOKENS)."""
    return any_png(320, 200, "Invoice 42")


def image_message(text: str = "Free OCR.") -> list[dict]:
    return image_messages(png_bytes(), text)


@pytest.fixture(scope="module")
def text_ids(tiny_checkpoint: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


@pytest.fixture(scope="module")
def client(vllm_server: str) -> httpx.Client:
    with httpx.Client(base_url=vllm_server, timeout=TIMEOUT,
                      headers=ENGINE_AUTH) as c:
        yield c


def running_requests(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vllm:num_requests_running not in /metrics")


def wait_idle(client: httpx.Client, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_requests(client) == 0:
            return True
        time.sleep(0.25)
    return False


def test_models_lists_the_served_name(client: httpx.Client) -> None:
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == [SERVED_NAME]


@pytest.mark.parametrize("method, path, kwargs", [
    ("GET", "/v1/models", {}),
    ("POST", "/ocr", {"json": {"image_base64": base64.b64encode(b"not an image").decode()}}),
    ("POST", "/ocr/file", {"files": {"file": ("x.png", b"not an image", "image/png")}}),
])
def test_api_key_guards_vllm_and_our_routes(vllm_server: str, method: str, path: str, kwargs: dict) -> None:
    """One key set (`--api-key`) for the whole server: 401 without it or with a wrong one; with it,
    the request is served (a broken image is a 400 from our route, not a 401)."""
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.request(method, f"{vllm_server}{path}", headers=headers, timeout=TIMEOUT, **kwargs)
        assert r.status_code == 401, (path, headers, r.text)
    r = httpx.request(method, f"{vllm_server}{path}", headers=ENGINE_AUTH,
                      timeout=TIMEOUT, **kwargs)
    assert r.status_code == (200 if path == "/v1/models" else 400), r.text
    assert httpx.get(f"{vllm_server}/health", timeout=TIMEOUT).status_code == 200  # probes stay open


def test_prompt_is_bos_image_tokens_then_text(client: httpx.Client, text_ids) -> None:
    """Our chat template + vLLM's placeholder: `<BOS><image>\\nFree OCR.`, 273 image tokens."""
    r = client.post("/v1/chat/completions", json={
        "model": SERVED_NAME, "messages": image_message(), "max_tokens": 2, "temperature": 0,
        "skip_special_tokens": False, "vllm_xargs": NGRAM_XARGS, "return_token_ids": True})
    assert r.status_code == 200, r.text
    body = r.json()
    expected_text = text_ids("\nFree OCR.")
    ids = body["prompt_token_ids"]
    assert ids == [BOS_ID] + [IMAGE_ID] * SMALL_IMAGE_TOKENS + expected_text
    assert body["usage"]["prompt_tokens"] == 1 + SMALL_IMAGE_TOKENS + len(expected_text)
    assert body["usage"]["completion_tokens"] == 2
    assert body["choices"][0]["finish_reason"] == "length"


def test_stream_through_the_openai_sdk(vllm_server: str, text_ids) -> None:
    sdk = OpenAI(base_url=f"{vllm_server}/v1", api_key=ENGINE_API_KEY, timeout=600)
    chunks = list(sdk.chat.completions.create(
        model=SERVED_NAME, messages=image_message(), max_tokens=3, temperature=0, stream=True,
        stream_options={"include_usage": True},
        extra_body={"skip_special_tokens": False, "vllm_xargs": NGRAM_XARGS, "mm_processor_kwargs": TINY}))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1 + TINY_IMAGE_TOKENS + len(text_ids("\nFree OCR."))
    assert chunks[-1].usage.completion_tokens == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def chat_usage(client: httpx.Client) -> dict[str, int]:
    """The test key's usage on vLLM's chat route, summed over days and models."""
    r = client.get("/v1/usage")
    assert r.status_code == 200, r.text
    rows = [b for b in r.json()["data"] if b["route"] == "/v1/chat/completions"]
    return {name: sum(b[name] for b in rows) for name in ("requests", "images", "prompt_tokens", "completion_tokens")}


def test_vllms_own_chat_answers_count_in_the_keys_usage(client: httpx.Client) -> None:
    """vLLM answers these itself; our plugin counts them as our chat route would (tokens read
    from vLLM's answer: the JSON's usage, the stream's usage chunk)."""
    before = chat_usage(client)
    r = client.post("/v1/chat/completions", json={
        "model": SERVED_NAME, "messages": image_message(), "max_tokens": 2, "temperature": 0,
        "mm_processor_kwargs": TINY})
    assert r.status_code == 200, r.text
    sdk = OpenAI(base_url=f"{client.base_url}".rstrip("/") + "/v1", api_key=ENGINE_API_KEY, timeout=600)
    chunks = list(sdk.chat.completions.create(
        model=SERVED_NAME, messages=image_message(), max_tokens=3, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"mm_processor_kwargs": TINY}))
    streamed = chunks[-1].usage
    assert streamed is not None
    expected = {"requests": before["requests"] + 2, "images": before["images"] + 2,
                "prompt_tokens": before["prompt_tokens"] + r.json()["usage"]["prompt_tokens"] + streamed.prompt_tokens,
                "completion_tokens": before["completion_tokens"] + 2 + 3}
    deadline = time.monotonic() + 10  # counted as each answer ends, written within a second
    while chat_usage(client) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert chat_usage(client) == expected


def test_vllm_route_aborts_on_disconnect(client: httpx.Client) -> None:
    """Baseline for ours: vLLM's own streaming route frees the engine when the client leaves."""
    with client.stream("POST", "/v1/chat/completions", json={
            "model": SERVED_NAME, "messages": image_message(), "max_tokens": 3000,
            "temperature": 0, "stream": True, "ignore_eos": True, "mm_processor_kwargs": TINY}) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and '"content":"' in line:
                break
    assert wait_idle(client), "the engine kept generating after the client left"


# -- our routes, inside vLLM's server through the endpoint plugin ------------------------

def test_health_reports_the_vllm_engine(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["engine"] == "vllm"
    assert body["model"] == SERVED_NAME


def test_the_playground_is_served_by_vllms_app(client: httpx.Client) -> None:
    page = client.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js"' in page.text
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    summary = client.get("/", headers={"Accept": "application/json"}).json()
    assert summary["engine"] == "vllm" and summary["playground"] == "/playground"
    # the page asks vLLM's schema whether resolution modes exist; our routes are in it
    assert "/ocr/stream" in client.get("/openapi.json").json()["paths"]


def test_ocr_route_runs_on_the_in_process_engine(client: httpx.Client, text_ids) -> None:
    r = client.post("/ocr", json={"image_base64": base64.b64encode(png_bytes()).decode(),
                                  "prompt": "Free OCR.", "max_tokens": 3, **TINY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == SERVED_NAME and body["resolution"] == "tiny"
    assert body["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["prompt_tokens"] == 1 + TINY_IMAGE_TOKENS + len(text_ids("\nFree OCR."))


def test_ocr_stream_aborts_the_engine_request_on_disconnect(client: httpx.Client) -> None:
    files = {"file": ("page.png", png_bytes(), "image/png")}
    with client.stream("POST", "/ocr/stream", files=files,
                       data={"prompt": "Free OCR.", "max_tokens": "3000", **TINY}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:") and line != "data: [DONE]":
                payload = json.loads(line[5:])
                if payload.get("text") or payload.get("delta"):
                    break
    assert wait_idle(client), "the engine kept generating after the client left"
    r = client.post("/ocr", json={"image_base64": base64.b64encode(png_bytes()).decode(),
                                  "mode": "free_ocr", "max_tokens": 1, **TINY})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1


def test_ocr_file_and_batch_on_the_engine(client: httpx.Client, text_ids) -> None:
    prompt_tokens = 1 + SMALL_IMAGE_TOKENS + len(text_ids("\nFree OCR."))
    r = client.post("/ocr/file", files={"file": ("page.png", png_bytes(), "image/png")},
                    data={"mode": "free_ocr", "max_tokens": "2"})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens", "attempts")} == {
        "prompt_tokens": prompt_tokens, "completion_tokens": 2, "total_tokens": prompt_tokens + 2,
        "attempts": 1}
    assert usage["image_tokens"] == SMALL_IMAGE_TOKENS and usage["engine_ms"] > 0
    r = client.post("/ocr/batch", json={"requests": [
        {"image_base64": base64.b64encode(png_bytes()).decode(), "mode": "free_ocr", "max_tokens": 2, **TINY},
        {"image_base64": base64.b64encode(b"not an image").decode()}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status_code"] for x in results] == [200, 400]
    assert results[0]["usage"]["completion_tokens"] == 2
    metrics = client.get("/metrics").text  # vLLM's /metrics carries ours too
    assert "vllm:num_requests_running" in metrics and "openai_ocr_pages_total" in metrics


def test_legacy_stream_concatenates_to_the_plain_answer(client: httpx.Client) -> None:
    options = {"prompt": "<image>\nFree OCR.", "max_tokens": "6", "temperature": "0", **TINY}
    plain = client.post("/ocr/file", files={"file": ("p.png", png_bytes(), "image/png")},
                        data=options)
    assert plain.status_code == 200, plain.text
    with client.stream("POST", "/ocr/stream", files={"file": ("p.png", png_bytes(), "image/png")},
                       data=options) as r:
        assert r.status_code == 200
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert "".join(p["text"] for p in payloads) == plain.json()["text"]
    assert payloads[-1]["type"] == "done"
    timeless = {k: v for k, v in plain.json()["usage"].items() if k != "engine_ms"}
    assert {k: v for k, v in payloads[-1]["usage"].items() if k != "engine_ms"} == timeless


def test_in_process_engine_answers_a_malformed_chat_request_with_400() -> None:
    """vLLM's ChatCompletionRequest refuses the body: a 400 naming the field, not a 500."""
    from openai_ocr.engines.vllm import VLLMEngine
    from openai_ocr.errors import OCRError

    engine = VLLMEngine(serving_chat=object(), model=SERVED_NAME)
    with pytest.raises(OCRError) as error:
        engine._request({"messages": "not a list", "max_tokens": -1}, stream=False)
    assert error.value.status_code == 400
    assert error.value.message.startswith("invalid chat completion request: messages")
