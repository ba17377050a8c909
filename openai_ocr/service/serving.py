"""The legacy OCR service: decode inputs, translate to chat requests, shape the answers.

Holds no HTTP types, so the routes stay thin glue and the logic is testable alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError

from openai_ocr import __version__
from openai_ocr.api.protocol.ocr import (
    BatchItemResult,
    BatchResponse,
    EngineReachability,
    HealthResponse,
    OCRRequest,
    OCRResponse,
    StreamEvent,
)
from openai_ocr.engines.base import ChatEngine
from openai_ocr.errors import (
    BadRequest,
    InternalError,
    OCRError,
    PayloadTooLarge,
    UnprocessableEntity,
    validation_message,
)
from openai_ocr.inputs.documents import (
    Document,
    ImageInput,
    decode_base64_payload,
    is_data_url,
    load_image,
    open_document,
)
from openai_ocr.ocr.assembly import (
    PAGE_SPLIT,
    PageOutcome,
    assemble,
    length_warning,
    overall_finish_reason,
    sum_usage,
)
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.translation import (
    SamplingPlan,
    build_chat_request,
    chunk_delta,
    completion_result,
    plan_request,
    usage_of,
)
from openai_ocr.service.streams import gather_or_cancel, primed
from openai_ocr.settings import Settings
from openai_ocr.storage.store import Store

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    return f"ocr-{uuid.uuid4().hex}"


class OCRService:
    """One per app: the engine plus the settings every legacy route needs."""

    def __init__(self, engine: ChatEngine, settings: Settings, store: Store | None = None) -> None:
        self.engine = engine
        self.settings = settings
        #: uploaded files and batches; None when batches are off
        self.store = store

    def with_engine(self, engine: ChatEngine) -> OCRService:
        """The same service on another engine (the batch runner's share of the gate)."""
        return OCRService(engine, self.settings, self.store)

    async def file_bytes(self, file_id: str, owner: str | None, param: str = "file_id") -> bytes:
        """The body of an uploaded file the caller owns (404 for anybody else's)."""
        if self.store is None:
            raise BadRequest("uploaded files are not enabled on this server", param=param)
        limit = self.settings.limits.max_file_bytes
        stored = await asyncio.to_thread(self.store.get_file, file_id, owner or "anonymous")
        if stored.bytes > limit:
            raise PayloadTooLarge(f"file {file_id} is larger than {limit} bytes", param=param)
        return await asyncio.to_thread(self.store.read_file, file_id, owner or "anonymous")

    # -- inputs -----------------------------------------------------------------------
    async def open_bytes(self, data: bytes, options: OCROptions, param: str = "file") -> Document:
        """Validate an upload (image, multi-frame TIFF or PDF) and select its pages."""
        limits = self.settings.limits
        return await asyncio.to_thread(
            open_document, data, pages=options.pages,
            dpi=options.dpi or self.settings.documents.dpi, max_pages=limits.max_pages,
            max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes, param=param)

    async def open_request(self, request: OCRRequest, owner: str | None = None) -> Document:
        if request.file_id:
            return await self.open_bytes(await self.file_bytes(request.file_id, owner), request)
        param, value = request.payload
        data = decode_base64_payload(value, max_bytes=self.settings.limits.max_file_bytes,
                                     param=param)
        return await self.open_bytes(data, request, param=param)

    async def check_chat_images(self, body: dict[str, Any]) -> None:
        """Apply the image limits to the `data:` image parts of a client's chat request.

        The same 400/413 answers as the legacy routes, before anything reaches the engine;
        remote image URLs are left to the engine (vLLM fetches them itself).
        """
        limits = self.settings.limits
        for message in body.get("messages", []):
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                ref = part.get("image_url") if isinstance(part, dict) else None
                url = ref.get("url") if isinstance(ref, dict) else ref
                if isinstance(url, str) and is_data_url(url):
                    data = decode_base64_payload(url, max_bytes=limits.max_file_bytes,
                                                 param="image_url")
                    await asyncio.to_thread(load_image, data, max_pixels=limits.max_image_pixels,
                                            max_bytes=limits.max_file_bytes, param="image_url")

    async def _page(self, document: Document, number: int) -> ImageInput:
        return await asyncio.to_thread(document.page_image, number)

    # -- whole answers ----------------------------------------------------------------
    async def recognize(self, document: Document, options: OCROptions,
                        request_id: str | None = None) -> OCRResponse:
        """OCR of every selected page, concurrently (bounded), answered in page order."""
        started = time.perf_counter()
        plan = plan_request(options, self.settings.ocr)
        gate = asyncio.Semaphore(self.settings.documents.page_concurrency)
        keep_pixels = options.include_images

        async def one(number: int) -> PageOutcome:
            async with gate:
                image = await self._page(document, number)
                body = build_chat_request(self.engine.model, image, plan, stream=False)
                result = completion_result(await self.engine.complete(body))
            if not keep_pixels:  # hold only the size: long documents stay small in memory
                image = ImageInput(data=b"", mime=image.mime, width=image.width, height=image.height)
            return PageOutcome(number, image, result)

        outcomes = await gather_or_cancel(one(n) for n in document.pages)
        if keep_pixels:
            done = await asyncio.to_thread(assemble, outcomes, options.output, True, plan.max_tokens)
        else:
            done = assemble(outcomes, options.output, False, plan.max_tokens)
        for warning in done.warnings:
            logger.warning("%s", warning)
        return OCRResponse(
            request_id=request_id or new_request_id(), text=done.text,
            model=outcomes[0].result.model, finish_reason=done.finish_reason, usage=done.usage,
            prompt=plan.prompt, processing_time=round(time.perf_counter() - started, 4),
            page_count=len(outcomes), pages=done.pages, warnings=done.warnings)

    # -- streams ----------------------------------------------------------------------
    async def open_stream(self, document: Document, options: OCROptions) -> AsyncIterator[StreamEvent]:
        """Start a streamed recognition; raises before returning if the engine refuses it.

        The first page's first chunk is awaited here, so an unreachable engine or a rejected
        request is answered with a proper status code instead of an error inside a 200 stream.
        Pages stream one after the other, in order.
        """
        try:
            plan = plan_request(options, self.settings.ocr)
            image = await self._page(document, document.pages[0])
            chunks = await primed(self.engine.stream(
                build_chat_request(self.engine.model, image, plan, stream=True)))
        except BaseException:
            document.close()
            raise
        return self._stream_events(document, plan, image, chunks, new_request_id())

    async def _stream_events(self, document: Document, plan: SamplingPlan, image: ImageInput,
                             chunks: AsyncIterator[Any], request_id: str) -> AsyncIterator[StreamEvent]:
        model = self.engine.model
        usages: list[Usage] = []
        reasons: list[str | None] = []
        try:
            for position, number in enumerate(document.pages):
                if position:
                    yield StreamEvent(text=PAGE_SPLIT)
                    image = await self._page(document, number)
                    chunks = self.engine.stream(
                        build_chat_request(self.engine.model, image, plan, stream=True))
                yield StreamEvent(type="page", page=number, width=image.width, height=image.height)
                reason: str | None = None
                usage = Usage()
                try:
                    async for chunk in chunks:
                        model = chunk.model or model
                        if chunk.usage is not None:
                            usage = usage_of(chunk.usage)
                        text, finished = chunk_delta(chunk)
                        reason = finished or reason
                        if text:
                            yield StreamEvent(text=text, page=number)
                finally:
                    await chunks.aclose()  # type: ignore[attr-defined]
                usages.append(usage)
                reasons.append(reason)
                yield StreamEvent(type="page_end", page=number, finish_reason=reason, usage=usage,
                                  warning=length_warning(number, plan.max_tokens)
                                  if reason == "length" else None)
        except OCRError as exc:
            yield StreamEvent(type="error", error=exc.body().error, request_id=request_id)
            return
        finally:
            document.close()
        yield StreamEvent(type="done", finish_reason=overall_finish_reason(reasons),
                          usage=sum_usage(usages), model=model, request_id=request_id)

    # -- batches ----------------------------------------------------------------------
    async def batch(self, items: list[dict[str, Any]], owner: str | None = None) -> BatchResponse:
        limit = self.settings.limits.max_batch_items
        if len(items) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} requests; got {len(items)}",
                           param="requests")
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.settings.limits.batch_concurrency)

        async def run(index: int, item: dict[str, Any]) -> BatchItemResult:
            async with gate:
                return await self._batch_item(index, item, owner)

        results = await asyncio.gather(*(run(i, item) for i, item in enumerate(items)))
        ok = sum(r.status == "success" for r in results)
        return BatchResponse(results=list(results), succeeded=ok, failed=len(results) - ok,
                             total_processing_time=round(time.perf_counter() - started, 4))

    async def _batch_item(self, index: int, item: dict[str, Any], owner: str | None) -> BatchItemResult:
        request_id = new_request_id()
        try:
            request = OCRRequest.model_validate(item)
            with await self.open_request(request, owner) as document:
                answer = await self.recognize(document, request, request_id)
        except ValidationError as exc:
            error: OCRError = UnprocessableEntity(validation_message(exc.errors(), whole="item"))
        except OCRError as exc:
            error = exc
        except Exception:  # noqa: BLE001 - one item's bug must not lose the others' answers
            logger.exception("batch item %d failed", index)
            error = InternalError("internal error while processing this item")
        else:
            return BatchItemResult(index=index, status="success", status_code=200,
                                   **answer.model_dump(exclude={"status"}))
        return BatchItemResult(index=index, status="error", status_code=error.status_code,
                               request_id=request_id, error=error.body().error)

    # -- health -----------------------------------------------------------------------
    async def health(self) -> HealthResponse:
        status = await self.engine.status()
        return HealthResponse(
            status="healthy" if status.ready else "unavailable",
            model=self.engine.model, engine=self.engine.kind, model_loaded=status.ready,
            engine_status=EngineReachability(url=status.url, reachable=status.ready, detail=status.detail),
            version=__version__, timestamp=time.time())
