#!/usr/bin/env python
"""Screenshots of the playground's main states, into docs/playground-*.png.

Starts a lite-engine server on loopback, drives the page in Debian's headless Chromium
(the same set-up as tests/ui) and saves: an image read in markdown mode (light, and dark),
a 3-page PDF, an error, a page with a table (a canned DeepSeek-OCR answer: the lite engine
writes no table blocks), and a phone-width view.

    python scripts/playground_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openai_ocr.engines.lite.engine import LiteEngine  # noqa: E402
from openai_ocr.server import create_app  # noqa: E402
from openai_ocr.settings import load_settings  # noqa: E402
from tests.helpers import running_server  # noqa: E402
from tests.ui.browser import chromium, png, report_page, three_page_pdf  # noqa: E402
from tests.ui.test_playground import _canned_answer  # noqa: E402

DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}


def shoot(browser, url: str, out: Path, name: str, *, files=(), mode: str = "markdown", canned=None,
          hover: str | None = None, full_page: bool = False, **context) -> None:
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{url}/playground")
    page.wait_for_function("() => document.getElementById('server-info').textContent.length > 0")
    if files:
        page.set_input_files("#file", [{"name": n, "mimeType": t, "buffer": b} for n, t, b in files])
        page.select_option("#mode", mode)
        page.click("#run")
        page.wait_for_function("() => !window.playground.state.running")
    if canned is not None:
        page.evaluate("(answer) => window.playground.showResponse('invoice.png', answer)", canned)
    page.wait_for_function("() => { const i = document.getElementById('page-image');"
                           " return !i.getAttribute('src') || (i.complete && i.naturalWidth > 0); }")
    if hover:
        page.hover(hover)
    path = out / f"playground-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(path)
    ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(overrides={"engine": {"kind": "lite"}})
    report = ("report.png", "image/png", png(report_page()))
    with running_server(create_app(settings, LiteEngine(settings))) as url, chromium() as browser:
        shoot(browser, url, args.out, "light", files=[report], hover='#overlay .box[data-block="2"]',
              viewport=DESKTOP)
        shoot(browser, url, args.out, "dark", files=[report], viewport=DESKTOP, color_scheme="dark")
        shoot(browser, url, args.out, "pdf", files=[("three.pdf", "application/pdf", three_page_pdf())],
              viewport=DESKTOP)
        shoot(browser, url, args.out, "error", files=[("broken.pdf", "application/pdf", b"%PDF-1.7 garbage")],
              viewport={"width": 1000, "height": 520})
        shoot(browser, url, args.out, "table", canned=_canned_answer(), viewport=DESKTOP)
        shoot(browser, url, args.out, "phone", canned=_canned_answer(), viewport=PHONE, color_scheme="dark",
              full_page=True)


if __name__ == "__main__":
    main()
