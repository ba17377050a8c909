"""Error bodies never repeat more than a short, escaped excerpt of the input.

Audit: a 60 KB id came back whole inside the 404 of `GET /v1/files/{id}`, although the README
says messages never echo the input. Every message built from request input now goes through
`openai_ocr.errors.excerpt` (at most 64 characters, escaped, with the length of the rest).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from openai_ocr.errors import excerpt
from tests.helpers import b64, png_bytes

LONG = "".join(f"id{i:05d}" for i in range(60_000 // 7))
"""A 60 KB id, every part of it different (so any echoed stretch is found)."""
PNG = png_bytes()

PATH_ROUTES = [
    ("GET", "/v1/files/{id}"), ("GET", "/v1/files/{id}/content"), ("DELETE", "/v1/files/{id}"),
    ("GET", "/v1/batches/{id}"), ("POST", "/v1/batches/{id}/cancel"), ("GET", "/ui/{id}"),
    ("GET", "/v1/{id}"),  # no such route: the 404 names the path
]
BODY_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/ocr", {"file_id": LONG}),
    ("/v1/ocr", {"document": {"type": "file", "file_id": LONG}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": LONG}}, {"type": "text", "text": "Free OCR."}]}]}),
    ("/v1/batches", {"input_file_id": LONG, "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
    ("/v1/batches", {"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": LONG}),
    ("/v1/chat/completions", {"model": LONG, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/ocr", {"model": LONG, "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(PNG)}}),
    ("/ocr", {"image_base64": b64(PNG), LONG: 1}),
    ("/ocr", {"image_base64": b64(PNG), "resolution": "x" * 100, "mode": "free_ocr"}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": LONG}]}]}),
]


def assert_short(r: httpx.Response) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert len(r.content) < 2000, (r.status_code, len(r.content), r.text[:300])
    assert LONG[100:200] not in r.text and "x" * 80 not in r.text
    return dict(r.json()["error"])


@pytest.mark.parametrize(("method", "route"), PATH_ROUTES, ids=[f"{m} {r}" for m, r in PATH_ROUTES])
def test_a_60_kb_id_in_the_path_is_not_echoed(batch_gateway: str, method: str, route: str) -> None:
    r = httpx.request(method, batch_gateway + route.format(id=LONG), timeout=60)
    error = assert_short(r)
    assert r.status_code == 404, r.text[:300]
    assert LONG[:20] in error["message"] and "characters)" in error["message"]


@pytest.mark.parametrize(("route", "body"), BODY_ROUTES, ids=[f"{r} {i}" for i, (r, _) in enumerate(BODY_ROUTES)])
def test_60_kb_of_input_in_a_body_is_not_echoed(batch_gateway: str, route: str, body: dict[str, Any]) -> None:
    r = httpx.post(batch_gateway + route, json=body, timeout=60)
    assert_short(r)


def test_a_long_page_selection_is_not_echoed(batch_gateway: str) -> None:
    r = httpx.post(f"{batch_gateway}/ocr/file", files={"file": ("p.png", PNG)}, data={"pages": "x" * 1000})
    assert "pages: cannot read" in assert_short(r)["message"]


def test_excerpts_are_short_and_escaped() -> None:
    assert excerpt("abc") == "'abc'"
    assert excerpt("abc", quote=False) == "abc"
    sneaky = excerpt("\u202egnp.exe\x00\n" + "y" * 1000)
    assert "\u202e" not in sneaky and "\x00" not in sneaky and "\n" not in sneaky
    assert sneaky.startswith("'\\u202egnp.exe\\x00\\n") and sneaky.endswith("... (1010 characters)")
    assert len(excerpt("z" * 60_000)) < 100
