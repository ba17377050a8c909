"""The playground's routes and the API parts it needs (page images, per-page results in streams).

A real gateway on loopback in front of the fake upstream; the browser tests are in tests/ui.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from prometheus_client import CollectorRegistry

from openai_ocr.api.routes.ui import prefers_html
from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.metrics import metrics_for
from openai_ocr.runtime import Runtime
from openai_ocr.server import attach_compat_routes, create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, gateway_settings, parse_sse, png_bytes, running_server

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
GROUNDED = ("<|ref|>title<|/ref|><|det|>[[0, 0, 499, 99]]<|/det|>\n# Heading\n\n"
            "<|ref|>text<|/ref|><|det|>[[100, 200, 899, 599]]<|/det|>\nBody text")


@pytest.fixture(scope="module")
def servers(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[dict[str, str]]:
    """Three gateways: default settings, the playground off, and docs behind a key."""
    _, upstream_url = fake_upstream
    variants = {"default": {}, "off": {"ui": {"enabled": False}},
                "protected": {"auth": {"api_keys": ["k-1"], "protect_docs": True}}}
    apps = {}
    for name, sections in variants.items():
        settings = gateway_settings(upstream_url, **sections)
        apps[name] = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    with running_server(apps["default"]) as a, running_server(apps["off"]) as b, \
            running_server(apps["protected"]) as c:
        yield {"default": a, "off": b, "protected": c}


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER_ACCEPT, True), ("text/html", True), ("application/json", False), ("*/*", False), ("", False),
    ("application/json, text/html;q=0.5", False), ("text/html;q=0", False), ("text/html;q=x", False)])
def test_content_negotiation_rule(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_root_serves_the_page_to_browsers_and_json_to_clients(servers: dict[str, str]) -> None:
    url = servers["default"]
    page = httpx.get(f"{url}/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp
    for accept in ("application/json", "*/*"):
        summary = httpx.get(f"{url}/", headers={"Accept": accept})
        assert summary.headers["content-type"] == "application/json"
        assert summary.json()["engine"] == "upstream" and summary.json()["playground"] == "/playground"
    assert httpx.get(f"{url}/playground").text == page.text


def test_static_files_are_served_from_the_package_and_nothing_else(servers: dict[str, str]) -> None:
    url = servers["default"]
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("index.html", "text/html")):
        r = httpx.get(f"{url}/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert len(r.content) > 500
    for name in ("missing.js", "..%2Fserver.py", "..%2F__init__.py", ".hidden.js", "chat_template.jinja"):
        r = httpx.get(f"{url}/ui/{name}")
        assert r.status_code == 404, name
        assert b"import" not in r.content and b"{%" not in r.content


def test_disabled_playground_is_404_and_root_stays_json(servers: dict[str, str]) -> None:
    url = servers["off"]
    for path in ("/playground", "/ui/app.js"):
        r = httpx.get(f"{url}{path}", headers={"Accept": BROWSER_ACCEPT})
        assert r.status_code == 404 and "ui.enabled" in r.json()["error"]["message"]
    root = httpx.get(f"{url}/", headers={"Accept": BROWSER_ACCEPT})
    assert root.status_code == 200 and "playground" not in root.json()


def test_protected_docs_put_the_page_behind_the_key(servers: dict[str, str]) -> None:
    url = servers["protected"]
    for path in ("/", "/playground", "/ui/app.js"):
        r = httpx.get(f"{url}{path}", headers={"Accept": BROWSER_ACCEPT})
        assert r.status_code == 401, path
        assert r.json()["error"]["code"]
        ok = httpx.get(f"{url}{path}", headers={"Accept": BROWSER_ACCEPT, "Authorization": "Bearer k-1"})
        assert ok.status_code == 200, path
    assert httpx.get(f"{url}/", headers={"Accept": "application/json"}).status_code == 200


def test_the_playground_mounts_on_a_foreign_app_as_in_vllm_mode(fake_upstream: tuple[FakeUpstream, str]) -> None:
    _, upstream_url = fake_upstream
    settings = gateway_settings(upstream_url)
    app = FastAPI()  # what vLLM builds; the endpoint plugin calls attach_compat_routes on it
    attach_compat_routes(app)
    Runtime(settings, UpstreamEngine(settings.upstream, "m"), metrics_for(CollectorRegistry())).bind(app.state)
    with running_server(app) as url:
        assert httpx.get(f"{url}/playground").headers["content-type"].startswith("text/html")
        assert httpx.get(f"{url}/ui/app.css").status_code == 200
        assert httpx.get(f"{url}/", headers={"Accept": "application/json"}).json()["model"] == "m"


def _png_size(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(raw)) as image:
        return image.size


def test_include_page_images_returns_each_rendered_page(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = GROUNDED
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("d.pdf", blank_pdf(2, 300, 150), "application/pdf")},
                   data={"include_page_images": "true", "dpi": "72"}, timeout=30)
    assert r.status_code == 200, r.text
    pages = r.json()["pages"]
    assert [p["index"] for p in pages] == [1, 2]
    for page in pages:
        assert _png_size(page["image_base64"]) == (page["width"], page["height"]) == (300, 150)
        assert page["images"] is None
    plain = httpx.post(f"{gateway}/ocr/file", data={"output": "json"}, timeout=30,
                       files={"file": ("p.png", png_bytes(), "image/png")}).json()
    assert plain["pages"][0]["image_base64"] is None


def test_jpeg_page_images_come_back_as_png(gateway: str, upstream: FakeUpstream) -> None:
    image = io.BytesIO()
    Image.new("RGB", (80, 40), "gray").save(image, format="JPEG")
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("p.jpg", image.getvalue(), "image/jpeg")},
                   data={"include_page_images": "true"}, timeout=30)
    assert r.status_code == 200, r.text
    assert _png_size(r.json()["pages"][0]["image_base64"]) == (80, 40)


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_stream_with_output_json_carries_each_page_result(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = GROUNDED
    files = {"file": ("d.pdf", blank_pdf(3, 200, 100), "application/pdf")}
    form = {"output": "json", "include_page_images": "true", "dpi": "72", "pages": "2-3"}
    with httpx.stream("POST", f"{gateway}/ocr/stream", files=files, data=form, timeout=30) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    starts = [e for e in parsed if e["type"] == "page"]
    assert [(e["page"], e["page_count"]) for e in starts] == [(2, 2), (3, 2)]
    ends = [e for e in parsed if e["type"] == "page_end"]
    whole = httpx.post(f"{gateway}/ocr/file", files=files, data=form, timeout=30).json()["pages"]
    for event, page in zip(ends, whole, strict=True):
        del event["result"]["usage"], page["usage"]
        assert event["result"] == without_nulls(page)  # the stream drops nulls, at every depth
    assert [b["boxes_px"] for b in ends[0]["result"]["blocks"]] == [
        [[0.0, 0.0, 499 / 999 * 200, 99 / 999 * 100]], [[100 / 999 * 200, 200 / 999 * 100, 899 / 999 * 200,
                                                         599 / 999 * 100]]]
    text = "".join(e.get("text", "") for e in parsed)
    assert text.count("# Heading") == 2


def test_stream_without_output_json_has_no_results(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = GROUNDED
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("p.png", png_bytes(), "image/png")},
                      timeout=30) as r:
        events = [json.loads(e) for e in parse_sse(r.iter_lines())[:-1]]
    (end,) = [e for e in events if e["type"] == "page_end"]
    assert "result" not in end
