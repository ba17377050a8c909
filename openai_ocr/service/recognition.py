"""Whole answers: every selected page of a Document through the engine, assembled in page order."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time

from openai_ocr.engines.base import ChatEngine
from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import Document
from openai_ocr.metrics import Metrics
from openai_ocr.ocr.assembly import Assembled, PageOutcome, assemble, merge_assembled
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.translation import SamplingPlan, plan_request
from openai_ocr.protocol.ocr import OCRRequest, OCRResponse
from openai_ocr.service.concurrency import gather_or_cancel, within
from openai_ocr.service.document_limits import current_limits
from openai_ocr.service.intake import DocumentIntake
from openai_ocr.service.model_catalog import ModelCatalog
from openai_ocr.service.page_reader import PageReader
from openai_ocr.service.usage import charge
from openai_ocr.settings import Settings
from openai_ocr.telemetry import page, span

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    return f"ocr-{secrets.token_hex(16)}"


class Recognizer:
    """Plans a request's sampling once, then reads its pages on one engine."""

    def __init__(self, engine: ChatEngine, settings: Settings, inputs: DocumentIntake,
                 models: ModelCatalog, metrics: Metrics, fallback: ChatEngine | None = None,
                 words: ChatEngine | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.inputs = inputs
        self.models = models
        self.metrics = metrics
        self.pages = PageReader(engine, settings, models, metrics, fallback, words)

    def plan(self, options: OCROptions) -> SamplingPlan:
        """The sampling plan, or the 400 for bad options: made before any input is decoded."""
        plan = plan_request(options, self.settings.ocr, self.models.family,
                            self.settings.budget.max_prompt_chars)
        if plan.word_boxes and not self.pages.places_words:
            raise BadRequest(f"word_boxes: the {self.engine.kind} engine gives no word positions, and the "
                             "lite engine that finds them is not installed here: pip install "
                             "'openai-ocr[lite]' (PP-OCRv6 detector and Tesseract; no download)",
                             param="word_boxes")
        return plan

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
        self.metrics.timeouts.inc()

    async def read_request(self, request: OCRRequest, owner: str | None = None,
                           request_id: str | None = None) -> OCRResponse:
        """A `/ocr` body (interactive, a legacy batch item or a batch line), answered whole."""
        plan = self.plan(request)
        with await self.inputs.open_request(request, owner) as document:
            return await self.recognize(document, request, plan, request_id)

    async def read_bytes(self, data: bytes, options: OCROptions, param: str = "file",
                         request_id: str | None = None) -> OCRResponse:
        """An uploaded file, answered whole."""
        plan = self.plan(options)
        with await self.inputs.open_bytes(data, pages=options.pages, dpi=options.dpi,
                                          param=param) as document:
            return await self.recognize(document, options, plan, request_id)

    async def recognize(self, document: Document, options: OCROptions, plan: SamplingPlan,
                        request_id: str | None = None) -> OCRResponse:
        """OCR of every selected page, concurrently (bounded), answered in page order.

        Each page is assembled as soon as it is read (blocks parsed, token scores made
        confidences, figures cropped), so a document of thousands of pages holds its pages'
        results while it runs, not their pixels or their tokens."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.settings.documents.page_concurrency)
        assembly = functools.partial(assemble, output=options.output, include_images=options.include_images,
                                     max_tokens=plan.max_tokens, include_page_images=options.include_page_images,
                                     words=plan.words)
        # grounding parsing and crops are CPU work: off the event loop; a raw text is not
        # worth the thread hop
        parses = options.output != "text" or options.include_images or options.include_page_images

        async def one(number: int) -> Assembled:
            with page(number) as traced:  # its wait for a slot and for the pixel budget included
                async with gate, self.inputs.reserve(document, number):
                    image = await self.inputs.page(document, number, estimate=plan.auto)
                    read = await self.pages.read(image, plan)
                traced.set_attribute("ocr.resolution", read.quality.resolution)
                traced.set_attribute("ocr.attempts", read.quality.attempts)
                outcome = [PageOutcome(number, image, read.result, read.quality)]
                with span("assemble", {"ocr.page": number, "ocr.output": options.output}):
                    return await asyncio.to_thread(assembly, outcome) if parses else assembly(outcome)

        async with within(document.deadline, current_limits(self.settings).timeout_s, self.count_timeout):
            done = merge_assembled(await gather_or_cancel(one(n) for n in document.pages))
        for warning in done.warnings:
            logger.warning("%s", warning)
        charge(done.model, done.usage, pages=done.page_count)
        return OCRResponse(
            request_id=request_id or new_request_id(), text=done.text,
            model=done.model, finish_reason=done.finish_reason, usage=done.usage,
            prompt=plan.prompt, processing_time=round(time.perf_counter() - started, 4),
            page_count=done.page_count, pages=done.pages,
            warnings=[*done.warnings, *self.engine_warnings(options)], resolution=plan.resolution)
