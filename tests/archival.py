"""Readers of the archival outputs for the tests, each an independent tool: poppler's pdftotext
(`-bbox-layout`), pdftoppm and pdfinfo for PDFs; the ALTO 4.4 XSD (lxml) for ALTO; the hOCR
specification's checker (hocr-spec) for hOCR. Shared by the test modules (they import no test
module); no reader uses the code under test.
"""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import require, require_program

HERE = Path(__file__).resolve().parent / "outputs"
XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
POPPLER = "poppler-utils (`make poppler`)"


@dataclass(frozen=True)
class FoundWord:
    page: int
    """1-based, in the file's order."""
    text: str
    box: tuple[float, float, float, float]
    confidence: float | None = None


def _run(*command: str, data: bytes | None = None) -> bytes:
    require_program(command[0])
    with tempfile.TemporaryDirectory() as folder:
        args = list(command)
        if data is not None:
            source = Path(folder) / "in.pdf"
            source.write_bytes(data)
            args = [a if a != "IN" else str(source) for a in args]
        done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, (command, done.stderr.decode(errors="replace")[-2000:])
    return done.stdout


def pdf_text(pdf: bytes) -> str:
    """pdftotext's text of the whole document (its reading order)."""
    return _run("pdftotext", "-enc", "UTF-8", "IN", "-", data=pdf).decode()


def pdf_raw_text(pdf: bytes) -> str:
    """pdftotext -raw: the text in the order the content streams draw it."""
    return _run("pdftotext", "-raw", "-enc", "UTF-8", "IN", "-", data=pdf).decode()


def pdf_page_texts(pdf: bytes) -> list[str]:
    """pdftotext's text, page by page (pages split at form feeds)."""
    return pdf_text(pdf).split("\f")[:-1]


def pdf_words(pdf: bytes) -> list[FoundWord]:
    """Every word pdftotext finds with `-bbox-layout`, in points from the page's top left."""
    out = _run("pdftotext", "-bbox-layout", "-enc", "UTF-8", "IN", "-", data=pdf)
    root = ET.fromstring(out)
    words = []
    for number, page in enumerate(root.iter(f"{XHTML}page"), start=1):
        for word in page.iter(f"{XHTML}word"):
            box = tuple(float(word.get(k, "0")) for k in ("xMin", "yMin", "xMax", "yMax"))
            words.append(FoundWord(number, word.text or "", box))  # type: ignore[arg-type]
    return words


def pdf_info(pdf: bytes) -> dict[str, str]:
    out = _run("pdfinfo", "IN", data=pdf).decode()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def pdf_xmp(pdf: bytes) -> str:
    """The document's XMP metadata as pdfinfo prints it."""
    return _run("pdfinfo", "-meta", "IN", data=pdf).decode()


def pdf_fonts(pdf: bytes) -> list[list[str]]:
    """pdffonts' table: name, type, encoding, emb, sub, uni, ..."""
    out = _run("pdffonts", "IN", data=pdf).decode().splitlines()[2:]
    return [line.split() for line in out]


def pdf_pngs(pdf: bytes, dpi: int = 36) -> list[bytes]:
    """Each page rendered by pdftoppm (what a viewer shows)."""
    require_program("pdftoppm")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(source), str(Path(folder) / "p")],
                       check=True, timeout=120, capture_output=True)
        return [p.read_bytes() for p in sorted(Path(folder).glob("p-*.png"))]


def hocr_words(text: str) -> list[FoundWord]:
    """Every `ocrx_word` of an hOCR document with its `bbox` and `x_wconf` (0..1)."""
    root = ET.fromstring(text.encode())
    words = []
    for number, page in enumerate((e for e in root.iter(f"{XHTML}div") if e.get("class") == "ocr_page"), start=1):
        for word in page.iter(f"{XHTML}span"):
            if word.get("class") != "ocrx_word":
                continue
            title = word.get("title", "")
            box = tuple(float(v) for v in re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", title).groups())  # type: ignore[union-attr]
            conf = re.search(r"x_wconf (\d+)", title)
            words.append(FoundWord(number, word.text or "", box,  # type: ignore[arg-type]
                                   int(conf.group(1)) / 100 if conf else None))
    return words


def hocr_report(text: str) -> Any:
    """hocr-spec's report on a document (its `is_valid()`, its `items`)."""
    spec = require("hocr_spec", "the dev extra")
    validator = spec.HocrValidator("standard")
    with tempfile.NamedTemporaryFile("w", suffix=".hocr", encoding="utf-8", delete=False) as out:
        out.write(text)
    try:
        return validator.validate(out.name, parse_strict=False)
    finally:
        Path(out.name).unlink()


def alto_schema() -> Any:
    etree = require("lxml.etree", "the dev extra")
    xsd = (HERE / "alto-4-4.xsd").read_text().replace(
        "http://www.loc.gov/standards/xlink/xlink.xsd", (HERE / "xlink-stub.xsd").as_uri())
    return etree.XMLSchema(etree.parse(io.BytesIO(xsd.encode()), base_url=str(HERE) + "/"))


def alto_errors(text: str) -> list[str]:
    """What the ALTO 4.4 schema finds wrong with a document ([] when it is valid)."""
    etree = require("lxml.etree", "the dev extra")
    schema = alto_schema()
    schema.validate(etree.fromstring(text.encode()))
    return [str(e) for e in schema.error_log]


def alto_words(text: str) -> list[FoundWord]:
    """Every `String` of an ALTO document with its box (HPOS, VPOS, WIDTH, HEIGHT) and WC."""
    root = ET.fromstring(text.encode())
    words = []
    for number, page in enumerate(root.iter(f"{ALTO}Page"), start=1):
        for string in page.iter(f"{ALTO}String"):
            x, y, w, h = (float(string.get(k, "0")) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
            wc = string.get("WC")
            words.append(FoundWord(number, string.get("CONTENT", ""), (x, y, x + w, y + h),
                                   float(wc) if wc is not None else None))
    return words


def near(a: tuple[float, ...], b: tuple[float, ...], tolerance: float) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def inside(inner: tuple[float, ...], outer: tuple[float, ...], slack: float = 0.0) -> bool:
    """Whether `inner`'s centre lies in `outer` (grown by `slack`)."""
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] - slack <= cx <= outer[2] + slack and outer[1] - slack <= cy <= outer[3] + slack
