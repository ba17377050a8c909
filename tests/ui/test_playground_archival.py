"""The playground's **Get file**: after a file is read, the searchable PDF, hOCR or ALTO of it
downloads in a real browser (Debian's headless Chromium, the lite engine), named as the
server names it, and holds the page's text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from openai_ocr.settings import load_settings
from tests.archival import alto_errors, alto_words, pdf_text
from tests.helpers import require, serve
from tests.ui.browser import REPORT_LINES, chromium, png, report_page

require("rapidocr", "the lite extra")
require("playwright", "the dev extra")
require("pikepdf", "the pdf extra")

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(load_settings(overrides={"engine": {"kind": "lite"}})) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(f"{server}/playground")
        assert tab.is_disabled("#archive")  # nothing read yet
        tab.set_input_files("#file", [{"name": "report.png", "mimeType": "image/png", "buffer": png(report_page())}])
        tab.click("#run")
        tab.wait_for_function("() => !window.playground.state.running")
        yield tab
        own = urlsplit(server).netloc
        assert [u for u in requests if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own] == []
        context.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def get_file(page: Any, output: str) -> tuple[str, bytes]:
    page.select_option("#archive-format", output)
    with page.expect_download() as download:
        page.click("#archive")
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    return download.value.suggested_filename, Path(download.value.path()).read_bytes()


def test_get_file_downloads_the_searchable_pdf(page: Any) -> None:
    assert page.is_enabled("#archive")
    name, data = get_file(page, "pdf")
    assert name == "report.ocr.pdf" and data.startswith(b"%PDF-")
    text = " ".join(words(pdf_text(data)))
    for line in REPORT_LINES:
        assert " ".join(words(line)) in text


def test_get_file_downloads_alto(page: Any) -> None:
    name, data = get_file(page, "alto")
    assert name == "report.alto.xml" and alto_errors(data.decode()) == []
    found = " ".join(words(" ".join(w.text for w in alto_words(data.decode()))))
    assert " ".join(words(REPORT_LINES[0])) in found
