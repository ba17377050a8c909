"""Streamed answers (`/ocr/stream`, the CLI): pages one after the other, as events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from openai_ocr.errors import InternalError, OCRError
from openai_ocr.inputs.documents import Document, ImageInput
from openai_ocr.ocr.assembly import (
    PAGE_SPLIT,
    PageOutcome,
    length_warning,
    overall_finish_reason,
    page_result,
    sum_usage,
)
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.translation import CompletionResult, SamplingPlan, build_chat_request, chunk_delta, usage_of
from openai_ocr.protocol.ocr import StreamEvent
from openai_ocr.service.concurrency import aclose, primed
from openai_ocr.service.recognition import Recognizer, new_request_id

logger = logging.getLogger(__name__)


class PageStreamer:
    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.engine = recognizer.engine
        self.inputs = recognizer.inputs

    async def open(self, document: Document, options: OCROptions, plan: SamplingPlan,
                   request_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Start a streamed recognition; raises before returning if the engine refuses it.

        The first page's first chunk is awaited here, so an unreachable engine or a rejected
        request is answered with a proper status code instead of an error inside a 200 stream.
        Pages stream one after the other, in order.
        """
        try:
            # page 1's reservation covers its decoding only: a generator that is never
            # started (client gone before the first byte) would never release it
            async with self.inputs.reserve(document, document.pages[0]):
                image = await self.inputs.page(document, document.pages[0])
            chunks = await primed(self.engine.stream(
                build_chat_request(self.engine.model, image, plan, stream=True)))
        except BaseException:
            document.close()
            raise
        return self._events(document, plan, image, chunks, request_id or new_request_id(),
                            options, contextlib.AsyncExitStack())

    async def _events(self, document: Document, plan: SamplingPlan, image: ImageInput,
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
                    await held.enter_async_context(self.inputs.reserve(document, number))
                    image = await self.inputs.page(document, number)
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
                outcome = PageOutcome(number, image, CompletionResult("".join(pieces), reason, usage, model))
                yield await self._page_end(outcome, options, plan)
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

    async def _page_end(self, outcome: PageOutcome, options: OCROptions,
                        plan: SamplingPlan) -> StreamEvent:
        """The page's closing event; with `output=json` it carries the page's result."""
        result = None
        if options.output == "json":
            result = await asyncio.to_thread(page_result, outcome, options.include_images,
                                             plan.max_tokens, options.include_page_images)
        reason = outcome.result.finish_reason
        return StreamEvent(type="page_end", page=outcome.number, finish_reason=reason,
                           usage=outcome.result.usage, result=result,
                           warning=length_warning(outcome.number, plan.max_tokens)
                           if reason == "length" else None)
