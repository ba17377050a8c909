"""Archival files from OCR results: pages + blocks + words -> searchable PDF, hOCR, ALTO.

`layout` places every line and word of a page on it (the engine's word boxes where it has
them, else each block's lines spread over its box); `pdf`, `hocr` and `alto` write a
document from those layouts, page by page; `writer.write_archive` is the one entry point,
run by the service in its worker processes. Imports nothing above `ocr`, `inputs` and
`protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

ArchivalName = Literal["pdf", "hocr", "alto"]


@dataclass(frozen=True)
class ArchivalFormat:
    name: ArchivalName
    media_type: str
    suffix: str
    """What the file's name ends with: NAME.ocr.pdf, NAME.hocr, NAME.alto.xml."""


FORMATS: dict[str, ArchivalFormat] = {
    "pdf": ArchivalFormat("pdf", "application/pdf", ".ocr.pdf"),
    "hocr": ArchivalFormat("hocr", "application/xhtml+xml", ".hocr"),
    "alto": ArchivalFormat("alto", "application/xml", ".alto.xml"),
}


def is_archival(output: str) -> bool:
    return output in FORMATS


def output_name(source: str | None, output: str) -> str:
    """The file name of a result: the source's name without its extension, plus the format's
    suffix (`report.pdf` -> `report.ocr.pdf`); `document` when there is no name."""
    stem = PurePath(source).stem if source else ""
    stem = "".join(ch for ch in stem if ch.isprintable() and ch not in '/\\"') or "document"
    return stem + FORMATS[output].suffix


def media_type_of(filename: str) -> str | None:
    """The media type of a file this package names (None for other names)."""
    for fmt in FORMATS.values():
        if filename.endswith(fmt.suffix):
            return fmt.media_type
    return None
