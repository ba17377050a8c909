"""Confidence and word boxes through the routes, on the gateway in front of the fake upstream
scripted to return token log-probabilities (as vLLM does for `logprobs: true`).

Expected confidences are computed here from the scripted log-probabilities by their
definition (exp of the mean; the least token), and word positions from where Pillow drew
the words, never from the code under test.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, gateway_settings, parse_sse, png_bytes, require, serve

mistralai = require("mistralai", "the dev extra")
from mistralai.client import Mistral  # noqa: E402

PAGE = ("<|ref|>title<|/ref|><|det|>[[100, 40, 899, 80]]<|/det|>\n# Quarterly report\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nSales rose sharply.\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 300, 899, 400]]<|/det|>\nCosts fell.")
DOUBTFUL = {"Sales": -1.5, "rose": -0.7, "sharply": -2.5}
SURE = -0.02


def tokens_of(text: str) -> list[str]:
    """A tokenizer's cut: grounding tags alone, words with their leading whitespace."""
    return [t for t in re.split(r"(<\|/?(?:ref|det)\|>|\s*[A-Za-z]+|\s*\d+|[^\sA-Za-z\d])", text) if t]


def scripted(doubtful: dict[str, float], sure: float = SURE) -> Any:
    def logprobs(text: str) -> list[tuple[str, float]]:
        return [(t, doubtful.get(t.strip(), sure)) for t in tokens_of(text)]
    return logprobs


def ocr(url: str, **fields: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes(999, 999)), **fields}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_block_read_with_low_log_probabilities_scores_lower_than_its_neighbours(
        gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    upstream.logprobs_fn = scripted(DOUBTFUL)
    (page,) = ocr(gateway, output="json")["pages"]
    assert upstream.requests[-1]["logprobs"] is True  # output=json asks for them
    title, sales, costs = (b["confidence"] for b in page["blocks"])
    # "Sales rose sharply." is four tokens: Sales, rose, sharply and "."
    assert sales["average"] == pytest.approx(math.exp((-1.5 - 0.7 - 2.5 + SURE) / 4))
    assert sales["minimum"] == pytest.approx(math.exp(-2.5))
    assert title["average"] == pytest.approx(math.exp(SURE)) == costs["average"]
    assert sales["average"] < min(title["average"], costs["average"])
    assert title["label"] == pytest.approx(math.exp(SURE))
    assert 0 < page["confidence"]["minimum"] <= page["confidence"]["average"] <= 1
    assert page["confidence"]["minimum"] == pytest.approx(math.exp(-2.5))
    assert all(b["words"] is None for b in page["blocks"])  # words only on request


def test_logprobs_are_asked_only_where_confidences_are_given(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    upstream.logprobs_fn = scripted(DOUBTFUL)
    ocr(gateway)  # output=text: no pages, nothing to show them in
    assert "logprobs" not in upstream.requests[-1]
    (page,) = ocr(gateway, output="json", confidence=False)["pages"]
    assert "logprobs" not in upstream.requests[-1]
    assert page["confidence"] is None and all(b["confidence"] is None for b in page["blocks"])
    ocr(gateway, output="markdown", confidence=True)
    assert upstream.requests[-1]["logprobs"] is True


def test_an_engine_without_logprobs_gives_no_confidence(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE  # no logprobs_fn: the answer carries none
    (page,) = ocr(gateway, output="json")["pages"]
    assert page["confidence"] is None and all(b["confidence"] is None for b in page["blocks"])


CLEAN = "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nThe page read cleanly."
LOOP = ("<|ref|>table<|/ref|><|det|>[[100, 100, 899, 900]]<|/det|>\n"
        + "".join(f"| {n} | {n + 1} |\n" for n in range(600)))


def test_the_kept_try_of_a_recovered_page_gives_the_confidences(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    """The looping first try and the clean second both carry log-probabilities; the page
    reports the kept (second) try's."""
    upstream.reply_fn = lambda body: (LOOP, "length") if len(upstream.requests) == 1 else (CLEAN, "stop")
    upstream.logprobs_fn = lambda text: [(t, -3.0 if text == LOOP else -0.05) for t in tokens_of(text)]
    settings = gateway_settings(fake_upstream[1], ocr={"recovery": {"ladder": ["stricter_guard"]}})
    with serve(settings) as (url, _):
        (page,) = ocr(url, output="json")["pages"]
    assert [r.get("logprobs") for r in upstream.requests] == [True, True]
    assert "recovered" in page["quality"]["flags"] and page["text"] == CLEAN
    assert page["confidence"]["average"] == pytest.approx(math.exp(-0.05))
    assert page["blocks"][0]["confidence"]["minimum"] == pytest.approx(math.exp(-0.05))


def test_a_loop_cut_out_keeps_the_scores_of_what_is_left(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str]) -> None:
    """Every try loops: the loop is cut out of the kept text, and with it its tokens; each
    word left is still scored by the tokens that wrote it."""
    upstream.reply_fn = lambda body: (LOOP, "length")
    upstream.logprobs_fn = lambda text: [(t, -0.25 if t.strip() == "1" else -0.01) for t in tokens_of(text)]
    settings = gateway_settings(fake_upstream[1], ocr={"recovery": {"ladder": ["stricter_guard"]}})
    with serve(settings) as (url, _):
        r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "output": "json",
                                           "mode": "ocr"}, timeout=60)
        assert r.status_code == 200, r.text
        (page,) = r.json()["pages"]
    assert page["quality"]["loop_chars_removed"] > 0 and len(page["text"]) < len(LOOP) / 10
    (block,) = page["blocks"]
    assert block["confidence"]["minimum"] == pytest.approx(math.exp(-0.25))  # "| 0 | 1 |" is kept


def test_the_stream_page_end_carries_the_same_confidences(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    upstream.logprobs_fn = scripted(DOUBTFUL)
    (whole,) = ocr(gateway, output="json")["pages"]
    with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("p.png", png_bytes(999, 999), "image/png")},
                      data={"output": "json"}, timeout=60) as r:
        assert r.status_code == 200
        events = [json.loads(e) for e in parse_sse(r.iter_lines())[:-1]]
    assert upstream.requests[-1]["logprobs"] is True and upstream.requests[-1]["stream"] is True
    (end,) = [e for e in events if e["type"] == "page_end"]
    assert [b["confidence"] for b in end["result"]["blocks"]] == [b["confidence"] for b in whole["blocks"]]
    assert end["result"]["confidence"] == whole["confidence"]


