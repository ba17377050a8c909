"""Archival answers (`output` pdf, hocr, alto): the pages recognised as for `output=json`,
then written to one file by `openai_ocr.outputs` in a decoder process, under the request's
time (a request that runs out of it, or whose client leaves, has its writer killed).

The file goes to a temporary path; the HTTP layer streams it back (`/ocr`, `/ocr/file`), the
batch runner stores it in the Files API (`store_result`). Memory holds the input (as for any
request) and the pages' text and boxes, never the pages' pixels: the recognizer keeps only
their sizes, and the writer streams pages into the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai_ocr import __version__
from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import Document
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.translation import SamplingPlan
from openai_ocr.outputs import FORMATS, ArchivalFormat, output_name
from openai_ocr.outputs.writer import write_archive
from openai_ocr.protocol.ocr import OCRRequest, OCRResponse, ResultFile
from openai_ocr.service.recognition import Recognizer
from openai_ocr.storage.base import StateStore

logger = logging.getLogger(__name__)


@dataclass
class Produced:
    """A written archival file (a temporary path the caller consumes) and the answer's
    metadata (`text` empty, no `pages`)."""

    path: Path
    format: ArchivalFormat
    filename: str
    answer: OCRResponse
    made: dict[str, Any] = field(default_factory=dict)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def check_output(output: str) -> None:
    """400 where this server cannot write the format (the PDF writer's libraries missing)."""
    if output == "pdf":
        from openai_ocr.outputs.pdf import available

        missing = available()
        if missing:
            raise BadRequest(f"output=pdf needs the PDF writer, which this server lacks: {missing}",
                             param="output")


def json_options(options: OCROptions) -> OCROptions:
    """The options recognised for an archival output: JSON pages (blocks, words, confidence),
    no pixels kept (figure crops and page images are not part of the file)."""
    return options.model_copy(update={"output": "json", "include_images": False,
                                      "include_page_images": False})


class Archiver:
    """Reads a request's pages with its recognizer and writes them as one archival file."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.inputs = recognizer.inputs

    def plan(self, options: OCROptions) -> SamplingPlan:
        check_output(options.output)
        return self.recognizer.plan(json_options(options))

    async def read_request(self, request: OCRRequest, owner: str | None = None,
                           request_id: str | None = None) -> Produced:
        """A `/ocr` body (interactive or a batch line) with an archival `output`."""
        plan = self.plan(request)
        name = None
        if request.file_id and self.inputs.store is not None:
            stored = await asyncio.to_thread(self.inputs.store.get_file, request.file_id, owner or "anonymous")
            name = stored.filename
        with await self.inputs.open_request(request, owner) as document:
            return await self.produce(document, request, plan, request_id, name)

    async def read_bytes(self, data: bytes, options: OCROptions, filename: str | None = None,
                         request_id: str | None = None, param: str = "file") -> Produced:
        """An uploaded file with an archival `output`."""
        plan = self.plan(options)
        with await self.inputs.open_bytes(data, pages=options.pages, dpi=options.dpi,
                                          param=param) as document:
            return await self.produce(document, options, plan, request_id, filename)

    async def produce(self, document: Document, options: OCROptions, plan: SamplingPlan,
                      request_id: str | None, name: str | None) -> Produced:
        fmt = FORMATS[options.output]
        answer = await self.recognizer.recognize(document, json_options(options), plan, request_id)
        pages = answer.pages or []
        handle, path = tempfile.mkstemp(prefix="openai-ocr-", suffix=fmt.suffix)
        os.close(handle)
        try:
            made = await self.inputs.pool.run(
                write_archive, fmt.name, pages, path, source=document.data, kind=document.kind,
                name=name or "document", model=answer.model, version=__version__,
                dpi=document.info.dpi, deadline=document.deadline)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        logger.info("%s: %s of %d page(s), %d bytes", answer.request_id, fmt.name, len(pages), made["bytes"])
        return Produced(Path(path), fmt, output_name(name, fmt.name),
                        answer.model_copy(update={"text": "", "pages": None}), made)


async def store_result(store: StateStore, produced: Produced, owner: str) -> OCRResponse:
    """A batch line's file into the Files API (`batch_output`, counted against the quota);
    the answer names it."""
    try:
        stored = await asyncio.to_thread(store.add_file_from_path, owner, "batch_output", produced.filename,
                                         produced.path)
    finally:
        produced.discard()
    file = ResultFile(id=stored.id, filename=stored.filename, bytes=stored.bytes,
                      media_type=produced.format.media_type, format=produced.format.name,
                      pdfa=produced.made.get("pdfa"))
    return produced.answer.model_copy(update={"output_file": file})
