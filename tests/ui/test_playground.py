"""The playground in a real browser (Debian's headless Chromium) against a real server (lite engine).

What a person sees: text streaming in before the end, one box per block where `boxes_px`
says, tables as tables, the server's error message, and no request to another host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from openai_ocr.server import create_app
from openai_ocr.settings import load_settings
from tests.helpers import require, running_server
from tests.ui.browser import (
    BROWSER_ACCEPT,
    CHART_BOX,
    GEOMETRY_JS,
    PDF_WORDS,
    REPORT_LINES,
    box_misplacements,
    chromium,
    png,
    report_page,
    shown_json,
    three_page_pdf,
)

require("rapidocr", "the lite extra")
require("playwright", "the dev extra")

from openai_ocr.engines.lite.engine import LiteEngine  # noqa: E402

TIMEOUT_MS = 90_000


class HoldingLiteEngine(LiteEngine):
    """The lite engine, able to hold a document's later pages until the test lets them go:
    the test sees the document in progress when it means to, however fast the engine is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages_let_through: int | None = None
        """Pages streamed before the rest wait for `go` (None: none wait)."""
        self.go = threading.Event()
        self.pages = 0

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[Any]:  # type: ignore[override]
        self.pages += 1
        if self.pages_let_through is not None and self.pages > self.pages_let_through:
            await asyncio.to_thread(self.go.wait, TIMEOUT_MS / 1000)
        async for chunk in super().stream(body):
            yield chunk

    @contextmanager
    def holding_after(self, pages: int) -> Iterator[None]:
        self.pages, self.pages_let_through = 0, pages
        self.go.clear()
        try:
            yield
        finally:
            self.go.set()
            self.pages_let_through = None


@pytest.fixture(scope="module")
def engine() -> HoldingLiteEngine:
    return HoldingLiteEngine(load_settings(overrides={"engine": {"kind": "lite"}}))