# ------------------------------------------------------------------ Mistral OCR through its SDK

def test_the_mistral_sdk_reads_page_block_and_word_confidences(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    upstream.logprobs_fn = scripted(DOUBTFUL)
    client = Mistral(api_key="unused", server_url=gateway)
    document = {"type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes(999, 999))}

    (page,) = client.ocr.process(model=SERVED_NAME, document=document, confidence_scores_granularity="page").pages
    assert page.confidence_scores is not None and page.confidence_scores.word_confidence_scores is None
    assert page.confidence_scores.minimum_page_confidence_score == pytest.approx(math.exp(-2.5))
    assert upstream.requests[-1]["logprobs"] is True

    (page,) = client.ocr.process(model=SERVED_NAME, document=document, confidence_scores_granularity="block").pages
    assert page.blocks is not None
    scores = [b.confidence_scores for b in page.blocks]
    assert all(s is not None for s in scores)
    title, sales, costs = (s.average_content_confidence_score for s in scores if s is not None)
    assert title is not None and sales is not None and costs is not None
    assert sales == pytest.approx(math.exp((-1.5 - 0.7 - 2.5 + SURE) / 4)) and sales < min(title, costs)

    (page,) = client.ocr.process(model=SERVED_NAME, document=document, confidence_scores_granularity="word").pages
    assert page.confidence_scores is not None
    located = page.confidence_scores.word_confidence_scores or []
    assert [w.text for w in located] == ["#", "Quarterly", "report", "Sales", "rose", "sharply.", "Costs", "fell."]
    for word in located:
        assert page.markdown[word.start_index:word.start_index + len(word.text)] == word.text
    by_word = {w.text: w.confidence for w in located}
    assert by_word["sharply."] == pytest.approx(math.exp(-2.5)) and by_word["rose"] == pytest.approx(math.exp(-0.7))
    assert by_word["Costs"] == pytest.approx(math.exp(SURE))


def test_mistral_without_a_granularity_asks_for_no_logprobs(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    r = httpx.post(f"{gateway}/v1/ocr", json={"document": {
        "type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes(999, 999))}}, timeout=60)
    assert r.status_code == 200, r.text
    assert "logprobs" not in upstream.requests[-1]


# ------------------------------------------------------------------ word boxes for the upstream engine

LINES = [["Invoice", "number", "2041"], ["Total", "due", "37.50", "EUR"]]
WIDTH, HEIGHT = 900, 300


def rendered_page() -> tuple[bytes, dict[str, tuple[int, int, int, int]]]:
    """A page with the words drawn at known places, and each word's ink box as Pillow drew it."""
    font = ImageFont.load_default(size=34)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    where: dict[str, tuple[int, int, int, int]] = {}
    for row, words in enumerate(LINES):
        x, y = 60, 60 + row * 110
        for word in words:
            box = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, font=font, fill="black")
            where[word] = (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
            x = box[2] + 24
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), where


def grid(value: float, size: int) -> int:
    return round(value / size * 999)


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_word_boxes_for_the_upstream_engine_land_on_the_rendered_words(
        gateway: str, upstream: FakeUpstream) -> None:
    """The model's block text, read a little differently from the page ("2O41", a word that
    is not there), aligned to the words the lite engine finds inside the block's box."""
    require("tesserocr", "the lite extra")
    image, where = rendered_page()
    first = f"[[{grid(50, WIDTH)}, {grid(50, HEIGHT)}, {grid(700, WIDTH)}, {grid(110, HEIGHT)}]]"
    second = f"[[{grid(50, WIDTH)}, {grid(160, HEIGHT)}, {grid(700, WIDTH)}, {grid(220, HEIGHT)}]]"
    upstream.default_reply = (f"<|ref|>text<|/ref|><|det|>{first}<|/det|>\nInvoice number 2O41\n\n"
                              f"<|ref|>text<|/ref|><|det|>{second}<|/det|>\nTotal due 37.50 EUR paid")
    upstream.logprobs_fn = scripted({"EUR": -1.2})
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(image), "output": "json", "word_boxes": True},
                   timeout=120)
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    blocks = page["blocks"]
    assert [[w["text"] for w in b["words"]] for b in blocks] == [
        ["Invoice", "number", "2O41"], ["Total", "due", "37.50", "EUR", "paid"]]
    for block in blocks:
        assert " ".join(w["text"] for w in block["words"]) == block["text"]
        for word in block["words"]:
            truth = where.get(word["text"].replace("2O41", "2041"))
            if truth is None:  # "paid" is not on the page: no box made up for it
                assert word["box_px"] is None
                continue
            assert word["box_px"] is not None, word
            assert overlap(word["box_px"], truth) > 0.5, (word, truth)
    eur = blocks[1]["words"][3]
    assert eur["confidence"] == pytest.approx(math.exp(-1.2))  # the model's confidence, the reader's box


def test_word_boxes_need_json_output(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(png_bytes()), "word_boxes": True}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "word_boxes"
    assert upstream.requests == []


def test_word_boxes_without_the_lite_engine_is_a_clear_400(
        upstream: FakeUpstream, fake_upstream: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import openai_ocr.runtime

    monkeypatch.setattr(openai_ocr.runtime, "lite_helper", lambda *args: None)  # as without the lite extra
    with serve(gateway_settings(fake_upstream[1])) as (url, _):
        r = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes()), "output": "json",
                                           "word_boxes": True}, timeout=30)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == "word_boxes" and "pip install 'openai-ocr[lite]'" in error["message"]
        assert upstream.requests == []
        assert ocr(url, output="json")["pages"][0]["blocks"] is not None  # the rest still works
