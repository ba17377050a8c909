"""The legacy OCR service: decode inputs, translate to chat requests, shape the answers.

Holds no HTTP types, so the routes stay thin glue and the logic is testable alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic import ValidationError

from openai_ocr import __version__
from openai_ocr.engines.base import ChatEngine
from openai_ocr.errors import (
    BadRequest,
    InternalError,
    ModelNotFound,
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
    open_checked_image,
    probe_document,
    render_page,
)
from openai_ocr.inputs.pool import DecodePool
from openai_ocr.ocr.assembly import (
    PAGE_SPLIT,
    PageOutcome,
    assemble,
    length_warning,
    overall_finish_reason,
    page_result,
    sum_usage,
)
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.resolution import Family, family_of
from openai_ocr.ocr.translation import (
    CompletionResult,
    SamplingPlan,
    build_chat_request,
    chunk_delta,
    completion_result,
    plan_request,
    usage_of,
)
from openai_ocr.protocol.ocr import (
    BatchItemResult,
    BatchResponse,
    EngineReachability,
    HealthResponse,
    OCRRequest,
    OCRResponse,
    StreamEvent,
)
from openai_ocr.service.budget import CostBudget
from openai_ocr.service.streams import aclose, gather_or_cancel, primed, within
from openai_ocr.settings import Settings
from openai_ocr.storage.store import Store

logger = logging.getLogger(__name__)


SERVED_MODELS_TTL_S = 30.0


INLINE_CHECK_BYTES = 1024 * 1024
"""Inputs up to this size have their container checked on the event loop (under 1 ms)."""


def new_request_id() -> str:
    return f"ocr-{secrets.token_hex(16)}"


class OCRService:
    """One per app: the engine plus the settings every legacy route needs."""

    def __init__(self, engine: ChatEngine, settings: Settings, store: Store | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self._served: tuple[float, list[str]] = (0.0, [])
        #: uploaded files and batches; None when batches are off
        self.store = store
        budget = settings.budget
        self.pool = DecodePool(budget.decode_workers, memory_limit_mb=budget.decode_memory_mb)
        self.budget = CostBudget(budget.max_pixels_in_flight, budget.max_pages_in_flight,
                                 budget.max_wait_s)

    # -- models -----------------------------------------------------------------------
    async def served_models(self) -> list[str]:
        """The names `/v1/models` lists (cached briefly: an upstream answers it over HTTP)."""
        fetched, names = self._served
        if not names or time.monotonic() - fetched > SERVED_MODELS_TTL_S:
            names = [m.id for m in await self.engine.list_models()]
            self._served = (time.monotonic(), names)
        return names

    async def check_model(self, requested: str | None) -> None:
        """404 `model_not_found` for a model this server does not serve, as OpenAI and vLLM do.

        A request without a model gets the served one.
        """
        if requested is None or requested == self.engine.model:
            return
        try:
            served = await self.served_models()
        except OCRError:  # an upstream without a model list judges the name itself
            logger.warning("cannot list the served models; %r is passed on unchecked", requested)
            return
        if requested not in served:
            raise ModelNotFound(requested, served or [self.engine.model])

    @property
    def family(self) -> Family:
        """DeepSeek-OCR or -OCR-2: decides the accepted prompts and resolution modes."""
        return family_of(self.engine.model, self.engine.architectures)

    def plan(self, options: OCROptions) -> SamplingPlan:
        """The sampling plan, or the 400 for bad options, before any input is decoded."""
        return plan_request(options, self.settings.ocr, self.family, self.settings.budget.max_prompt_chars)

    def engine_warnings(self, options: OCROptions) -> list[str]:
        """Warnings about options this engine takes but does not use."""
        asked = [k for k in ("resolution", "base_size", "image_size", "crop_mode")
                 if getattr(options, k) is not None]
        if self.engine.kind == "lite" and asked:
            return [f"the lite engine reads every page at full resolution; {', '.join(asked)} "
                    "accepted but not used"]
        return []

    def count_timeout(self) -> None:
        """A request over its time: counted where the engine's gate counts its own time-outs."""
        metrics = getattr(self.engine, "metrics", None)  # the gated engine holds the app's metrics
        if metrics is not None:
            metrics.timeouts.inc()

    def with_engine(self, engine: ChatEngine) -> OCRService:
        """The same service on another engine (the batch runner's share of the gate), sharing
        the decoder processes, the server-wide pixel budget and the store."""
        twin = copy.copy(self)
        twin.engine = engine
        return twin

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
    def deadline(self) -> float:
        """The time (time.monotonic) by which a request starting now must be done."""
        return time.monotonic() + self.settings.limits.request_timeout_s

    async def open_bytes(self, data: bytes, options: OCROptions, param: str = "file",
                         deadline: float | None = None) -> Document:
        """Validate an upload (image, multi-frame TIFF/GIF or PDF) and select its pages.

        Only headers are read here, in a decoder process; the pages decode later, one by one,
        each under the pixel budget.
        """
        self.plan(options)
        limits, budget = self.settings.limits, self.settings.budget
        deadline = deadline or self.deadline()
        document = await self._checked_image(data, options, param)
        if document is None:
            info = await self.pool.run(
                probe_document, data, pages=options.pages,
                dpi=options.dpi or self.settings.documents.dpi, max_pages=limits.max_pages,
                max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes, param=param,
                max_aspect_ratio=budget.max_aspect_ratio, deadline=deadline)
            document = Document(data, info, max_pixels=limits.max_image_pixels,
                                max_bytes=limits.max_file_bytes, param=param)
        document.deadline = deadline
        total = sum(document.info.page_pixels.values())
        if total > budget.max_request_pixels:
            raise PayloadTooLarge(f"the selected pages need {total} decoded pixels; at most "
                                  f"{budget.max_request_pixels} per request (select fewer pages)",
                                  param="pages")
        return document

    async def _checked_image(self, data: bytes, options: OCROptions, param: str) -> Document | None:
        """A PNG/JPEG/WebP page checked from its container, in microseconds, here; large
        files in a thread (the check reads every byte once)."""
        limits = self.settings.limits
        check = functools.partial(
            open_checked_image, data, pages=options.pages, max_pages=limits.max_pages,
            max_pixels=limits.max_image_pixels, max_bytes=limits.max_file_bytes, param=param,
            max_aspect_ratio=self.settings.budget.max_aspect_ratio)
        return check() if len(data) <= INLINE_CHECK_BYTES else await asyncio.to_thread(check)

    async def open_request(self, request: OCRRequest, owner: str | None = None) -> Document:
        if request.file_id:
            return await self.open_bytes(await self.file_bytes(request.file_id, owner), request)
        param, value = request.payload
        data = decode_base64_payload(value, max_bytes=self.settings.limits.max_file_bytes,
                                     param=param)
        return await self.open_bytes(data, request, param=param)

    async def check_chat_images(self, body: dict[str, Any]) -> None:
        """Apply the image limits to the `data:` image parts of a client's chat request.

        The same 400/413 answers as the legacy routes, before anything reaches the engine,
        decoded in a decoder process under the pixel budget.
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
                    document = await self.open_bytes(data, OCROptions(), "image_url", deadline)
                    if document.ready is None:  # only a full decode tells
                        async with self.reserve(document, 1):
                            await self.page(document, 1)

    def reserve(self, document: Document, number: int) -> AbstractAsyncContextManager[None]:
        """Room in the server-wide pixel/page budget for one page, held for the block."""
        return self.budget.reserve(document.info.page_pixels.get(number, 0), document.deadline)

    async def page(self, document: Document, number: int) -> ImageInput:
        """One page decoded or rendered in a decoder process, within the request's time."""
        if document.ready is not None:
            return document.ready
        return await self.pool.run(render_page, document.data, document.info, number,
                                   max_pixels=document.max_pixels, max_bytes=document.max_bytes,
                                   param=document.param, deadline=document.deadline)

    async def start(self) -> None:
        await self.pool.start()

    def close(self) -> None:
        self.pool.close()

    # -- whole answers ----------------------------------------------------------------
    async def recognize(self, document: Document, options: OCROptions,
                        request_id: str | None = None) -> OCRResponse:
        """OCR of every selected page, concurrently (bounded), answered in page order."""
        started = time.perf_counter()
        plan = self.plan(options)
        gate = asyncio.Semaphore(self.settings.documents.page_concurrency)
        keep_pixels = options.include_images or options.include_page_images

        async def one(number: int) -> PageOutcome:
            async with gate, self.reserve(document, number):
                image = await self.page(document, number)
                body = build_chat_request(self.engine.model, image, plan, stream=False)
                result = completion_result(await self.engine.complete(body))
            if not keep_pixels:  # hold only the size: long documents stay small in memory
                image = ImageInput(data=b"", mime=image.mime, width=image.width, height=image.height)
            return PageOutcome(number, image, result)

        async with within(document.deadline, self.settings.limits.request_timeout_s, self.count_timeout):
            outcomes = await gather_or_cancel(one(n) for n in document.pages)
        assembly = functools.partial(assemble, outcomes, options.output, options.include_images,
                                     plan.max_tokens, options.include_page_images)
        # grounding parsing and crops are CPU work: off the event loop; joining raw texts is
        # not worth the thread hop
        parses = options.output != "text" or options.include_images or options.include_page_images
        done = await asyncio.to_thread(assembly) if parses else assembly()
        warnings = [*done.warnings, *self.engine_warnings(options)]
        for warning in done.warnings:
            logger.warning("%s", warning)
        return OCRResponse(
            request_id=request_id or new_request_id(), text=done.text,
            model=outcomes[0].result.model, finish_reason=done.finish_reason, usage=done.usage,
            prompt=plan.prompt, processing_time=round(time.perf_counter() - started, 4),
            page_count=len(outcomes), pages=done.pages, warnings=warnings,
            resolution=plan.resolution)

    # -- streams ----------------------------------------------------------------------
    async def open_stream(self, document: Document, options: OCROptions,
                          request_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Start a streamed recognition; raises before returning if the engine refuses it.

        The first page's first chunk is awaited here, so an unreachable engine or a rejected
        request is answered with a proper status code instead of an error inside a 200 stream.
        Pages stream one after the other, in order.
        """
        try:
            plan = self.plan(options)
            # page 1's reservation covers its decoding only: a generator that is never
            # started (client gone before the first byte) would never release it
            async with self.reserve(document, document.pages[0]):
                image = await self.page(document, document.pages[0])
            chunks = await primed(self.engine.stream(
                build_chat_request(self.engine.model, image, plan, stream=True)))
        except BaseException:
            document.close()
            raise
        return self._stream_events(document, plan, image, chunks, request_id or new_request_id(),
                                   options, contextlib.AsyncExitStack())

    async def _stream_events(self, document: Document, plan: SamplingPlan, image: ImageInput,
                             chunks: AsyncIterator[Any], request_id: str, options: OCROptions,
                             held: contextlib.AsyncExitStack) -> AsyncIterator[StreamEvent]:
        """Page by page; a failure on any page ends the stream with an `error` event."""
        model = self.engine.model
        usages: list[Usage] = []
        reasons: list[str | None] = []
        try:
            for position, number in enumerate(document.pages):
                if position:
                    yield StreamEvent(text=PAGE_SPLIT)
                    held = contextlib.AsyncExitStack()
                    await held.enter_async_context(self.reserve(document, number))
                    image = await self.page(document, number)
                    chunks = self.engine.stream(
                        build_chat_request(self.engine.model, image, plan, stream=True))
                yield StreamEvent(type="page", page=number, page_count=len(document.pages),
                                  width=image.width, height=image.height)
                reason: str | None = None
                usage = Usage()
                pieces: list[str] = []
                try:
                    async for chunk in chunks:
                        model = chunk.model or model
                        if chunk.usage is not None:
                            usage = usage_of(chunk.usage)
                        text, finished = chunk_delta(chunk)
                        reason = finished or reason
                        if text:
                            pieces.append(text)
                            yield StreamEvent(text=text, page=number)
                finally:
                    try:
                        await aclose(chunks)
                    finally:
                        await held.aclose()
                usages.append(usage)
                reasons.append(reason)
                result = None
                if options.output == "json":
                    outcome = PageOutcome(number, image, CompletionResult("".join(pieces), reason, usage, model))
                    result = await asyncio.to_thread(page_result, outcome, options.include_images,
                                                     plan.max_tokens, options.include_page_images)
                yield StreamEvent(type="page_end", page=number, finish_reason=reason, usage=usage,
                                  warning=length_warning(number, plan.max_tokens)
                                  if reason == "length" else None, result=result)
        except OCRError as exc:
            yield StreamEvent(type="error", error=exc.body().error, request_id=request_id)
            return
        except Exception:  # noqa: BLE001 - headers are sent: the client still gets an error event
            logger.exception("stream %s failed", request_id)
            error = InternalError("internal error while streaming this document")
            yield StreamEvent(type="error", error=error.body().error, request_id=request_id)
            return
        finally:
            await held.aclose()
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
            error: OCRError = UnprocessableEntity(validation_message(exc.errors(), whole="item",
                                                                      known=OCRRequest.model_fields))
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
