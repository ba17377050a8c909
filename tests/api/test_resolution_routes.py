"""Resolution modes on every gateway route: validated here, sent upstream as mm_processor_kwargs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, gateway_settings, png_bytes, running_server

TINY = {"base_size": 512, "image_size": 512, "crop_mode": False}
SMALL = {"base_size": 640, "image_size": 640, "crop_mode": False}


def sent_kwargs(upstream: FakeUpstream) -> list[dict | None]:
    return [r.get("mm_processor_kwargs") for r in upstream.requests]


def test_legacy_routes_send_the_mode_and_answer_it(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes()), "resolution": "tiny"})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "tiny"
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("p.png", png_bytes(), "image/png")},
                   data={"base_size": "640", "image_size": "640", "crop_mode": "false"})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "small"
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes())})
    assert r.json()["resolution"] == "gundam"
    assert sent_kwargs(upstream) == [TINY, SMALL, None]


def test_bad_modes_are_400_listing_the_modes_and_never_reach_upstream(
        gateway: str, upstream: FakeUpstream) -> None:
    for fields in ({"resolution": "huge"}, {"base_size": 777}, {"resolution": "tiny", "crop_mode": True}):
        r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes()), **fields})
        assert r.status_code == 400, (fields, r.text)
        error = r.json()["error"]
        assert "tiny" in error["message"] and "gundam" in error["message"]
        assert error["param"] in {"resolution", "base_size", "crop_mode"}
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("p.png", png_bytes(), "image/png")},
                   data={"resolution": "huge"})
    assert r.status_code == 400
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"image_base64": b64(png_bytes()), "resolution": "huge"},
        {"image_base64": b64(png_bytes()), "resolution": "large"}]})
    results = r.json()["results"]
    assert [x["status_code"] for x in results] == [400, 200]
    assert results[1]["resolution"] == "large"
    assert sent_kwargs(upstream) == [{"base_size": 1280, "image_size": 1280, "crop_mode": False}]


def test_mistral_ocr_takes_the_extra_field(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/v1/ocr", json={
        "model": "deepseek-ai/DeepSeek-OCR", "resolution": "small",
        "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes())}})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "small"
    assert sent_kwargs(upstream) == [SMALL]
    r = httpx.post(f"{gateway}/v1/ocr", json={
        "resolution": "gigantic",
        "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes())}})
    assert r.status_code == 400 and "gundam" in r.json()["error"]["message"]


def test_chat_completions_mm_processor_kwargs_through_the_sdk(gateway: str, upstream: FakeUpstream) -> None:
    client = OpenAI(base_url=f"{gateway}/v1", api_key="none", max_retries=0)
    message = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_bytes())}},
        {"type": "text", "text": "Free OCR."}]}]
    client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR", messages=message,
                                   extra_body={"mm_processor_kwargs": {"resolution": "tiny"}})
    client.chat.completions.create(model="deepseek-ai/DeepSeek-OCR", messages=message,
                                   extra_body={"mm_processor_kwargs": SMALL})
    assert sent_kwargs(upstream) == [TINY, SMALL]
    r = httpx.post(f"{gateway}/v1/chat/completions", json={
        "messages": message, "mm_processor_kwargs": {"base_size": 4096, "image_size": 4096}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "mm_processor_kwargs" and "large" in r.json()["error"]["message"]
    assert len(upstream.requests) == 2


@pytest.fixture()
def ocr2_gateway(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[tuple[str, FakeUpstream]]:
    """A gateway configured for DeepSeek-OCR-2 (by its model name), in front of an upstream that
    serves that name (it refuses any other, as vLLM does)."""
    fake, url = fake_upstream
    fake.reset()
    fake.model = "deepseek-ai/DeepSeek-OCR-2"
    settings = gateway_settings(url, engine={"model": "deepseek-ai/DeepSeek-OCR-2"},
                                ocr={"resolution": "small"})
    app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    try:
        with running_server(app) as base:
            yield base, fake
    finally:
        fake.model = SERVED_NAME


def test_ocr2_gateway_has_its_own_mode_and_prompts(ocr2_gateway: tuple[str, FakeUpstream]) -> None:
    url, upstream = ocr2_gateway
    # a configured default the model lacks falls back to its only mode
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "gundam"
    assert sent_kwargs(upstream) == [None]
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "resolution": "tiny"})
    assert r.status_code == 400 and "768" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "mode": "figure"})
    assert r.status_code == 400 and "free_ocr" in r.json()["error"]["message"]
