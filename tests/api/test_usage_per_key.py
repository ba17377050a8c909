"""Usage per API key: every OCR route (and a Batch API line) counted for the key that asked,
in `GET /v1/usage` (kept in the store across a restart), in Prometheus counters labelled by
key id, and in the access log, by the key's id and never the key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from openai_ocr.api.dependencies import key_id
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    b64,
    blank_pdf,
    chat_line,
    gateway_settings,
    image_messages,
    jsonl,
    metric,
    openai_client,
    output_lines,
    png_bytes,
    serve,
    wait_until,
    wait_until_done,
)

KEY_A, KEY_B, ADMIN = "usage-key-a-0123456789", "usage-key-b-0123456789", "usage-admin-0123456789"
ID_A, ID_B, ID_ADMIN = key_id(KEY_A), key_id(KEY_B), key_id(ADMIN)
COUNTS = ("requests", "pages", "images", "image_tokens", "prompt_tokens", "completion_tokens")


@contextmanager
def keyed_gateway(upstream_url: str, store: Path) -> Iterator[tuple[str, FastAPI]]:
    settings = gateway_settings(upstream_url, storage={"dir": str(store)},
                                batches={"poll_interval_s": 0.05},
                                auth={"api_keys": [KEY_A, KEY_B, ADMIN], "admin_keys": [ADMIN]})
    with serve(settings) as served:
        yield served


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def usage_of(url: str, key: str, **params: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/v1/usage", headers=auth(key), params=params, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def by_route(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    routes: dict[str, dict[str, Any]] = {}
    for bucket in report["data"]:
        held = routes.setdefault(bucket["route"], dict.fromkeys(COUNTS, 0))
        for name in COUNTS:
            held[name] += bucket[name]
    return routes


def expected(pages: int, usage: dict[str, Any], images: int | None = None) -> dict[str, int]:
    return {"requests": 1, "pages": pages, "images": pages if images is None else images,
            "image_tokens": usage.get("image_tokens", 0), "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"]}


def post(url: str, path: str, key: str, **request: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}{path}", headers=auth(key), timeout=60, **request)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_usage_is_counted_per_key_and_survives_a_restart(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="openai_ocr.access"), \
            keyed_gateway(fake_upstream[1], store) as (url, app):
        image = b64(png_bytes())
        ocr = post(url, "/ocr", KEY_A, json={"image_base64": image})
        pdf = post(url, "/ocr/file", KEY_A, files={"file": ("two.pdf", blank_pdf(2), "application/pdf")})
        assert pdf["page_count"] == 2
        mistral = post(url, "/v1/ocr", KEY_A, json={
            "model": None, "document": {"type": "image_url",
                                                  "image_url": f"data:image/png;base64,{image}"}})
        chat = post(url, "/v1/chat/completions", KEY_A, json={"messages": image_messages(png_bytes())})
        sdk = openai_client(url, KEY_A)
        uploaded = sdk.files.create(file=("in.jsonl", io.BytesIO(jsonl([chat_line("l1", "Free OCR.")]))),
                                    purpose="batch")
        batch = wait_until_done(sdk, sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)
        assert batch.status == "completed"
        line = output_lines(sdk, batch.output_file_id)[0]["response"]["body"]
        other = post(url, "/ocr", KEY_B, json={"image_base64": image})

        mine = usage_of(url, KEY_A)
        assert mine["key_id"] == ID_A and {b["key_id"] for b in mine["data"]} == {ID_A}
        pages_v1 = mistral["usage_info"]["pages_processed"]
        assert pages_v1 == 1
        routes = by_route(mine)
        assert routes.pop("/v1/ocr") == {"requests": 1, "pages": 1, "images": 1,
                                         "image_tokens": routes["/ocr"]["image_tokens"],
                                         "prompt_tokens": 278, "completion_tokens": ocr["usage"]["completion_tokens"]}
        assert routes == {"/ocr": expected(1, ocr["usage"]), "/ocr/file": expected(2, pdf["usage"]),
                          "/v1/chat/completions": expected(1, chat["usage"]),
                          "/v1/batches": expected(1, line["usage"])}
        totals = mine["totals"]
        assert totals["pages"] == 6 and totals["requests"] == 5 and totals["engine_seconds"] > 0
        assert totals["prompt_tokens"] == sum(u["prompt_tokens"] for u in (
            ocr["usage"], pdf["usage"], chat["usage"], line["usage"])) + 278
        theirs = usage_of(url, KEY_B)
        assert by_route(theirs) == {"/ocr": expected(1, other["usage"])}
        assert theirs["totals"]["pages"] == 1

        every = usage_of(url, ADMIN)
        assert every["key_id"] is None
        assert {b["key_id"] for b in every["data"]} == {ID_A, ID_B}
        assert every["totals"]["pages"] == 7
        assert usage_of(url, ADMIN, key_id=ID_B)["totals"] == theirs["totals"]
        refused = httpx.get(f"{url}/v1/usage", headers=auth(KEY_B), params={"key_id": ID_A})
        assert refused.status_code == 403 and refused.json()["error"]["param"] == "key_id"

        assert metric(app, "openai_ocr_key_pages_total", {"key_id": ID_A, "route": "/ocr/file"}) == 2
        assert metric(app, "openai_ocr_key_pages_total", {"key_id": ID_B, "route": "/ocr"}) == 1
        assert metric(app, "openai_ocr_key_requests_total", {"key_id": ID_A, "route": "/v1/batches"}) == 1
        assert metric(app, "openai_ocr_key_tokens_total",
                      {"key_id": ID_A, "kind": "prompt"}) == totals["prompt_tokens"]
        assert metric(app, "openai_ocr_key_tokens_total",
                      {"key_id": ID_A, "kind": "completion"}) == totals["completion_tokens"]
        assert metric(app, "openai_ocr_key_tokens_total", {"key_id": ID_B, "kind": "image"}) == \
            other["usage"]["image_tokens"] > 0

        def access_lines() -> list[dict[str, Any]]:
            return [json.loads(r.getMessage()) for r in caplog.records if r.name == "openai_ocr.access"]

        wait_until(lambda: any(e["route"] == "/v1/usage" and e["key_id"] == ID_B for e in access_lines()),
                   30, "the access line of the refused usage request")
        ocr_lines = [e for e in access_lines() if e["path"] == "/ocr/file"]
        assert [e["key_id"] for e in ocr_lines] == [ID_A]
        [file_line] = ocr_lines  # what the request cost, on its access line
        assert (file_line["pages"], file_line["prompt_tokens"], file_line["completion_tokens"]) == (
            2, pdf["usage"]["prompt_tokens"], pdf["usage"]["completion_tokens"])
        assert file_line["image_tokens"] == pdf["usage"]["image_tokens"] > 0 and file_line["engine_ms"] > 0
        assert "pages" not in next(e for e in access_lines() if e["route"] == "/v1/usage")
        assert not any(key in r.getMessage() for r in caplog.records for key in (KEY_A, KEY_B, ADMIN))
        post(url, "/ocr", KEY_B, json={"image_base64": image})  # written by the shutdown's flush

    with keyed_gateway(fake_upstream[1], store) as (url, app):  # the same store, a new process state
        assert usage_of(url, KEY_A) == mine
        assert usage_of(url, KEY_B)["totals"]["pages"] == 2
        assert usage_of(url, ADMIN, key_id=ID_A)["totals"] == totals
        assert metric(app, "openai_ocr_key_pages_total", {"key_id": ID_A, "route": "/ocr/file"}) == 0


@pytest.mark.parametrize(("params", "param"), [
    ({"start": "2024-13-01"}, "start"),
    ({"end": "yesterday"}, "end"),
    ({"start": "2024-1-5"}, "start"),
    ({"start": "2024-03-02", "end": "2024-03-01"}, "start"),
    ({"start": "2023-01-01", "end": "2024-12-31"}, "start"),
    ({"start": "0001-01-01"}, "start"),
])
def test_a_bad_range_is_a_400(batch_gateway: str, params: dict[str, str], param: str) -> None:
    r = httpx.get(f"{batch_gateway}/v1/usage", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_an_explicit_range_and_the_default_one(batch_gateway: str) -> None:
    """Without keys the caller is anonymous; a range of days with nothing in it is empty."""
    post(batch_gateway, "/ocr", "none", json={"image_base64": b64(png_bytes())})
    now = usage_of(batch_gateway, "none")
    assert now["key_id"] == "anonymous" and now["totals"]["pages"] == 1
    assert now["data"][0]["key_id"] == "anonymous" and now["data"][0]["route"] == "/ocr"
    old = usage_of(batch_gateway, "none", start="2001-01-01", end="2001-12-31")
    assert old["data"] == [] and old["totals"]["requests"] == 0
    first = usage_of(batch_gateway, "none", end="0001-01-02")
    assert (first["start"], first["end"], first["data"]) == ("0001-01-01", "0001-01-02", [])


def test_without_a_store_usage_still_counts_in_prometheus(
        fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> None:
    with serve(gateway_settings(fake_upstream[1], batches={"enabled": False})) as (url, app):
        post(url, "/ocr", "none", json={"image_base64": b64(png_bytes())})
        r = httpx.get(f"{url}/v1/usage")
        assert r.status_code == 404 and "batches.enabled" in r.json()["error"]["message"]
        assert metric(app, "openai_ocr_key_pages_total", {"key_id": "anonymous", "route": "/ocr"}) == 1


def test_an_admin_key_must_be_an_api_key() -> None:
    with pytest.raises(ValueError, match="admin"):
        gateway_settings("http://127.0.0.1:9/v1", auth={"api_keys": [KEY_A], "admin_keys": [ADMIN]})
