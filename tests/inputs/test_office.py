"""Office documents in: DOCX, PPTX and XLSX made here (python-docx, python-pptx, openpyxl),
made PDFs by LibreOffice in the decoder processes, read like any PDF. Their text is checked
with pdftotext on the conversion and with real OCR (the lite engine) through the routes."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openai_ocr.errors import EngineTimeout, PayloadTooLarge
from openai_ocr.inputs.office import OfficeFormat, convert_to_pdf, office_format, probe_office
from openai_ocr.settings import load_settings
from tests.archival import pdf_raw_text, pdf_text
from tests.fake_upstream import FakeUpstream
from tests.helpers import gateway_settings, require, require_program, serve, wait_until

require_program("soffice")
docx = require("docx", "the dev extra (python-docx)")
pptx = require("pptx", "the dev extra (python-pptx)")
openpyxl = require("openpyxl", "the dev extra")

LIMITS = dict(dpi=144, max_pages=10, max_pixels=64_000_000, max_bytes=50_000_000)


def make_docx(paragraphs: list[str], pages: int = 1) -> bytes:
    document = docx.Document()
    for page in range(pages):
        document.add_heading(paragraphs[0], 1)
        for text in paragraphs[1:]:
            document.add_paragraph(text)
        if page + 1 < pages:
            document.add_page_break()
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def slow_docx(rows: int = 6000) -> bytes:
    """A document LibreOffice takes far longer to lay out than the time limits of the tests
    below (a table of `rows` rows: about 5 s for 2,000 rows on 2 cores, growing faster than
    the rows), made in milliseconds: one row of python-docx's table, repeated in the XML."""
    import zipfile

    document = docx.Document()
    table = document.add_table(rows=1, cols=4)
    for column, cell in enumerate(table.rows[0].cells):
        cell.text = f"cell {column}"
    out = io.BytesIO()
    document.save(out)
    grown = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as source, \
            zipfile.ZipFile(grown, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "word/document.xml":
                text = data.decode()
                start = text.index("<w:tr>") if "<w:tr>" in text else text.index("<w:tr ")
                end = text.index("</w:tr>") + len("</w:tr>")
                data = (text[:start] + text[start:end] * rows + text[end:]).encode()
            target.writestr(item, data)
    return grown.getvalue()


def make_pptx(title: str, body: str) -> bytes:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = title
    slide.placeholders[1].text = body
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(cells: dict[str, str]) -> bytes:
    book = openpyxl.Workbook()
    for ref, value in cells.items():
        book.active[ref] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


DOCX = make_docx(["Quarterly Harvest", "Farmers gathered seventeen baskets of plums."])
PPTX = make_pptx("Lighthouse Survey", "Keepers counted eleven ships")
XLSX = make_xlsx({"A1": "Invoice", "B2": "Marmalade", "C3": "4242"})


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@pytest.mark.parametrize("data, kind, expected", [
    (DOCX, OfficeFormat("writer", "docx"), "Quarterly Harvest Farmers gathered seventeen baskets of plums."),
    (PPTX, OfficeFormat("impress", "pptx"), "Lighthouse Survey Keepers counted eleven ships"),
    (XLSX, OfficeFormat("calc", "xlsx"), "Invoice Marmalade 4242"),
], ids=["docx", "pptx", "xlsx"])
def test_each_format_becomes_a_pdf_holding_its_text(data: bytes, kind: OfficeFormat, expected: str) -> None:
    assert office_format(data) == kind
    pdf, info = probe_office(data, pages=None, **LIMITS)
    assert info.kind == "pdf" and info.page_count == 1 and info.pages == [1]
    assert words(pdf_text(pdf)) == words(expected)


def test_rtf_and_odf_are_known_and_other_zips_are_not() -> None:
    assert office_format(b"{\\rtf1\\ansi Hello}") == OfficeFormat("writer", "rtf")
    odt = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(odt, "w") as package:
        package.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    assert office_format(odt.getvalue()) == OfficeFormat("calc", "ods")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as package:
        package.writestr("readme.txt", "hello")
    assert office_format(other.getvalue()) is None


def test_a_long_document_is_exported_only_as_far_as_a_request_can_read() -> None:
    long = make_docx(["Chapter", "Some text."], pages=14)
    _, info = probe_office(long, pages="2-3", **LIMITS)
    assert info.pages == [2, 3] and info.page_count == 4  # exported to page 4: enough to know there is more
    with pytest.raises(PayloadTooLarge, match="more than 10 pages"):
        probe_office(long, pages=None, **LIMITS)


def office_processes(marker: str) -> list[str]:
    done = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return done.stdout.split()


def test_a_conversion_past_its_time_is_stopped_with_its_processes() -> None:
    started = time.monotonic()
    with pytest.raises(EngineTimeout):
        convert_to_pdf(slow_docx(), OfficeFormat("writer", "docx"), last_page=10_000, time_left=0.5)
    assert time.monotonic() - started < 15
    wait_until(lambda: not office_processes("openai-ocr-office-"), 10, "LibreOffice gone")


def test_a_worker_that_dies_takes_its_libreoffice_along(tmp_path: Path) -> None:
    """A request cancelled mid-conversion has its decoder process killed: the LibreOffice it
    started ends too (its timeout wrapper gets the parent-death signal)."""
    source = tmp_path / "big.docx"
    source.write_bytes(slow_docx())
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from openai_ocr.inputs.office import *; "
         "convert_to_pdf(open(sys.argv[1], 'rb').read(), OfficeFormat('writer', 'docx'), last_page=60, time_left=120)",
         str(source)], env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        wait_until(lambda: bool(office_processes("openai-ocr-office-")), 30, "LibreOffice started", poll_s=0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    wait_until(lambda: not office_processes("openai-ocr-office-"), 15, "LibreOffice gone after its worker")


@pytest.fixture(scope="module")
def lite_server() -> Iterator[str]:
    require("rapidocr", "the lite extra")
    with serve(load_settings(overrides={"engine": {"kind": "lite"}})) as (url, _):
        yield url


@pytest.mark.parametrize("name, data, expected", [
    ("report.docx", DOCX, "Quarterly Harvest Farmers gathered seventeen baskets of plums"),
    ("deck.pptx", PPTX, "Lighthouse Survey Keepers counted eleven ships"),
    ("book.xlsx", XLSX, "Invoice Marmalade 4242"),
])
def test_office_documents_come_back_with_their_text(lite_server: str, name: str, data: bytes, expected: str) -> None:
    r = httpx.post(f"{lite_server}/ocr/file", files={"file": (name, data)}, data={"mode": "free_ocr"}, timeout=300)
    assert r.status_code == 200, r.text
    found = words(r.json()["text"])
    assert sum(w in found for w in words(expected)) >= 0.8 * len(words(expected)), (found, expected)


def test_an_office_document_as_a_searchable_pdf_keeps_its_own_text(lite_server: str) -> None:
    r = httpx.post(f"{lite_server}/ocr/file", files={"file": ("deck.pptx", PPTX)}, data={"output": "pdf"},
                   timeout=300)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith('attachment; filename="deck.ocr.pdf"')
    drawn = words(pdf_raw_text(r.content))  # -raw: every text drawn (the default merges what overlaps)
    assert drawn.count("lighthouse") == 2 and drawn.count("eleven") == 2  # LibreOffice's text, and ours on it
    assert words(pdf_text(r.content)).count("lighthouse") == 1  # exactly on it: readers show it once


def test_without_libreoffice_an_office_file_is_a_415_that_names_it(
        fake_upstream: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import openai_ocr.inputs.office as office

    monkeypatch.setattr(office, "find_libreoffice", lambda: None)  # decoders in threads see it
    with serve(gateway_settings(fake_upstream[1], budget={"decode_workers": 0})) as (url, _):
        r = httpx.post(f"{url}/ocr/file", files={"file": ("report.docx", DOCX)}, timeout=60)
        assert r.status_code == 415, r.text
        assert "libreoffice-writer-nogui" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/ocr/file", files={"file": ("book.xlsx", XLSX)}, timeout=60)
        assert r.status_code == 415 and "libreoffice-calc-nogui" in r.json()["error"]["message"]
