"""API keys, limits, backpressure, time-outs, cancellation, request ids and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from openai_ocr.api.ratelimit import RateLimiter
from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, png_bytes, png_header_only, running_server

KEY = "sk-test-4f1c2a"
IMAGE = b64(png_bytes())
CHAT = {"messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + IMAGE}},
    {"type": "text", "text": "Free OCR."}]}]}


def serve(upstream_url: str, **sections: dict) -> Iterator[str]:
    settings = gateway_settings(upstream_url, **sections)
    app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def keyed(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    yield from serve(fake_upstream[1], auth={"api_keys": [KEY, "second-key"]})


PROTECTED = [
    ("POST", "/ocr", {"json": {"image_base64": IMAGE}}),
    ("POST", "/ocr/file", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("POST", "/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("POST", "/ocr/batch", {"json": {"requests": [{"image_base64": IMAGE}]}}),
    ("POST", "/v1/chat/completions", {"json": CHAT}),
    ("GET", "/v1/models", {}),
]


@pytest.mark.parametrize("method, path, kwargs", PROTECTED)
def test_every_route_needs_a_valid_key(keyed: str, upstream: FakeUpstream, method: str, path: str,
                                       kwargs: dict) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"},
                    {"Authorization": KEY}):
        r = httpx.request(method, f"{keyed}{path}", headers=headers, **kwargs)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
    assert upstream.requests == []
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": "second-key"}):
        r = httpx.request(method, f"{keyed}{path}", headers=headers, **kwargs)
        assert r.status_code == 200, r.text


def test_probes_and_docs_stay_open_and_keys_are_never_logged(
        keyed: str, caplog: pytest.LogCaptureFixture) -> None:
    for path in ("/health", "/ready", "/live", "/docs", "/openapi.json", "/metrics"):
        assert httpx.get(f"{keyed}{path}").status_code == 200, path
    with caplog.at_level(logging.DEBUG):
        httpx.post(f"{keyed}/ocr", json={"image_base64": IMAGE}, headers={"X-API-Key": KEY})
        httpx.post(f"{keyed}/ocr", json={"image_base64": IMAGE}, headers={"X-API-Key": "bad-guess"})
    assert caplog.records, "expected access logs"
    assert all(KEY not in r.getMessage() and "bad-guess" not in r.getMessage()
               for r in caplog.records)


def test_docs_can_be_protected(fake_upstream: tuple[FakeUpstream, str]) -> None:
    for url in serve(fake_upstream[1], auth={"api_keys": [KEY], "protect_docs": True}):
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 401
            assert httpx.get(f"{url}{path}", headers={"X-API-Key": KEY}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200


def test_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_ocr.settings import load_settings

    monkeypatch.setenv("OPENAI_OCR_API_KEYS", "k1, k2,")
    keys = [k.get_secret_value() for k in load_settings().auth.api_keys]
    assert keys == ["k1", "k2"]
    assert "k1" not in repr(load_settings()) and "k1" not in load_settings().model_dump_json()
    cli = load_settings(overrides={"auth": {"api_keys": ["k3"]}}).auth.api_keys
    assert [k.get_secret_value() for k in cli] == ["k3"]


@pytest.fixture(scope="module")
def small_limits(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    yield from serve(fake_upstream[1], limits={"max_body_bytes": 200_000, "max_in_flight": 1,
                                               "max_queue": 1, "request_timeout_s": 3})


def test_body_over_the_limit_is_413_before_it_is_read(small_limits: str, upstream: FakeUpstream) -> None:
    big = "A" * 300_000
    r = httpx.post(f"{small_limits}/ocr", json={"image_base64": big})
    assert r.status_code == 413 and "body" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        yield b'{"image_base64": "'
        for _ in range(30):
            yield b"A" * 10_000
        yield b'"}'

    r = httpx.post(f"{small_limits}/ocr", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == 413
    r = httpx.post(f"{small_limits}/ocr/file", files={"file": ("big.png", b"\0" * 300_000, "image/png")})
    assert r.status_code == 413
    assert upstream.requests == []


def test_decompression_bomb_is_refused_cheaply(gateway: str, upstream: FakeUpstream) -> None:
    for width, height in ((20000, 20000), (9000, 8000)):  # over Pillow's own guard, and under it
        bomb = png_header_only(width, height)
        started = time.monotonic()
        r = httpx.post(f"{gateway}/ocr/file", files={"file": ("bomb.png", bomb, "image/png")},
                       timeout=60)
        assert r.status_code == 413 and "pixels" in r.json()["error"]["message"], r.text
        assert time.monotonic() - started < 2
    assert upstream.requests == []


def test_saturation_answers_429_with_retry_after(small_limits: str, upstream: FakeUpstream) -> None:
    upstream.delay_s = 0.6

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(f"{small_limits}/ocr", json={"image_base64": IMAGE})
                                          for _ in range(6)))

    answers = asyncio.run(flood())
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["error"]["message"]
    # the server is fine afterwards
    upstream.delay_s = 0
    assert httpx.post(f"{small_limits}/ocr", json={"image_base64": IMAGE}).status_code == 200


def test_request_timeout_is_504_and_aborts_upstream(small_limits: str, upstream: FakeUpstream) -> None:
    upstream.delay_s = 5
    r = httpx.post(f"{small_limits}/ocr", json={"image_base64": IMAGE}, timeout=30)
    assert r.status_code == 504 and "3 s" in r.json()["error"]["message"]
    deadline = time.monotonic() + 3
    while not upstream.disconnected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnected.is_set(), "the upstream request kept running"


def test_client_leaving_a_plain_request_cancels_upstream(gateway: str, upstream: FakeUpstream) -> None:
    upstream.delay_s = 5
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway}/ocr", json={"image_base64": IMAGE}, timeout=0.5)
    deadline = time.monotonic() + 3
    while not upstream.disconnected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnected.is_set(), "the upstream request kept running after the client left"


def test_rate_limit_per_key(fake_upstream: tuple[FakeUpstream, str]) -> None:
    for url in serve(fake_upstream[1], auth={"api_keys": ["a", "b"]},
                     limits={"rate_limit_per_minute": 2}):
        codes = [httpx.get(f"{url}/v1/models", headers={"X-API-Key": "a"}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "b"}).status_code == 200


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(60)] == [0.0] * 60
    assert limiter.acquire("k") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.acquire("k") == 0.0


def test_request_id_is_echoed_and_used(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": IMAGE}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": IMAGE},
                   headers={"X-Request-ID": "bad id with spaces"})
    assert len(r.headers["x-request-id"]) == 32 and r.headers["x-request-id"] == r.json()["request_id"]
    assert httpx.get(f"{gateway}/nope").headers["x-request-id"]


def test_metrics_count_routes_pages_and_length(gateway: str, upstream: FakeUpstream) -> None:
    def value(text: str, prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix))

    before = httpx.get(f"{gateway}/metrics").text
    upstream.finish_reason = "length"
    httpx.post(f"{gateway}/ocr", json={"image_base64": IMAGE})
    httpx.post(f"{gateway}/ocr", json={"image_base64": "!!"})
    after = httpx.get(f"{gateway}/metrics").text
    ok = 'openai_ocr_requests_total{method="POST",route="/ocr",status="200"}'
    bad = 'openai_ocr_requests_total{method="POST",route="/ocr",status="400"}'
    assert value(after, ok) == value(before, ok) + 1
    assert value(after, bad) == value(before, bad) + 1
    assert value(after, "openai_ocr_pages_total") == value(before, "openai_ocr_pages_total") + 1
    assert value(after, "openai_ocr_finish_length_total") == value(before, "openai_ocr_finish_length_total") + 1
    assert "openai_ocr_request_duration_seconds_bucket" in after
    assert "openai_ocr_engine_in_flight" in after and "openai_ocr_engine_queue_length" in after


def test_batch_whose_client_leaves_stops_its_items(fake_upstream: tuple[FakeUpstream, str],
                                                   upstream: FakeUpstream) -> None:
    for url in serve(fake_upstream[1], limits={"batch_concurrency": 2}):
        upstream.delay_s = 2
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/ocr/batch", json={"requests": [{"image_base64": IMAGE}] * 10},
                       timeout=0.5)
        deadline = time.monotonic() + 3
        while not upstream.disconnected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.disconnected.is_set(), "running items were not cancelled"
        time.sleep(2.5)  # had the batch gone on, items 3..10 would have started by now
        assert len(upstream.requests) == 2, len(upstream.requests)
