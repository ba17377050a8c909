"""One page through the engine, its answer judged; a page whose answer loops, or was cut at
the default max_tokens, is read again up the recovery ladder (`ocr.recovery`) until a try is
clean, and the best try is kept (its loop cut out). Every try runs within the request's
deadline and the page's budget reservation, which the caller holds. Every try asks for the
plan's log-probabilities, so the kept one's confidences are the ones reported.

With `word_boxes` and another engine than lite serving, the lite engine reads the page's
words (boxes, scores) once, alongside the first try; the kept answer's words are aligned to
them when the page is assembled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

from openai_ocr.engines.base import ChatEngine
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.metrics import Metrics
from openai_ocr.ocr.auto_resolution import page_plan
from openai_ocr.ocr.models import PageQuality, QualityFlag, Usage
from openai_ocr.ocr.prompts import MODES
from openai_ocr.ocr.quality import Verdict, judge
from openai_ocr.ocr.recovery import cleaned, page_image_tokens, rank, step_plan, worth_another_try
from openai_ocr.ocr.translation import CompletionResult, SamplingPlan, build_chat_request, completion_result
from openai_ocr.ocr.words import FoundWord
from openai_ocr.service.model_catalog import ModelCatalog
from openai_ocr.settings import RecoveryStep, Settings
from openai_ocr.telemetry import current_page, span

logger = logging.getLogger(__name__)

INLINE_JUDGE_CHARS = 8000
"""Answers up to this long are judged on the event loop (a few ms); longer ones in a thread."""


@dataclass(frozen=True)
class Attempt:
    result: CompletionResult
    verdict: Verdict
    engine: str
    plan: SamplingPlan
    step: RecoveryStep | None
    ms: float


@dataclass(frozen=True)
class PageRead:
    """The kept answer (loop cut out, usage of every try summed) and what became of the page."""

    result: CompletionResult
    quality: PageQuality


def settle(task: asyncio.Future[tuple[FoundWord, ...]] | None) -> None:
    """A word read no longer awaited (the page failed or is done): cancelled if running, its
    error retrieved if it failed (not logged as never retrieved)."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


async def judged(text: str, finish_reason: str | None) -> Verdict:
    if len(text) <= INLINE_JUDGE_CHARS:
        return judge(text, finish_reason)
    return await asyncio.to_thread(judge, text, finish_reason)


def mode_of(prompt: str) -> str:
    """The name of a prompt among the official modes, or `custom`."""
    return next((name for name, text in MODES.items() if text == prompt), "custom")


