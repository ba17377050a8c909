"""`resolution: "auto"` on the gateway's routes: each page in its own mode, sent upstream as
that mode's three values (never as `auto`), reported per page; a page that loops in its small
mode is read again in the next larger one; bad combinations are a 400 that never reaches the
upstream."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.ocr.recovery import ORDER
from openai_ocr.ocr.resolution import MODES, image_tokens
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, image_size_of, parse_sse, pdf_of, require_file, serve

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORDS = "the of and to in is that for it as was with be by on not this are or from at which but".split()
CLEAN = "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nThe page read cleanly."
LOOP = ("<|ref|>table<|/ref|><|det|>[[100, 100, 899, 900]]<|/det|>\n"
        + "".join(f"| {n} | {n + 1} |\n" for n in range(600)))
VALUES = {tuple(mode.mm_processor_kwargs().values()): name for name, mode in MODES["deepseek-ocr"].items()}


def mode_of(body: dict[str, Any]) -> str:
    """The mode a chat request asks for: its mm_processor_kwargs' values, or Gundam (none)."""
    kwargs = body.get("mm_processor_kwargs")
    if kwargs is None:
        return "gundam"
    assert set(kwargs) == {"base_size", "image_size", "crop_mode"}, kwargs  # never a name
    return VALUES[tuple(kwargs.values())]


def drawn(size: tuple[int, int], px: int, lines: int | None = None, columns: int = 1) -> Image.Image:
    rng = random.Random(px + columns)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(require_file(FONT, "fonts-dejavu-core")), px)
    width = (size[0] - 80 - (columns - 1) * 24) / columns
    for col in range(columns):
        y, count = 40, 0
        while y < size[1] - 40 - px and (lines is None or count < lines):
            line = ""
            while font.getlength(f"{line} x") < width - px * 4:
                line = f"{line} {rng.choice(WORDS)}".strip()
            draw.text((40 + col * (width + 24), y), line, font=font, fill="black")
            y, count = y + round(px * 1.2), count + 1
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


ONE_LINE = png(drawn((1280, 720), 56, lines=1))
DENSE = png(drawn((1190, 1684), 14, columns=4))


def ocr_json(url: str, image: bytes, **fields: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(image), "output": "json", **fields}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_one_line_page_takes_a_small_mode_and_a_dense_page_gundam(gateway: str, upstream: FakeUpstream) -> None:
    small = ocr_json(gateway, ONE_LINE, resolution="auto")
    (page,) = small["pages"]
    assert small["resolution"] == "auto"
    assert page["quality"]["resolution"] in ("tiny", "small")
    assert mode_of(upstream.requests[0]) == page["quality"]["resolution"]
    mode = MODES["deepseek-ocr"][page["quality"]["resolution"]]
    assert page["usage"]["image_tokens"] == image_tokens("deepseek-ocr", mode, 1280, 720)
    dense = ocr_json(gateway, DENSE, resolution="auto")
    assert dense["pages"][0]["quality"]["resolution"] == "gundam"
    assert "mm_processor_kwargs" not in upstream.requests[1]
    assert dense["usage"]["image_tokens"] == image_tokens("deepseek-ocr", MODES["deepseek-ocr"]["gundam"],
                                                          1190, 1684)


def text_pdf_pages() -> bytes:
    """Two A4-ish pages with a text layer: one line of 40 pt type (600 pt wide), and four
    columns of 7 pt type (610 pt wide, so the pages are told apart by their size)."""
    rng = random.Random(3)
    big = b"BT /F1 40 Tf 60 700 Td (A title on its own) Tj ET"
    ops = []
    for col in range(4):
        for n in range(90):
            text = " ".join(rng.choice(WORDS) for _ in range(7))
            ops.append(f"BT /F1 7 Tf {30 + col * 145} {800 - n * 8.4:.1f} Td ({text}) Tj ET")
    return pdf_of([(600, 842, big), (610, 842, "\n".join(ops).encode())], font=True)


def test_pdf_pages_each_get_their_own_mode_from_their_text_layer(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("d.pdf", text_pdf_pages(), "application/pdf")},
                   data={"resolution": "auto", "output": "json"}, timeout=60)
    assert r.status_code == 200, r.text
    pages = {p["index"]: p for p in r.json()["pages"]}
    assert pages[1]["quality"]["resolution"] in ("tiny", "small")
    assert pages[2]["quality"]["resolution"] == "gundam"
    sent = {image_size_of(body["messages"][0]["content"][0]["image_url"]["url"])[0]: mode_of(body)
            for body in upstream.requests}
    assert sent == {1200: pages[1]["quality"]["resolution"], 1220: "gundam"}


