"""Pages whose answer loops, or is cut at the default max_tokens, are read again and the best
answer kept; what happened is reported per page (JSON pages, stream events, batch lines) and
counted. The fake upstream loops on cue: under the default n-gram guard, not the stricter one."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import openai
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.ocr.quality import WHEN_CUT, find_loop
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, metric, parse_sse, png_bytes, serve, wait_until

CLEAN = "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nThe page read cleanly."
LOOP = ("<|ref|>table<|/ref|><|det|>[[100, 100, 899, 900]]<|/det|>\n"
        + "".join(f"| {n} | {n + 1} |\n" for n in range(600)))
DEFAULT_GUARD = 30  # ocr.ngram_guard.ngram_size


def loops_under_the_default_guard(body: dict[str, Any]) -> tuple[str, str]:
    """What DeepSeek-OCR does on a hard page: it loops until max_tokens, unless the guard is
    stricter than the default."""
    if (body.get("vllm_xargs") or {}).get("ngram_size", DEFAULT_GUARD) >= DEFAULT_GUARD:
        return LOOP, "length"
    return CLEAN, "stop"


def always_loops(body: dict[str, Any]) -> tuple[str, str]:
    return LOOP, "length"


def gateway(upstream_url: str, **recovery: Any) -> Any:
    return serve(gateway_settings(upstream_url, ocr={"recovery": {"ladder": ["stricter_guard"], **recovery}}))


def ocr_json(url: str, **fields: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "output": "json", **fields},
                   timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_page_that_loops_once_comes_back_clean_after_one_more_call(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = loops_under_the_default_guard
    with gateway(fake_upstream[1]) as (url, app):
        body = ocr_json(url)
        assert len(upstream.requests) == 2  # exactly one extra engine call
        strict = upstream.requests[1]["vllm_xargs"]
        assert strict["ngram_size"] < DEFAULT_GUARD and strict["whitelist_token_ids"] == []
        (page,) = body["pages"]
        assert page["quality"] == {"flags": ["repetition_loop", "truncated", "recovered"], "attempts": 2,
                                   "engine": "upstream", "resolution": "gundam", "loop_chars_removed": 0}
        assert body["text"] == CLEAN and page["finish_reason"] == "stop" and body["finish_reason"] == "stop"
        assert page["usage"]["attempts"] == 2 and body["usage"]["attempts"] == 2
        assert metric(app, "openai_ocr_repetition_loops_total") == 1
        assert metric(app, "openai_ocr_loops_recovered_total", {"step": "stricter_guard"}) == 1


def test_a_page_that_always_loops_is_flagged_and_its_loop_cut_out(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = always_loops
    with gateway(fake_upstream[1]) as (url, app):
        body = ocr_json(url)
        (page,) = body["pages"]
        assert page["quality"]["flags"] == ["repetition_loop", "truncated"]
        assert page["quality"]["attempts"] == 2 and page["quality"]["loop_chars_removed"] > 5000
        first_row = LOOP[:LOOP.index("| 1 | 2 |") - 1]  # the block's head and one copy of the row
        assert find_loop(body["text"], WHEN_CUT) is None and body["text"].startswith(first_row)
        assert len(body["text"]) < 200
        assert any("repetition loop" in w for w in body["warnings"])
        assert metric(app, "openai_ocr_loops_recovered_total", {"step": "stricter_guard"}) == 0


def test_recovery_off_flags_the_page_and_calls_once(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = loops_under_the_default_guard
    with gateway(fake_upstream[1], enabled=False) as (url, _):
        body = ocr_json(url)
    assert len(upstream.requests) == 1
    assert body["pages"][0]["quality"]["flags"] == ["repetition_loop", "truncated"]
    assert find_loop(body["text"], WHEN_CUT) is None


def test_a_limit_the_client_chose_is_not_a_failure(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = lambda body: ("A sentence cut short by the cli", "length")
    with gateway(fake_upstream[1]) as (url, _):
        body = ocr_json(url, max_tokens=12)
    assert len(upstream.requests) == 1
    assert body["pages"][0]["quality"]["flags"] == ["truncated"] and body["finish_reason"] == "length"


def test_a_stream_stops_a_loop_early_withdraws_it_and_sends_the_kept_answer(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = loops_under_the_default_guard
    upstream.chunk_delay_s = 0.002  # an engine still writing its loop when the stream stops it
    with gateway(fake_upstream[1]) as (url, _), httpx.stream(
            "POST", f"{url}/ocr/stream", files={"file": ("p.png", png_bytes())},
            data={"output": "json"}, timeout=60) as r:
        assert r.status_code == 200
        events = [json.loads(e) for e in parse_sse(r.iter_lines()) if e != "[DONE]"]
    kinds = [e["type"] for e in events]
    reset = kinds.index("page_reset")
    assert kinds[0] == "page" and kinds[-2:] == ["page_end", "done"] and reset < kinds.index("page_end")
    looped = "".join(e["text"] for e in events[:reset] if e["type"] == "text")
    assert 1000 <= len(looped) < len(LOOP) / 2  # stopped once the loop showed, not at its end
    kept = "".join(e["text"] for e in events[reset:] if e["type"] == "text")
    assert kept == CLEAN
    page_end = events[kinds.index("page_end")]
    assert page_end["quality"]["flags"] == ["repetition_loop", "truncated", "recovered"]
    assert page_end["result"]["text"] == CLEAN
    wait_until(lambda: upstream.disconnected.is_set(), what="the looping stream to be closed upstream")


def test_batch_lines_carry_each_page_s_quality(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = loops_under_the_default_guard
    with gateway(fake_upstream[1]) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        line = {"custom_id": "a", "method": "POST", "url": "/ocr",
                "body": {"image_base64": b64(png_bytes()), "output": "json"}}
        batch_input = client.files.create(file=("in.jsonl", io.BytesIO(json.dumps(line).encode())),
                                          purpose="batch")
        batch = client.batches.create(input_file_id=batch_input.id, endpoint="/ocr",  # type: ignore[arg-type]
                                      completion_window="24h")
        wait_until(lambda: client.batches.retrieve(batch.id).status == "completed", timeout_s=60,
                   what="the batch to complete")
        done = client.batches.retrieve(batch.id)
        assert done.output_file_id is not None
        (out,) = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    quality = out["response"]["body"]["pages"][0]["quality"]
    assert quality["flags"] == ["repetition_loop", "truncated", "recovered"] and quality["attempts"] == 2


def rendered(text: str) -> bytes:
    image = Image.new("RGB", (900, 160), "white")
    font = ImageFont.load_default(size=40)
    ImageDraw.Draw(image).text((30, 50), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_the_lite_engine_is_the_last_resort(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = always_loops
    settings = gateway_settings(fake_upstream[1], ocr={"recovery": {"ladder": ["stricter_guard", "lite"]}})
    with serve(settings) as (url, app):
        r = httpx.post(f"{url}/ocr", timeout=300, json={
            "image_base64": b64(rendered("Recovered by the lite engine")), "output": "json"})
    assert r.status_code == 200, r.text
    page = r.json()["pages"][0]
    assert page["quality"]["flags"] == ["repetition_loop", "truncated", "recovered", "fallback_engine"]
    assert page["quality"]["engine"] == "lite" and page["quality"]["attempts"] == 3
    assert "Recovered by the lite engine" in page["markdown"]
    assert metric(app, "openai_ocr_loops_recovered_total", {"step": "lite"}) == 1


def test_the_mistral_route_reports_each_page_s_quality(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    upstream.reply_fn = loops_under_the_default_guard
    with gateway(fake_upstream[1]) as (url, _):
        r = httpx.post(f"{url}/v1/ocr", timeout=60, json={"document": {
            "type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes())}})
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    assert page["quality"]["flags"] == ["repetition_loop", "truncated", "recovered"]
    assert page["markdown"] == "The page read cleanly."
