"""Streamed answers (`/ocr/stream`, the CLI): pages one after the other, as events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from openai_ocr.engines.base import ChatEngine
from openai_ocr.errors import InternalError, OCRError
from openai_ocr.inputs.documents import Document, ImageInput
from openai_ocr.ocr.assembly import (
    PAGE_SPLIT,
    PageOutcome,
    overall_finish_reason,
    page_result,
    page_warning,
    sum_usage,
)
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.quality import looping_now
from openai_ocr.ocr.translation import (
    CompletionResult,
    SamplingPlan,
    build_chat_request,
    chunk_delta,
    found_words,
    scores_of,
    usage_of,
)
from openai_ocr.protocol.ocr import StreamEvent
from openai_ocr.service.concurrency import aclose, primed
from openai_ocr.service.page_reader import Attempt, judged, settle
from openai_ocr.service.recognition import Recognizer, new_request_id
from openai_ocr.service.usage import charge
from openai_ocr.telemetry import event

logger = logging.getLogger(__name__)

LOOP_CHECK_CHARS = 1024
"""How often a streaming answer's end is checked for a loop, in characters."""


class PageStreamer:
    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.engine = recognizer.engine
        self.inputs = recognizer.inputs
        self.pages = recognizer.pages

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
                image = await self.inputs.page(document, document.pages[0], estimate=plan.auto)
            chunks = await primed(self.engine.stream(
                build_chat_request(self.engine.model, image, self.pages.page_plan(plan, image), stream=True)))
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
                    image = await self.inputs.page(document, number, estimate=plan.auto)
                    chunks = self.engine.stream(
                        build_chat_request(self.engine.model, image, self.pages.page_plan(plan, image),
                                           stream=True))
                event("stream page", {"ocr.page": number})
                yield StreamEvent(type="page", page=number, page_count=len(document.pages),
                                  width=image.width, height=image.height)
                streamed = _Streamed(model)
                words = self.pages.start_word_read(image, plan)
                try:
                    async for text in streamed.texts(chunks):
                        yield StreamEvent(text=text, page=number)
                    await aclose(chunks)  # stopped early when it loops: the engine stops too
                    first = await streamed.attempt(self.engine, self.pages.page_plan(plan, image))
                    read = await self.pages.recover(image, first, words)
                finally:
                    settle(words)
                    try:
                        await aclose(chunks)
                    finally:
                        await held.aclose()
                model = streamed.model
                if read.result.text != streamed.text:
                    event("stream page_reset", {"ocr.page": number, "ocr.attempts": read.quality.attempts})
                    yield StreamEvent(type="page_reset", page=number, reason="/".join(read.quality.flags[:2]))
                    yield StreamEvent(text=read.result.text, page=number)
                usages.append(read.result.usage)
                reasons.append(read.result.finish_reason)
                outcome = PageOutcome(number, image, read.result, read.quality)
                usage = read.result.usage
                event("stream page_end", {"ocr.page": number, "gen_ai.usage.input_tokens": usage.prompt_tokens,
                                          "gen_ai.usage.output_tokens": usage.completion_tokens,
                                          "ocr.finish_reason": read.result.finish_reason})
                yield await self._page_end(outcome, options, plan)
        except OCRError as exc:
            event("stream error", {"error.type": exc.body().error.type})
            yield StreamEvent(type="error", error=exc.body().error, request_id=request_id)
            return
        except Exception:  # noqa: BLE001 - headers are sent: the client still gets an error event
            logger.exception("stream %s failed", request_id)
            event("stream error", {"error.type": "internal_error"})
            error = InternalError("internal error while streaming this document")
            yield StreamEvent(type="error", error=error.body().error, request_id=request_id)
            return
        finally:
            await held.aclose()
            document.close()
            if usages:  # the pages read, also of a stream that failed or was left
                charge(model, sum_usage(usages), pages=len(usages))
        event("stream done", {"ocr.pages": len(usages)})
        yield StreamEvent(type="done", finish_reason=overall_finish_reason(reasons),
                          usage=sum_usage(usages), model=model, request_id=request_id)

    async def _page_end(self, outcome: PageOutcome, options: OCROptions,
                        plan: SamplingPlan) -> StreamEvent:
        """The page's closing event; with `output=json` it carries the page's result."""
        result = None
        if options.output == "json":
            result = await asyncio.to_thread(page_result, outcome, options.include_images,
                                             plan.max_tokens, options.include_page_images, plan.words)
        return StreamEvent(type="page_end", page=outcome.number, finish_reason=outcome.result.finish_reason,
                           usage=outcome.result.usage, result=result, quality=outcome.quality,
                           warning=page_warning(outcome, plan.max_tokens))


class _Streamed:
    """One page's first answer as it streams: its text, finish reason, usage and time; it
    ends early when the text runs into a loop (judged every `LOOP_CHECK_CHARS`)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.pieces: list[str] = []
        self.reason: str | None = None
        self.usage = Usage()
        self.started = time.perf_counter()
        self.looped = False
        self.logprobs: list[Any] = []  # each chunk's `choices[0].logprobs`
        self.words: Any = None  # the lite engine's words, on its last chunk

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    async def texts(self, chunks: AsyncIterator[Any]) -> AsyncIterator[str]:
        size = checked = 0
        async for chunk in chunks:
            self.model = chunk.model or self.model
            if chunk.usage is not None:
                self.usage = usage_of(chunk.usage)
            text, finished = chunk_delta(chunk)
            self.reason = finished or self.reason
            if chunk.choices:
                choice = chunk.choices[0]
                self.logprobs.append(getattr(choice, "logprobs", None))
                self.words = getattr(choice, "words", None) or self.words
            if text:
                self.pieces.append(text)
                size += len(text)
                yield text
                if size - checked >= LOOP_CHECK_CHARS:
                    checked = size
                    if looping_now(self.text):
                        self.looped, self.reason = True, "length"  # where the loop would have ended
                        return

    async def attempt(self, engine: ChatEngine, plan: SamplingPlan) -> Attempt:
        text = self.text
        result = CompletionResult(text, self.reason, self.usage, self.model, scores_of(text, self.logprobs),
                                  found_words(self.words))
        verdict = await judged(result.text, result.finish_reason)
        return Attempt(result, verdict, engine.kind, plan, None, (time.perf_counter() - self.started) * 1000)
