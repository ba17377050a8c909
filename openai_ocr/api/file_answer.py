"""The HTTP answer of an archival output: the file itself, streamed from disk.

`Content-Type` is the format's (application/pdf, application/xhtml+xml, application/xml),
`Content-Disposition` names the file (NAME.ocr.pdf, NAME.hocr, NAME.alto.xml), and `X-OCR-*`
headers carry what the JSON answer would say besides the text. The file is unlinked as soon
as it is open, so nothing is left behind when the client leaves mid-download.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from openai_ocr.service.archival import Produced

CHUNK = 256 * 1024

ARCHIVAL_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "The OCR answer as JSON; with `output` pdf, hocr or alto the file itself "
    "(Content-Disposition names it; X-OCR-Pages, X-OCR-Finish-Reason, X-OCR-Warnings and "
    "X-OCR-PDF-A describe it).",
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "application/xhtml+xml": {"schema": {"type": "string"}},
                "application/xml": {"schema": {"type": "string"}}}}}
"""OpenAPI documentation of the archival answers of `/ocr` and `/ocr/file`."""


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def header_safe(value: str) -> str:
    """A value an upstream chose (its model name), as a header may carry it: printable ASCII."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in value)[:200]


def file_response(produced: Produced) -> StreamingResponse:
    handle = open(produced.path, "rb")  # noqa: SIM115 - closed by the body iterator
    size = os.fstat(handle.fileno()).st_size
    produced.discard()  # the open handle keeps the data until it is closed

    def body() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    answer = produced.answer
    headers = {"Content-Disposition": content_disposition(produced.filename), "Content-Length": str(size),
               "X-OCR-Pages": str(answer.page_count), "X-OCR-Model": header_safe(answer.model),
               "X-OCR-Finish-Reason": header_safe(answer.finish_reason or ""),
               "X-OCR-Warnings": str(len(answer.warnings)),
               "X-OCR-Processing-Time": f"{answer.processing_time:.3f}"}
    if produced.made.get("pdfa"):
        headers["X-OCR-PDF-A"] = str(produced.made["pdfa"])
    media_type = produced.format.media_type + ("" if produced.format.name == "pdf" else "; charset=utf-8")
    return StreamingResponse(body(), media_type=media_type, headers=headers)
