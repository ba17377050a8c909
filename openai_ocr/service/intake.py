"""Request inputs into Documents: uploads, base64, stored files and chat images, under the limits.

The one place inputs are checked and pages decoded: containers checked on the loop (small)
or in a thread, everything else probed and rendered in the decoder processes, each page under
the server-wide pixel budget and the request's deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from openai_ocr.errors import BadRequest, PayloadTooLarge, excerpt
from openai_ocr.inputs.documents import (
    Document,
    ImageInput,
    decode_base64_payload,
    is_data_url,
    open_checked_image,
    probe_document,
    render_page,
)
from openai_ocr.inputs.office import maybe_office, probe_office
from openai_ocr.inputs.page_ranges import PageSpec
from openai_ocr.inputs.pool import DecodePool
from openai_ocr.inputs.text_density import estimate_encoded
from openai_ocr.protocol.ocr import OCRRequest
from openai_ocr.service.budget import CostBudget
from openai_ocr.service.chat_policy import set_image_url
from openai_ocr.service.document_limits import current_limits
from openai_ocr.service.shared_reads import SharedReads, remove, spill
from openai_ocr.settings import Settings
from openai_ocr.storage.base import StateStore
from openai_ocr.telemetry import span

INLINE_CHECK_BYTES = 1024 * 1024
"""Inputs up to this size have their container checked on the event loop (under 1 ms)."""


def _declares(url: str, mime: str) -> bool:
    """Whether a data URL says `data:<mime>;base64,` (any case), so it can go on as it is."""
    prefix = f"data:{mime};base64,"
    return url.lstrip()[:len(prefix)].lower() == prefix


class DocumentIntake:
    """Owns the decoder processes and the pixel budget (one per app, shared by every route)."""

    def __init__(self, settings: Settings, store: StateStore | None = None) -> None:
        self.settings = settings
        #: uploaded files; None when the Files API is off
        self.store = store
        budget = settings.budget
        self.pool = DecodePool(budget.decode_workers, memory_limit_mb=budget.decode_memory_mb)
        self.budget = CostBudget(budget.max_pixels_in_flight, budget.max_pages_in_flight,
                                 budget.max_wait_s)
        self.shared = SharedReads()

    async def start(self) -> None:
        await self.pool.start()

    def close(self) -> None:
        self.pool.close()

    def deadline(self) -> float:
        """The time (time.monotonic) by which a request (or a batch line) starting now must be done."""
        return time.monotonic() + current_limits(self.settings).timeout_s

    async def file_bytes(self, file_id: str, owner: str | None, param: str = "file_id") -> bytes:
        """The body of an uploaded file the caller owns (404 for anybody else's)."""
        if self.store is None:
            raise BadRequest("uploaded files are not enabled on this server", param=param)
        limit = current_limits(self.settings).max_bytes
        stored = await asyncio.to_thread(self.store.get_file, file_id, owner or "anonymous")
        if stored.bytes > limit:
            larger = " (the Batch API reads larger documents)" if self._batch_reads(stored.bytes) else ""
            raise PayloadTooLarge(f"file {excerpt(file_id)} is larger than {limit} bytes{larger}",
                                  param=param)
        return await asyncio.to_thread(self.store.read_file, file_id, owner or "anonymous")

    async def open_bytes(self, data: bytes, *, pages: PageSpec = None, dpi: int | None = None,
                         param: str = "file", deadline: float | None = None,
                         path: str | None = None) -> Document:
        """Validate an upload (image, multi-frame TIFF/GIF, PDF, or an Office document, made a
        PDF by LibreOffice) and select its pages.

        Only headers are read here, in a decoder process; the pages decode later, one by one,
        each under the pixel budget. A large PDF of several pages is read by the decoder
        processes from a file: `path` where the caller has one, else a temporary file.
        """
        with span("open document", {"ocr.input.bytes": len(data), "ocr.param": param}) as opened:
            document = await self._open_bytes(data, pages, dpi, param, deadline)
            document.input_bytes = len(data)
            opened.set_attribute("ocr.document.kind", document.kind)
            opened.set_attribute("ocr.document.pages", len(document.pages))
        if document.kind == "pdf" and len(document.pages) > 1:
            if path is not None and document.data is data:
                document.path = path
            elif (spilled := await asyncio.to_thread(spill, document.data)) is not None:
                document.path = spilled
                document.on_close(lambda: remove(spilled))
        return document

    async def _open_bytes(self, data: bytes, pages: PageSpec, dpi: int | None, param: str,
                          deadline: float | None) -> Document:
        limits, scope = self.settings.limits, current_limits(self.settings)
        deadline = deadline or self.deadline()
        document = await self._checked_image(data, pages, param)
        if document is None:
            probe = dict(pages=pages, dpi=dpi or self.settings.documents.dpi,
                         max_pages=scope.max_pages, max_pixels=limits.max_image_pixels,
                         max_bytes=scope.max_bytes, param=param,
                         max_aspect_ratio=self.settings.budget.max_aspect_ratio)
            if maybe_office(data):  # an Office document becomes its PDF (LibreOffice, in a worker)
                data, info = await self.pool.run(probe_office, data, **probe, deadline=deadline,
                                                 time_left=deadline - time.monotonic())
            else:
                info = await self.pool.run(probe_document, data, **probe, deadline=deadline)
            document = Document(data, info, max_pixels=limits.max_image_pixels,
                                max_bytes=scope.max_bytes, param=param)
        document.deadline = deadline
        total = sum(document.info.page_pixels.values())
        if total > scope.max_pixels:
            raise PayloadTooLarge(f"the selected pages need {total} decoded pixels; at most "
                                  f"{scope.max_pixels} per request (select fewer pages)",
                                  param="pages")
        return document

    def _batch_reads(self, size: int) -> bool:
        """Whether a batch line could read a document of `size` bytes that this request cannot."""
        batches = self.settings.batches
        return batches.enabled and size <= batches.max_document_bytes

    async def _checked_image(self, data: bytes, pages: PageSpec, param: str) -> Document | None:
        """A PNG/JPEG/WebP page checked from its container, in microseconds, here; large
        files in a thread (the check reads every byte once)."""
        limits, scope = self.settings.limits, current_limits(self.settings)
        check = functools.partial(
            open_checked_image, data, pages=pages, max_pages=scope.max_pages,
            max_pixels=limits.max_image_pixels, max_bytes=scope.max_bytes, param=param,
            max_aspect_ratio=self.settings.budget.max_aspect_ratio)
        return check() if len(data) <= INLINE_CHECK_BYTES else await asyncio.to_thread(check)

    async def open_stored(self, file_id: str, owner: str | None, *, pages: PageSpec = None,
                          dpi: int | None = None, param: str = "file_id",
                          document_param: str = "file") -> Document:
        """An uploaded file's document (`open_bytes`). The requests reading one file at the
        same time (the page ranges of one long PDF in a batch) share one copy of it and, for a
        large PDF, one temporary file; the last one closed drops them."""
        held, release = await self.shared.open(
            (owner or "anonymous", file_id), lambda: self.file_bytes(file_id, owner, param))
        try:
            document = await self.open_bytes(held.data, pages=pages, dpi=dpi, param=document_param,
                                             path=held.path)
        except BaseException:
            release()
            raise
        document.on_close(release)
        return document

    async def open_request(self, request: OCRRequest, owner: str | None = None) -> Document:
        """The input of a `/ocr` body: an uploaded file by id, or base64."""
        if request.file_id:
            return await self.open_stored(request.file_id, owner, pages=request.pages, dpi=request.dpi)
        param, value = request.payload
        data = decode_base64_payload(value, max_bytes=current_limits(self.settings).max_bytes,
                                     param=param)
        return await self.open_bytes(data, pages=request.pages, dpi=request.dpi, param=param)

    async def check_chat_images(self, body: dict[str, Any]) -> None:
        """Apply the image limits to the `data:` image parts of a client's chat request.

        The same 400/413 answers as the legacy routes, before anything reaches the engine,
        decoded in a decoder process under the pixel budget. What goes on is what was checked:
        a PNG, JPEG or WebP as sent, under its real media type (`data:text/html;base64,` of a
        PNG becomes `data:image/png;base64,`); any other format as the page the decoder made
        of it (PNG), as the legacy routes send it.
        """
        limits = self.settings.limits
        deadline = self.deadline()
        for message in body.get("messages", []):
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                ref = part.get("image_url") if isinstance(part, dict) else None
                url = ref.get("url") if isinstance(ref, dict) else ref
                if isinstance(url, str) and is_data_url(url):
                    data = decode_base64_payload(url, max_bytes=limits.max_file_bytes,
                                                 param="image_url")
                    document = await self.open_bytes(data, param="image_url", deadline=deadline)
                    image = document.ready  # the bytes as sent
                    if image is None:  # only a full decode tells
                        async with self.reserve(document, 1):
                            set_image_url(part, (await self.page(document, 1)).data_url())
                    elif not _declares(url, image.mime):
                        set_image_url(part, image.data_url())

    def reserve(self, document: Document, number: int) -> AbstractAsyncContextManager[None]:
        """Room in the server-wide pixel/page budget for one page, held for the block."""
        scope = current_limits(self.settings)
        return self.budget.reserve(document.info.page_pixels.get(number, 0), document.deadline,
                                   priority=scope.priority, wait_s=scope.budget_wait_s)

    async def page(self, document: Document, number: int, estimate: bool = False) -> ImageInput:
        """One page decoded or rendered in a decoder process, within the request's time;
        with `estimate`, its text estimated there too (`text_estimate`, for `resolution: auto`;
        an image sent on as it is gets decoded for it)."""
        with span("render page", {"ocr.page": number, "ocr.document.kind": document.kind}):
            return await self._page(document, number, estimate)

    async def _page(self, document: Document, number: int, estimate: bool) -> ImageInput:
        if document.ready is not None:
            if not estimate:
                return document.ready
            text = await self.pool.run(estimate_encoded, document.ready.data, deadline=document.deadline)
            return dataclasses.replace(document.ready, text_estimate=text)
        return await self.pool.run(render_page, document.source, document.info, number,
                                   max_pixels=document.max_pixels, max_bytes=document.max_bytes,
                                   param=document.param, deadline=document.deadline, estimate=estimate)
