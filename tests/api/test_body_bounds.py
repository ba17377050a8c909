"""JSON bodies cost what the limits allow, and no more: the members, items and nesting of a
body are counted from its bytes before it is parsed (`limits.max_json_items`,
`limits.max_json_depth`), on our routes and on vLLM's chat route (VLLMChatMiddleware), and a
strict schema makes a few errors for unknown fields, not one per key.

Audit row 2: a million distinct unknown keys to `/ocr` (11 MiB) was a 422 after 7-29 s, the
event loop blocked all the while, and 1.3-3.3 GB more resident memory, kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from openai_ocr.api.middleware.register import install_http_layer
from openai_ocr.errors import PayloadTooLarge
from openai_ocr.inputs.json_bounds import check_json_bounds, outside_strings
from openai_ocr.metrics import metrics_for
from openai_ocr.protocol.ocr import BatchRequest, OCRRequest
from openai_ocr.settings import load_settings
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, png_bytes, running_server, serve

PNG = png_bytes()


def many_keys(count: int, **fields: Any) -> bytes:
    """A JSON object of `fields` and `count` distinct unknown keys (`"k0":0,...`)."""
    head = orjson.dumps(fields)[:-1]
    return head + b"," + b",".join(b'"k%d":0' % i for i in range(count)) + b"}"


class LiveProbe:
    """Asks /live over one kept-alive connection, again and again, while a block runs; the
    longest wait is kept (the event loop's stalls show there)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self.count = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                r = client.get(f"{self.url}/live")
                self.longest = max(self.longest, time.perf_counter() - started)
                self.count += 1
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> LiveProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_a_million_unknown_keys_is_refused_in_milliseconds_and_live_keeps_answering(gateway: str) -> None:
    body = many_keys(1_000_000, image_base64=b64(PNG))
    assert len(body) > 11_000_000
    with LiveProbe(gateway) as probe, httpx.Client(timeout=120) as client:
        r = client.post(f"{gateway}/ocr", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:500]
    error = r.json()["error"]
    assert "limits.max_json_items" in error["message"] and len(r.content) < 1000
    # Refused by the count before parsing (the message says so); was a 422 after 7-29 s.
    assert not probe.failures and probe.longest < 1.0, (probe.longest, probe.failures)


@pytest.mark.parametrize("route", ["/ocr", "/ocr/batch", "/v1/chat/completions", "/v1/ocr"])
def test_every_json_route_counts_before_parsing(gateway: str, route: str) -> None:
    r = httpx.post(f"{gateway}{route}", content=many_keys(30_000, model="x"),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413, (route, r.status_code, r.text[:300])


def test_deep_nesting_is_a_413_before_parsing(gateway: str) -> None:
    deep = b'{"image_base64": "x", "pages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = httpx.post(f"{gateway}/ocr", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert "limits.max_json_depth" in r.json()["error"]["message"]


def test_the_limits_are_settings_and_ordinary_bodies_pass(fake_upstream: tuple[FakeUpstream, str],
                                                           upstream: FakeUpstream) -> None:
    settings = gateway_settings(fake_upstream[1], limits={"max_json_items": 300, "max_json_depth": 8})
    with serve(settings) as (url, _):
        item = {"image_base64": b64(PNG), "prompt": "<image>\nFree \"OCR\", [a, b] {c}.", "mode": "free_ocr"}
        ok = httpx.post(f"{url}/ocr/batch", json={"requests": [item] * 40}, timeout=60)
        assert ok.status_code == 200, ok.text[:300]  # commas and brackets inside strings do not count
        many = httpx.post(f"{url}/ocr/batch", json={"requests": [item] * 100}, timeout=60)
        assert many.status_code == 413 and "300" in many.json()["error"]["message"]
        nested = {"image_base64": b64(PNG), "x": [[[[[[[[[1]]]]]]]]]}
        assert httpx.post(f"{url}/ocr", json=nested).json()["error"]["code"] == 413


def test_a_full_mistral_page_list_and_batch_fit_the_default_limit(gateway: str) -> None:
    pages = httpx.post(f"{gateway}/v1/ocr", json={
        "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(PNG)},
        "pages": list(range(10_000))}, timeout=60)
    assert pages.status_code != 413, pages.text[:300]
    fields = {name: None for name in OCRRequest.model_fields} | {"image_base64": b64(PNG)}
    batch = orjson.dumps({"requests": [fields] * 100})
    check_json_bounds(batch, load_settings().limits.max_json_items, load_settings().limits.max_json_depth)


def test_unknown_keys_make_a_few_errors_not_one_per_key() -> None:
    body = {"image_base64": "x", "temprature": 0, **{f"k{i}": 0 for i in range(10_000)}}
    with pytest.raises(ValidationError) as caught:
        OCRRequest.model_validate(body)
    errors = caught.value.errors()
    assert len(errors) <= 3, len(errors)
    assert errors[0]["loc"] == ("temprature",) and errors[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError) as batch:
        BatchRequest.model_validate({"requests": [{}], **{f"k{i}": 0 for i in range(10_000)}})
    assert len(batch.value.errors()) <= 3


def test_the_typo_hint_stays_with_many_unknown_keys(gateway: str) -> None:
    body = {"image_base64": b64(PNG), "temprature": 0, **{f"unknown{i}": 0 for i in range(5000)}}
    r = httpx.post(f"{gateway}/ocr", json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["param"] == "temprature"
    assert error["message"].startswith("temprature: unknown field; did you mean 'temperature'?")
    assert len(r.content) < 3000


def test_strings_are_skipped_exactly() -> None:
    """Commas, brackets and escaped quotes inside strings are not counted; the outside is."""
    tricky = {"a\"b": "x,[{", "c": ["\\", "\\\"", ",,,"], "d": {"e": "\\\\\"[[["}}
    outside = outside_strings(orjson.dumps(tricky), 100)
    assert outside == b'{:,:[,,],:{:}}'
    escaped = orjson.dumps(['"' * 5000, "\\" * 200 + "]", {"k": 1}])
    assert outside_strings(escaped, 100) == b"[,,{:1}]"
    long_run = orjson.dumps(["\\" * 200 + '"', "]", 1])
    assert outside_strings(long_run, 100) == b"[,,1]"
    with pytest.raises(PayloadTooLarge):
        check_json_bounds(orjson.dumps([1] * 101), 100, 64)
    check_json_bounds(orjson.dumps(["," * 10_000]), 100, 64)


# -- vllm mode: vLLM's chat route parses the body itself -----------------------------------------

@pytest.fixture()
def vllm_like_app() -> Iterator[tuple[str, list[int]]]:
    """An app with a chat route that parses its body as vLLM's does, behind our HTTP layer as
    the endpoint plugin installs it (`own_app=False`); yields (URL, sizes of the bodies the
    route parsed)."""
    app = FastAPI()
    parsed: list[int] = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, int]:
        parsed.append(len(await request.json()))
        return {"keys": parsed[-1]}

    install_http_layer(app, load_settings(), metrics_for(CollectorRegistry()), own_app=False)
    with running_server(app) as url:
        yield url, parsed


def test_vllm_mode_chat_bodies_are_counted_before_vllm_parses_them(
        vllm_like_app: tuple[str, list[int]]) -> None:
    url, parsed = vllm_like_app
    small = httpx.post(f"{url}/v1/chat/completions", json={"messages": [], "model": "m"})
    assert small.status_code == 200 and parsed == [2]
    r = httpx.post(f"{url}/v1/chat/completions", content=many_keys(1_000_000, messages=[]),
                   headers={"content-type": "application/json"}, timeout=120)
    assert r.status_code == 413, r.text[:300]
    assert "limits.max_json_items" in r.json()["error"]["message"]
    assert parsed == [2], "the body reached the route"