def test_a_page_that_loops_in_its_small_mode_is_read_again_in_the_next_larger_one(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    first: list[str] = []

    def loops_in_the_first_mode(body: dict[str, Any]) -> tuple[str, str]:
        first.append(mode_of(body)) if not first else None
        return (LOOP, "length") if mode_of(body) == first[0] else (CLEAN, "stop")

    upstream.reply_fn = loops_in_the_first_mode
    with serve(gateway_settings(fake_upstream[1])) as (url, _):  # the default ladder: no next_resolution in it
        body = ocr_json(url, ONE_LINE, resolution="auto")
    (page,) = body["pages"]
    modes = [mode_of(b) for b in upstream.requests]
    assert len(modes) == 2 and modes[0] in ("tiny", "small")
    assert modes[1] == next(m for m in ORDER[ORDER.index(modes[0]) + 1:] if m in MODES["deepseek-ocr"])
    assert page["quality"]["flags"] == ["repetition_loop", "truncated", "recovered"]
    assert page["quality"]["resolution"] == modes[1] and page["quality"]["attempts"] == 2
    assert body["text"] == CLEAN
    mode = MODES["deepseek-ocr"][modes[1]]
    assert page["usage"]["image_tokens"] == image_tokens("deepseek-ocr", mode, 1280, 720)


def test_a_looping_auto_page_keeps_climbing_with_the_rest_of_the_ladder(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    """After the step up, the configured ladder runs in the larger mode (here: the stricter
    guard), and a page that never reads clean is flagged in the largest mode it reached."""
    upstream.reply_fn = lambda body: (LOOP, "length")
    settings = gateway_settings(fake_upstream[1], ocr={"recovery": {"ladder": ["stricter_guard"]}})
    with serve(settings) as (url, _):
        page = ocr_json(url, ONE_LINE, resolution="auto")["pages"][0]
    first, second, third = upstream.requests
    assert ORDER.index(mode_of(second)) > ORDER.index(mode_of(first))
    assert mode_of(third) == mode_of(second)
    assert third["vllm_xargs"]["ngram_size"] < second["vllm_xargs"]["ngram_size"]
    assert page["quality"]["attempts"] == 3 and "recovered" not in page["quality"]["flags"]


def test_a_stream_reads_each_page_in_its_mode(gateway: str, upstream: FakeUpstream) -> None:
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("p.png", ONE_LINE, "image/png")},
                      data={"resolution": "auto", "output": "json"}, timeout=60) as r:
        assert r.status_code == 200
        events = [json.loads(e) for e in parse_sse(r.iter_lines()) if e != "[DONE]"]
    (page_end,) = [e for e in events if e["type"] == "page_end"]
    assert page_end["quality"]["resolution"] in ("tiny", "small")
    assert mode_of(upstream.requests[0]) == page_end["quality"]["resolution"]


def test_mistral_ocr_and_batches_take_auto(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/v1/ocr", timeout=60, json={
        "model": "deepseek-ai/DeepSeek-OCR", "resolution": "auto",
        "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(DENSE)}})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "auto" and r.json()["pages"][0]["quality"]["resolution"] == "gundam"
    r = httpx.post(f"{gateway}/ocr/batch", timeout=60, json={"requests": [
        {"image_base64": b64(ONE_LINE), "resolution": "auto", "output": "json"}]})
    (item,) = r.json()["results"]
    assert item["status_code"] == 200 and item["pages"][0]["quality"]["resolution"] in ("tiny", "small")
    assert [mode_of(b) for b in upstream.requests][1] == item["pages"][0]["quality"]["resolution"]


def test_bad_combinations_are_400_and_never_reach_upstream(gateway: str, upstream: FakeUpstream) -> None:
    for fields in ({"resolution": "auto", "base_size": 512}, {"resolution": "auto", "crop_mode": False}):
        r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(ONE_LINE), **fields})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] in ("base_size", "crop_mode") and "auto" in error["message"]
    r = httpx.post(f"{gateway}/v1/ocr", json={
        "resolution": "auto", "image_size": 640,
        "document": {"type": "image_url", "image_url": "data:image/png;base64," + b64(ONE_LINE)}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image_size"
    r = httpx.post(f"{gateway}/v1/chat/completions", json={
        "mm_processor_kwargs": {"resolution": "auto"}, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(ONE_LINE)}},
            {"type": "text", "text": "Free OCR."}]}]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "mm_processor_kwargs" and "per page" in r.json()["error"]["message"]
    assert upstream.requests == []


@pytest.fixture()
def auto_gateway(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> Iterator[str]:
    with serve(gateway_settings(fake_upstream[1], ocr={"resolution": "auto"})) as (url, _):
        yield url


def test_auto_as_the_configured_default(auto_gateway: str, upstream: FakeUpstream) -> None:
    body = ocr_json(auto_gateway, ONE_LINE)
    assert body["resolution"] == "auto" and body["pages"][0]["quality"]["resolution"] in ("tiny", "small")
    assert ocr_json(auto_gateway, ONE_LINE, resolution="base")["resolution"] == "base"
    r = httpx.post(f"{auto_gateway}/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(ONE_LINE)}},
        {"type": "text", "text": "Free OCR."}]}]})
    assert r.status_code == 200, r.text
    assert [mode_of(b) for b in upstream.requests] == [body["pages"][0]["quality"]["resolution"], "base", "gundam"]


def test_the_cli_takes_resolution_auto(tmp_path: Path, gateway: str, upstream: FakeUpstream) -> None:
    page = tmp_path / "slide.png"
    page.write_bytes(ONE_LINE)
    done = subprocess.run([sys.executable, "-m", "openai_ocr.cli.main", "ocr", str(page), "--server", gateway,
                           "--resolution", "auto", "--output", "json"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (written,) = json.loads((tmp_path / "slide.json").read_text())["pages"]
    assert written["quality"]["resolution"] == mode_of(upstream.requests[0]) != "gundam"
