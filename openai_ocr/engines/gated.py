"""Backpressure, time limits and metrics around any engine.

At most `max_in_flight` engine requests run at once; up to `max_queue` more wait for a slot
and anything beyond is refused at once with 429 and Retry-After, so memory stays bounded
under any load. Each request (queueing included) has `timeout_s`; past it the engine call is
cancelled (which aborts it upstream or in vLLM) and the client gets 504.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.engines.base import ChatEngine, EngineStatus
from openai_ocr.errors import EngineTimeout, OCRError, TooManyRequests
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.settings import Settings


class GatedEngine(ChatEngine):
    def __init__(self, inner: ChatEngine, *, max_in_flight: int, max_queue: int,
                 timeout_s: float, metrics: Metrics | None = None) -> None:
        self.inner = inner
        self.metrics = metrics or default_metrics()
        self.kind = inner.kind
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0

    async def start(self) -> None:
        await self.inner.start()

    @property
    def model(self) -> str:  # type: ignore[override]  # read-only here: it follows the inner engine
        """The inner engine's: a gateway learns its model from the upstream, maybe late."""
        return self.inner.model

    @property
    def architectures(self) -> tuple[str, ...]:  # type: ignore[override]  # follows the inner engine
        return self.inner.architectures

    @property
    def capacity(self) -> int | None:  # type: ignore[override]  # follows the inner engine
        return self.inner.capacity

    async def close(self) -> None:
        await self.inner.close()

    async def list_models(self) -> list[Model]:
        return await self.inner.list_models()

    async def status(self) -> EngineStatus:
        return await self.inner.status()

    async def _acquire(self, deadline: float) -> None:
        if not self._slots.locked():  # a free slot and nobody waiting: taken without suspending
            await self._slots.acquire()
        else:
            if self._waiting >= self.max_queue:
                self.metrics.rejected.inc()
                raise TooManyRequests(f"the server is busy ({self.max_in_flight} engine requests "
                                f"running, {self._waiting} waiting); retry shortly")
            self._waiting += 1
            self.metrics.queued.set(self._waiting)
            try:
                await asyncio.wait_for(self._slots.acquire(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise self._timeout() from None
            finally:
                self._waiting -= 1
                self.metrics.queued.set(self._waiting)
        self.metrics.in_flight.inc()

    def _release(self) -> None:
        self.metrics.in_flight.dec()
        self._slots.release()

    def _timeout(self) -> OCRError:
        self.metrics.timeouts.inc()
        return EngineTimeout(f"the request did not finish within {self.timeout_s:g} s")

    def _count(self, finish_reason: str | None) -> None:
        self.metrics.pages.inc()
        if finish_reason == "length":
            self.metrics.length_stops.inc()

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        deadline = time.monotonic() + self.timeout_s
        await self._acquire(deadline)
        try:
            completion = await asyncio.wait_for(self.inner.complete(body),
                                                max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise self._timeout() from None
        finally:
            self._release()
        self._count(completion.choices[0].finish_reason if completion.choices else None)
        return completion

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        deadline = time.monotonic() + self.timeout_s
        await self._acquire(deadline)
        chunks = self.inner.stream(body)
        reason: str | None = None
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks),
                                                   max(0.0, deadline - time.monotonic()))
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise self._timeout() from None
                if chunk.choices and chunk.choices[0].finish_reason:
                    reason = chunk.choices[0].finish_reason
                yield chunk
            self._count(reason)
        finally:
            try:
                await chunks.aclose()  # type: ignore[attr-defined]  # every engine's stream() is an async generator
            finally:
                self._release()


def gated(engine: ChatEngine, settings: Settings, metrics: Metrics | None = None) -> GatedEngine:
    """Wrap `engine` with the limits of `settings` (every mode does, vllm included)."""
    limits = settings.limits
    return GatedEngine(engine, max_in_flight=limits.max_in_flight, max_queue=limits.max_queue,
                       timeout_s=limits.request_timeout_s, metrics=metrics)


class EngineShare(ChatEngine):
    """One class of traffic (batch lines) holds at most `slots` of an engine's slots at once.

    The rest of the gate stays free for interactive requests, so a long batch never starves
    them; the batch's own requests still pass the gate's limits and time-outs.
    """

    def __init__(self, inner: ChatEngine, slots: int) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.slots = slots
        self._slots = asyncio.Semaphore(slots)

    @property
    def model(self) -> str:  # type: ignore[override]  # follows the inner engine
        return self.inner.model

    async def list_models(self) -> list[Model]:
        return await self.inner.list_models()

    async def status(self) -> EngineStatus:
        return await self.inner.status()

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        async with self._slots:
            return await self.inner.complete(body)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        async with self._slots:
            chunks = self.inner.stream(body)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]


def share_slots(settings: Settings, engine: ChatEngine) -> int:
    """The engine slots batch lines may hold: `batches.engine_share` of `limits.max_in_flight`,
    or of twice the engine's own capacity when that is smaller (the lite engine's workers: a
    page in work and one ready per worker), so interactive requests never queue behind more
    than that share of batch pages."""
    base = settings.limits.max_in_flight
    if engine.capacity:
        base = min(base, 2 * engine.capacity)
    return max(1, int(base * settings.batches.engine_share))
