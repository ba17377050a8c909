"""Each app counts into its own registry; without one it uses the process-wide registry (which
vLLM's /metrics serves in vllm mode)."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY, CollectorRegistry

from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.metrics import Metrics, default_metrics, metrics_for
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, metric, png_bytes, running_server, serve

OK = {"route": "/ocr", "method": "POST", "status": "200"}


def test_two_apps_in_one_process_count_apart(fake_upstream: tuple[FakeUpstream, str],
                                             upstream: FakeUpstream) -> None:
    settings = gateway_settings(fake_upstream[1])
    with serve(settings) as (first, first_app), serve(settings) as (second, second_app):
        for _ in range(2):
            assert httpx.post(f"{first}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30).status_code == 200
        assert httpx.post(f"{second}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30).status_code == 200
        assert metric(first_app, "openai_ocr_requests_total", OK) == 2
        assert metric(second_app, "openai_ocr_requests_total", OK) == 1
        assert (metric(first_app, "openai_ocr_pages_total"), metric(second_app, "openai_ocr_pages_total")) == (2, 1)
        assert 'openai_ocr_pages_total 1.0' in httpx.get(f"{second}/metrics", timeout=30).text.splitlines()


def test_the_default_is_the_global_registry(fake_upstream: tuple[FakeUpstream, str],
                                            upstream: FakeUpstream) -> None:
    settings = gateway_settings(fake_upstream[1])
    app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    assert app.state.metrics is default_metrics() and app.state.metrics.registry is REGISTRY
    before = REGISTRY.get_sample_value("openai_ocr_pages_total") or 0.0
    with running_server(app) as url:
        assert httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}, timeout=30).status_code == 200
    assert REGISTRY.get_sample_value("openai_ocr_pages_total") == before + 1


def test_metrics_for() -> None:
    own = CollectorRegistry()
    assert metrics_for(None) is default_metrics() and metrics_for(REGISTRY) is default_metrics()
    made = metrics_for(own)
    assert isinstance(made, Metrics) and made.registry is own
    made.pages.inc()
    assert made.value("openai_ocr_pages_total") == 1 and own.get_sample_value("openai_ocr_pages_total") == 1