class PageReader:
    def __init__(self, engine: ChatEngine, settings: Settings, models: ModelCatalog,
                 metrics: Metrics, fallback: ChatEngine | None = None,
                 words: ChatEngine | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.models = models
        self.metrics = metrics
        #: the lite engine as the ladder's last resort, where installed (None otherwise)
        self.fallback = fallback
        #: the lite engine that finds the words for word boxes, where installed (None otherwise)
        self.word_reader = words

    @property
    def places_words(self) -> bool:
        """Whether word boxes can be given: the lite engine serves, or reads words for another."""
        return self.engine.kind == "lite" or self.word_reader is not None

    def page_plan(self, plan: SamplingPlan, image: ImageInput) -> SamplingPlan:
        """The plan for this page: `resolution: auto` becomes the mode its text needs."""
        return page_plan(plan, self.models.family, image.text_estimate, image.width, image.height,
                         self.settings.ocr.auto_resolution)

    async def read(self, image: ImageInput, plan: SamplingPlan) -> PageRead:
        plan = self.page_plan(plan, image)
        words = self.start_word_read(image, plan)
        try:
            return await self.recover(image, await self.attempt(self.engine, image, plan, None), words)
        finally:
            settle(words)

    def start_word_read(self, image: ImageInput, plan: SamplingPlan) -> asyncio.Task[tuple[FoundWord, ...]] | None:
        """The lite engine's reading of the page's words, started (None where the serving
        engine's answer brings its own words, or no word boxes are asked for)."""
        if not plan.word_boxes or self.engine.kind == "lite" or self.word_reader is None:
            return None
        return asyncio.ensure_future(self.found_words(self.word_reader, image, plan))

    @staticmethod
    async def found_words(reader: ChatEngine, image: ImageInput, plan: SamplingPlan) -> tuple[FoundWord, ...]:
        """The words `reader` (the lite engine) finds on the page, in its reading order."""
        asked = dataclasses.replace(plan, prompt=MODES["ocr"], logprobs=True, vllm_xargs=None,
                                    mm_processor_kwargs=None)
        result = completion_result(await reader.complete(build_chat_request(reader.model, image, asked,
                                                                            stream=False)))
        return result.words or ()

    async def attempt(self, engine: ChatEngine, image: ImageInput, plan: SamplingPlan,
                      step: RecoveryStep | None, number: int = 1) -> Attempt:
        """One try of the page (`number`: its place on the ladder, 1 for the first)."""
        started = time.perf_counter()
        with span("engine call", {"ocr.page": current_page(), "ocr.engine": engine.kind,
                                  "ocr.mode": mode_of(plan.prompt), "ocr.resolution": plan.resolution,
                                  "ocr.attempt": number, "ocr.step": step or "first"}) as call:
            body = build_chat_request(engine.model, image, plan, stream=False)
            result = completion_result(await engine.complete(body))
            verdict = await judged(result.text, result.finish_reason)
            if call.is_recording():
                call.set_attributes({"gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                                     "gen_ai.usage.output_tokens": result.usage.completion_tokens,
                                     "gen_ai.response.finish_reasons": (result.finish_reason or "",),
                                     "ocr.verdict": "/".join(verdict.flags) or "ok"})
        return Attempt(result, verdict, engine.kind, plan, step, (time.perf_counter() - started) * 1000)

    async def recover(self, image: ImageInput, first: Attempt,
                      words: asyncio.Future[tuple[FoundWord, ...]] | None = None) -> PageRead:
        """Climb the ladder from a first try (read whole here, or streamed by the caller);
        `words`: the page's words being read for word boxes (`start_word_read`)."""
        tries = [first]
        if first.verdict.loop is not None:
            self.metrics.loops.inc()
        recovery = self.settings.ocr.recovery
        if recovery.enabled and worth_another_try(first.verdict, first.plan):
            for step, engine, plan in self.steps(first.plan):
                self.metrics.retries.labels(step).inc()
                logger.info("page answer %s; reading it again (%s)", "/".join(first.verdict.flags), step)
                tried = await self.attempt(engine, image, plan, step, number=len(tries) + 1)
                tries.append(tried)
                if tried.verdict.ok:
                    self.metrics.recovered.labels(step).inc()
                    break
        read = self.kept(image, tries)
        if words is not None:
            found = await words
            if read.result.words is None:  # the lite fallback's answer brings its own
                read = PageRead(dataclasses.replace(read.result, words=found), read.quality)
        return read

    def steps(self, plan: SamplingPlan) -> list[tuple[RecoveryStep, ChatEngine, SamplingPlan]]:
        """The ladder's steps that apply to this plan and engine. A page of `resolution: auto`
        steps up to the next larger mode first, and the rest of the ladder runs in that mode."""
        out: list[tuple[RecoveryStep, ChatEngine, SamplingPlan]] = []
        ladder = self.settings.ocr.recovery.ladder
        if plan.auto and self.engine.kind != "lite":  # the lite engine reads every mode alike
            larger = step_plan("next_resolution", plan, self.models.family, self.settings.ocr.recovery)
            if larger is not None:
                out.append(("next_resolution", self.engine, larger))
                plan = larger
            ladder = [step for step in ladder if step != "next_resolution"]
        for step in ladder:
            engine = self.fallback if step == "lite" else self.engine
            if engine is None or (step == "lite" and self.engine.kind == "lite"):
                continue
            stepped = step_plan(step, plan, self.models.family, self.settings.ocr.recovery)
            if stepped is not None:
                out.append((step, engine, stepped))
        return out

    def kept(self, image: ImageInput, tries: list[Attempt]) -> PageRead:
        best = max(tries, key=lambda t: rank(t.verdict, t.result.text))  # the earliest of equals
        first = tries[0]
        flags: list[QualityFlag] = list(first.verdict.flags)
        if best is not first and best.verdict.ok:
            flags.append("recovered")
        if best.step == "lite":
            flags.append("fallback_engine")
        result = cleaned(best.result, best.verdict, self.settings.ocr.recovery.cut_loops)
        removed = len(best.result.text) - len(result.text)
        vision = page_image_tokens(self.models.family, best.plan.resolution, image.width, image.height)
        usage = Usage(prompt_tokens=sum(t.result.usage.prompt_tokens for t in tries),
                      completion_tokens=sum(t.result.usage.completion_tokens for t in tries),
                      total_tokens=sum(t.result.usage.total_tokens for t in tries),
                      image_tokens=vision, attempts=len(tries), engine_ms=round(sum(t.ms for t in tries), 1))
        quality = PageQuality(flags=flags, attempts=len(tries), engine=best.engine,
                              resolution=best.plan.resolution, loop_chars_removed=removed)
        return PageRead(dataclasses.replace(result, usage=usage), quality)