@pytest.fixture(scope="module")
def server(engine: HoldingLiteEngine) -> Iterator[str]:
    with running_server(create_app(engine.settings, engine)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class Visit:
    """One browser tab on the playground, recording every request it makes."""

    def __init__(self, browser: Any, server: str, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.requests: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.server = server
        self.page.goto(f"{server}/playground")
        self.page.wait_for_function("() => document.getElementById('server-info').textContent.includes('lite')")

    def foreign_requests(self) -> list[str]:
        own = urlsplit(self.server).netloc
        return [url for url in self.requests
                if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != own]

    def upload(self, *files: tuple[str, str, bytes], mode: str = "markdown") -> None:
        self.page.set_input_files("#file", [{"name": n, "mimeType": t, "buffer": b} for n, t, b in files])
        self.page.select_option("#mode", mode)
        self.page.click("#run")

    def wait_done(self, ok: bool = True) -> None:
        self.page.wait_for_function("() => !window.playground.state.running")
        if ok:
            assert self.page.locator("#error").is_hidden(), self.page.inner_text("#error")

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def visit(browser: Any, server: str) -> Iterator[Visit]:
    tab = Visit(browser, server)
    yield tab
    assert tab.foreign_requests() == []
    tab.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_root_serves_the_page_to_a_browser(visit: Visit) -> None:
    visit.page.goto(f"{visit.server}/")
    assert visit.page.title() == "openai-ocr playground"
    assert httpx.get(f"{visit.server}/", headers={"Accept": BROWSER_ACCEPT}).headers["content-type"].startswith(
        "text/html")


def test_an_image_is_read_with_one_box_per_block_in_place(visit: Visit) -> None:
    page = visit.page
    visit.upload(("report.png", "image/png", png(report_page())))
    visit.wait_done()
    assert "done" in page.inner_text("#queue")
    answer = shown_json(page)
    (result,) = answer["pages"]
    assert (result["width"], result["height"]) == (1000, 760)
    assert len(result["blocks"]) >= 3
    geometry = page.evaluate(GEOMETRY_JS)
    assert geometry["loaded"]
    assert box_misplacements(geometry, result) == []
    assert len({b["block"] for b in geometry["boxes"]}) == len(result["blocks"])
    rendered = page.inner_text("#panel-rendered")
    for line in REPORT_LINES:
        assert " ".join(words(line)) in " ".join(words(rendered))
    title = result["blocks"][0]
    assert title["label"] == "title" and page.inner_text("#panel-rendered h1") == REPORT_LINES[0]
    legend = page.inner_text("#legend")
    assert "title (1)" in legend and "text" in legend
    # hovering a box highlights its text, and back
    page.hover('#overlay .box[data-block="1"]')
    assert page.get_attribute('.md-block[data-block="1"]', "class").split() == ["md-block", "hl"]
    page.hover('.md-block[data-block="0"]')
    assert "hl" in page.get_attribute('#overlay .box[data-block="0"]', "class")
    # raw text and markdown tabs
    page.click("#tab-text")
    assert "<|ref|>title<|/ref|>" in page.inner_text("#panel-text")
    page.click("#tab-markdown")
    assert page.inner_text("#panel-markdown").startswith("# " + REPORT_LINES[0])
    # the JSON tab downloads the whole answer (page images included, where the view abbreviates them)
    page.click("#tab-json")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "report.json"
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["pages"][0]["blocks"] == result["blocks"] and saved["model"] == answer["model"]


def test_a_pdf_streams_page_by_page_and_shows_each_rendered_page(visit: Visit, engine: HoldingLiteEngine) -> None:
    page = visit.page
    with engine.holding_after(1):  # pages 2 and 3 wait until page 1 was seen
        visit.upload(("three.pdf", "application/pdf", three_page_pdf()))
        first = page.wait_for_function("""() => {
            const text = document.getElementById('panel-text').textContent;
            if (!text.includes('alpha')) return null;
            return {state: document.body.dataset.state, progress: document.getElementById('progress-text').textContent,
                    text};
        }""").json_value()
        # the first page's text is on screen while the document is still being read
        assert first["state"] == "running", first
        assert re.search(r"page [12] of 3", first["progress"]), first
        assert "charlie" not in first["text"]
    visit.wait_done()
    assert re.search(r"3 pages in \d+\.\d s", page.inner_text("#progress-text"))
    answer = shown_json(page)
    assert [p["index"] for p in answer["pages"]] == [1, 2, 3]
    assert page.locator("#page-tabs button").count() == 3
    for number, word in enumerate(PDF_WORDS, start=1):
        page.click(f"#page-tabs button:nth-child({number})")
        result = answer["pages"][number - 1]
        assert word in words(result["text"])
        page.wait_for_function("() => { const i = document.getElementById('page-image');"
                               " return i.complete && i.naturalWidth > 0; }")
        geometry = page.evaluate(GEOMETRY_JS)
        assert {b["page"] for b in geometry["boxes"]} == {number}
        assert box_misplacements(geometry, result) == []
        natural = page.evaluate("() => [document.getElementById('page-image').naturalWidth,"
                                " document.getElementById('page-image').naturalHeight]")
        assert natural == [result["width"], result["height"]]  # the server's rendering of the page
    rendered = page.inner_text("#panel-rendered")
    assert all(word in words(rendered) for word in PDF_WORDS)


def test_locate_draws_the_boxes_of_the_text_found(visit: Visit) -> None:
    page = visit.page
    assert page.locator("#ref").is_hidden()
    page.select_option("#mode", "locate")
    page.fill("#ref", "Pears")
    page.set_input_files("#file", [{"name": "report.png", "mimeType": "image/png", "buffer": png(report_page())}])
    page.click("#run")
    visit.wait_done()
    (result,) = shown_json(page)["pages"]
    assert [b["label"] for b in result["blocks"]] == ["Pears"]
    geometry = page.evaluate(GEOMETRY_JS)
    assert box_misplacements(geometry, result) == []
    x0, y0, width, _ = geometry["image"]
    (box,) = geometry["boxes"]
    # the word sits in the table's first column, third row (report_page draws it at x 80, y 480..560)
    left, top = (box["rect"][0] - x0) * 1000 / width, (box["rect"][1] - y0) * 1000 / width
    assert 60 <= left <= 100 and 480 <= top <= 560, box


def test_files_queue_up_and_a_corrupt_one_shows_the_servers_message(visit: Visit) -> None:
    page = visit.page
    corrupt = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage"
    expected = httpx.post(f"{visit.server}/ocr/stream", timeout=30,
                          files={"file": ("broken.pdf", corrupt, "application/pdf")}).json()["error"]["message"]
    small = png(report_page().crop((0, 0, 1000, 300)))
    visit.upload(("broken.pdf", "application/pdf", corrupt), ("top.png", "image/png", small))
    visit.wait_done()  # the last file, read after the broken one, is shown without an error
    assert page.locator("#queue li").all_inner_texts() == ["broken.pdf\nerror", "top.png\ndone"]
    assert REPORT_LINES[0] in page.inner_text("#panel-rendered")
    page.click("#queue li:first-child button")
    alert = page.locator("#error")
    assert alert.is_visible()
    assert expected in alert.inner_text() and alert.inner_text().startswith("400")
    assert page.locator("#results").is_hidden()  # nothing was read: no empty panes


def _canned_answer() -> dict[str, Any]:
    """An /ocr/file answer as DeepSeek-OCR gives it for a page with a table and a figure.

    One table cell carries markup that must not survive: a script, an event handler, an image.
    """
    page_png = png(report_page(chart=True))
    crop = png(report_page(chart=True).crop(CHART_BOX))
    table = ("<table><tr><td>Item</td><td>Quantity</td><td>Price</td></tr>"
             "<tr><td onclick=\"alert(1)\">Apples<script>window.hacked=1</script>"
             "<img src=x onerror=\"window.hacked=2\"></td><td>120</td><td>36.00</td></tr>"
             "<tr><td>Pears</td><td colspan=\"2\">75 at 27.50</td></tr></table>")
    blocks = [
        {"label": "title", "boxes_px": [[60.0, 50.0, 480.0, 110.0]], "text": "# Quarterly report"},
        {"label": "text", "boxes_px": [[60.0, 160.0, 700.0, 190.0], [60.0, 220.0, 800.0, 250.0]],
         "text": "Sales grew in **every** region this quarter. The table below lists the three largest orders."},
        {"label": "table", "boxes_px": [[60.0, 320.0, 860.0, 560.0]], "text": table},
        {"label": "image", "boxes_px": [[float(v) for v in CHART_BOX]], "text": ""},
    ]
    markdown = "\n\n".join([blocks[0]["text"], blocks[1]["text"], table, "![](images/1_0.png)"])
    return {"request_id": "r", "text": "", "model": "m", "finish_reason": "stop", "page_count": 1,
            "processing_time": 1.9,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "pages": [{"index": 1, "width": 1000, "height": 760, "text": "", "markdown": markdown,
                       "blocks": blocks, "finish_reason": "stop", "usage": {}, "images": [
                           {"name": "images/1_0.png", "box_px": list(CHART_BOX),
                            "image_base64": base64.b64encode(crop).decode()}],
                       "image_base64": base64.b64encode(page_png).decode()}]}


def test_tables_render_as_tables_and_nothing_else_gets_through(visit: Visit) -> None:
    page = visit.page
    answer = _canned_answer()
    page.evaluate("(answer) => window.playground.showResponse('canned.png', answer)", answer)
    cells = page.eval_on_selector_all("#panel-rendered table tr", "(rows) => rows.map("
                                      "(r) => [...r.children].map((c) => [c.tagName, c.textContent, c.colSpan]))")
    assert cells == [[["TD", "Item", 1], ["TD", "Quantity", 1], ["TD", "Price", 1]],
                     [["TD", "Apples", 1], ["TD", "120", 1], ["TD", "36.00", 1]],
                     [["TD", "Pears", 1], ["TD", "75 at 27.50", 2]]]
    assert page.evaluate("() => window.hacked") is None
    assert page.locator("#panel-rendered script, #panel-rendered [onclick], #panel-rendered [onerror]").count() == 0
    figure = page.get_attribute("#panel-rendered figure img", "src")
    assert figure == "data:image/png;base64," + answer["pages"][0]["images"][0]["image_base64"]
    assert page.inner_text("#panel-rendered strong") == "every"
    page.wait_for_function("() => document.getElementById('page-image').naturalWidth > 0")
    geometry = page.evaluate(GEOMETRY_JS)
    assert box_misplacements(geometry, answer["pages"][0]) == []
    assert len({b["block"] for b in geometry["boxes"]}) == 4 and len(geometry["boxes"]) == 5
    assert [b["label"] for b in geometry["boxes"]] == ["title", "text", "text", "table", "image"]


def test_phone_width_stacks_the_panes_and_dark_mode_applies(browser: Any, server: str) -> None:
    tab = Visit(browser, server, viewport={"width": 390, "height": 844}, color_scheme="dark")
    try:
        tab.page.evaluate("(answer) => window.playground.showResponse('canned.png', answer)", _canned_answer())
        image = tab.page.locator("#viewer").bounding_box()
        text = tab.page.locator(".text-pane").bounding_box()
        assert image and text and text["y"] >= image["y"] + image["height"]  # one column
        assert image["width"] <= 390
        background = tab.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 27)"
        assert tab.page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert tab.foreign_requests() == []
    finally:
        tab.close()
