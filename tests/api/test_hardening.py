"""API keys, limits, backpressure, time-outs, cancellation, request ids and metrics."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from openai_ocr.api.ratelimit import RateLimiter
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, leave_when, metric, png_bytes, png_header_only, serve, wait_until

KEY = "sk-test-4f1c2a"
IMAGE = b64(png_bytes())
CHAT = {"messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + IMAGE}},
    {"type": "text", "text": "Free OCR."}]}]}


@pytest.fixture(scope="module")
def keyed(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    with serve(gateway_settings(fake_upstream[1], auth={"api_keys": [KEY, "second-key"]})) as (url, _):
        yield url


PROTECTED = [
    ("POST", "/ocr", {"json": {"image_base64": IMAGE}}),
    ("POST", "/ocr/file", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("POST", "/ocr/stream", {"files": {"file": ("p.png", png_bytes(), "image/png")}}),
    ("POST", "/ocr/batch", {"json": {"requests": [{"image_base64": IMAGE}]}}),
    ("POST", "/v1/chat/completions", {"json": CHAT}),
    ("GET", "/v1/models", {}),
]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"},
                                     {"Authorization": KEY}], ids=["none", "wrong", "longer", "no-bearer"])
@pytest.mark.parametrize("method, path, kwargs", PROTECTED)
def test_every_route_refuses_a_missing_or_wrong_key(keyed: str, upstream: FakeUpstream, method: str,
                                                    path: str, kwargs: dict, headers: dict) -> None:
    r = httpx.request(method, f"{keyed}{path}", headers=headers, **kwargs)
    assert r.status_code == 401, (headers, r.text)
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"
    assert upstream.requests == []


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": "second-key"}],
                         ids=["bearer", "x-api-key"])
@pytest.mark.parametrize("method, path, kwargs", PROTECTED)
def test_every_route_accepts_a_valid_key(keyed: str, upstream: FakeUpstream, method: str, path: str,
                                         kwargs: dict, headers: dict) -> None:
    r = httpx.request(method, f"{keyed}{path}", headers=headers, **kwargs)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/live", "/docs", "/openapi.json", "/metrics"])
def test_probes_and_docs_stay_open(keyed: str, path: str) -> None:
    assert httpx.get(f"{keyed}{path}", timeout=30).status_code == 200, path


def test_keys_are_never_logged(keyed: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        httpx.post(f"{keyed}/ocr", json={"image_base64": IMAGE}, headers={"X-API-Key": KEY})
        httpx.post(f"{keyed}/ocr", json={"image_base64": IMAGE}, headers={"X-API-Key": "bad-guess"})
    assert caplog.records, "expected access logs"
    assert all(KEY not in r.getMessage() and "bad-guess" not in r.getMessage()
               for r in caplog.records)


def test_docs_can_be_protected(fake_upstream: tuple[FakeUpstream, str]) -> None:
    with serve(gateway_settings(fake_upstream[1], auth={"api_keys": [KEY], "protect_docs": True})) as (url, _):
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
def small_limits_server(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[tuple[str, FastAPI]]:
    with serve(gateway_settings(fake_upstream[1], limits={
            "max_body_bytes": 200_000, "max_in_flight": 1, "max_queue": 1, "request_timeout_s": 3})) as served:
        yield served


@pytest.fixture()
def small_limits(small_limits_server: tuple[str, FastAPI]) -> str:
    return small_limits_server[0]


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


@pytest.mark.parametrize("width, height", [(20000, 20000), (9000, 8000)],
                         ids=["over-pillows-guard", "under-pillows-guard"])
def test_decompression_bomb_is_refused_cheaply(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
                                               monkeypatch: pytest.MonkeyPatch, width: int, height: int) -> None:
    """Refused from the header alone: Pillow never decodes a pixel (this gateway runs in this
    process and decodes in threads, `budget.decode_workers = 0`, so a spy on Pillow's decoder
    sees every decode)."""
    from PIL import ImageFile

    decoded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(image: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        decoded.append(image.size)
        return real_load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with serve(gateway_settings(fake_upstream[1], budget={"decode_workers": 0})) as (gateway, _):
        r = httpx.post(f"{gateway}/ocr/file", files={"file": ("bomb.png", png_header_only(width, height), "image/png")},
                       timeout=60)
        assert r.status_code == 413 and "pixels" in r.json()["error"]["message"], r.text
        assert decoded == []
        assert upstream.requests == []
        # a sound PNG goes on as it is, checked from its container: no decode either
        r = httpx.post(f"{gateway}/ocr/file", files={"file": ("ok.png", png_bytes(), "image/png")}, timeout=60)
        assert r.status_code == 200 and decoded == []
        # the spy does see decodes: a BMP (no container check) is decoded once it passes the checks
        bmp = io.BytesIO()
        Image.open(io.BytesIO(png_bytes())).save(bmp, format="BMP")
        r = httpx.post(f"{gateway}/ocr/file", files={"file": ("ok.bmp", bmp.getvalue(), "image/bmp")}, timeout=60)
        assert r.status_code == 200 and (64, 48) in decoded


def test_saturation_answers_429_with_retry_after(small_limits_server: tuple[str, FastAPI],
                                                 upstream: FakeUpstream) -> None:
    """One request runs (held by the upstream), one waits, the third is refused and counted."""
    url, app = small_limits_server
    upstream.hold.clear()
    rejected = metric(app, "openai_ocr_engine_rejected_total")

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def ocr() -> httpx.Response:
                return await client.post(f"{url}/ocr", json={"image_base64": IMAGE})

            running = asyncio.create_task(ocr())
            await asyncio.to_thread(wait_until, lambda: len(upstream.requests) == 1, 30, "the first request")
            waiting = asyncio.create_task(ocr())
            await asyncio.to_thread(wait_until, lambda: metric(app, "openai_ocr_engine_queue_length") == 1,
                                    30, "the second request queueing")
            refused = await ocr()
            upstream.hold.set()
            return list(await asyncio.gather(running, waiting)), refused

    served, refused = asyncio.run(scenario())
    assert [r.status_code for r in served] == [200, 200]
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["error"]["message"]
    assert metric(app, "openai_ocr_engine_rejected_total") == rejected + 1
    # the server is fine afterwards
    assert httpx.post(f"{url}/ocr", json={"image_base64": IMAGE}).status_code == 200


def test_request_timeout_is_504_counted_and_aborts_upstream(small_limits_server: tuple[str, FastAPI],
                                                             upstream: FakeUpstream) -> None:
    url, app = small_limits_server
    timeouts = metric(app, "openai_ocr_engine_timeouts_total")
    upstream.hold.clear()  # never answers: only the 3 s limit ends the request
    r = httpx.post(f"{url}/ocr", json={"image_base64": IMAGE}, timeout=30)
    assert r.status_code == 504 and "3 s" in r.json()["error"]["message"]
    wait_until(upstream.disconnected.is_set, 30, "the upstream request being aborted")
    assert metric(app, "openai_ocr_engine_timeouts_total") == timeouts + 1


def test_client_leaving_a_plain_request_cancels_upstream(gateway: str, upstream: FakeUpstream) -> None:
    upstream.hold.clear()
    leave_when(lambda: len(upstream.requests) == 1, "the upstream receiving the request",
               f"{gateway}/ocr", json={"image_base64": IMAGE})
    wait_until(upstream.disconnected.is_set, 30, "the upstream request being cancelled after the client left")


def test_rate_limit_per_key(fake_upstream: tuple[FakeUpstream, str]) -> None:
    with serve(gateway_settings(fake_upstream[1], auth={"api_keys": ["a", "b"]},
                                limits={"rate_limit_per_minute": 2})) as (url, _):
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


def test_metrics_count_routes_pages_and_length(fake_upstream: tuple[FakeUpstream, str],
                                               upstream: FakeUpstream) -> None:
    """A fresh app with its own registry: /metrics shows exactly what this test sent."""
    def value(text: str, sample: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.split(" ")[0] == sample)

    with serve(gateway_settings(fake_upstream[1])) as (url, _):
        upstream.finish_reason = "length"
        httpx.post(f"{url}/ocr", json={"image_base64": IMAGE, "max_tokens": 50})
        httpx.post(f"{url}/ocr", json={"image_base64": "!!"})
        text = httpx.get(f"{url}/metrics").text
    assert value(text, 'openai_ocr_requests_total{method="POST",route="/ocr",status="200"}') == 1
    assert value(text, 'openai_ocr_requests_total{method="POST",route="/ocr",status="400"}') == 1
    assert value(text, "openai_ocr_pages_total") == 1
    assert value(text, "openai_ocr_finish_length_total") == 1
    assert value(text, 'openai_ocr_request_duration_seconds_count{route="/ocr"}') == 2
    assert value(text, "openai_ocr_engine_in_flight") == 0 and value(text, "openai_ocr_engine_queue_length") == 0
    assert value(text, "openai_ocr_engine_timeouts_total") == 0
    assert value(text, "openai_ocr_engine_rejected_total") == 0


def test_batch_whose_client_leaves_stops_its_items(fake_upstream: tuple[FakeUpstream, str],
                                                   upstream: FakeUpstream) -> None:
    """Two items run (held by the upstream); the client leaves; both are cancelled, and once
    the upstream is released no other item starts."""
    with serve(gateway_settings(fake_upstream[1], limits={"batch_concurrency": 2})) as (url, app):
        upstream.hold.clear()
        leave_when(lambda: len(upstream.requests) == 2, "both running items reaching the upstream",
                   f"{url}/ocr/batch", json={"requests": [{"image_base64": IMAGE}] * 10})
        wait_until(lambda: upstream.cancelled == 2, 30, "both running items being cancelled")
        upstream.hold.set()
        wait_until(lambda: metric(app, "openai_ocr_engine_in_flight") == 0, 30, "the engine slots freeing")
        # a probe through the same app: had the batch gone on, items 3..10 would reach the upstream first
        assert httpx.post(f"{url}/ocr", json={"image_base64": IMAGE}).status_code == 200
        assert len(upstream.requests) == 3, len(upstream.requests)


def test_a_png_with_a_broken_chunk_is_refused_before_the_engine(fake_upstream: tuple[FakeUpstream, str],
                                                                upstream: FakeUpstream) -> None:
    """The container check (no decode) still finds what a decode would: a flipped byte."""
    data = bytearray(png_bytes(300, 200, "Total due"))
    data[data.index(b"IDAT") + 30] ^= 0x55
    broken = b64(bytes(data))
    with serve(gateway_settings(fake_upstream[1])) as (gateway, _):
        answers = [
            httpx.post(f"{gateway}/ocr", json={"image_base64": broken}, timeout=30),
            httpx.post(f"{gateway}/ocr/file", files={"file": ("p.png", bytes(data), "image/png")}, timeout=30),
            httpx.post(f"{gateway}/v1/chat/completions", timeout=30, json={"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{broken}"}},
                {"type": "text", "text": "Free OCR."}]}]}),
        ]
    for r in answers:
        assert r.status_code == 400 and "CRC" in r.json()["error"]["message"], r.text
    assert upstream.requests == []
