"""Admission by cost: a server-wide budget of decoded pixels and pages in flight.

Counting requests is not enough: one request can carry a thousand 64-megapixel frames. Each
page reserves its decoded pixel count (known from the headers) before it is decoded and
holds it until its OCR is done. Past the budget a page waits, up to `max_wait_s`, then the
request gets 429 with Retry-After, so memory stays bounded under any mix of requests.

Waiting pages are admitted in order of their `priority`, then of arrival: interactive pages
(priority `INTERACTIVE`) before batch lines' pages, and a batch's earlier lines before its
later ones, so the page ranges of a long document finish one after another instead of all
together at the end (and a replica that dies mid-batch has only a few of them in progress).
A batch line's pages, which nobody waits on, may wait until their line's deadline instead
of `max_wait_s` (`wait_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from openai_ocr.errors import PayloadTooLarge, TooManyRequests

Priority = tuple[float, ...]
INTERACTIVE: Priority = (0.0,)


@dataclass(order=True)
class _Waiter:
    priority: Priority
    seq: int
    pixels: int = field(compare=False)
    admitted: asyncio.Future[None] = field(compare=False)


class CostBudget:
    def __init__(self, max_pixels: int, max_pages: int, max_wait_s: float) -> None:
        self.max_pixels = max_pixels
        self.max_pages = max_pages
        self.max_wait_s = max_wait_s
        self.pixels = 0
        self.pages = 0
        self._waiting: list[_Waiter] = []
        self._arrivals = itertools.count()

    def _fits(self, pixels: int) -> bool:
        return self.pixels + pixels <= self.max_pixels and self.pages + 1 <= self.max_pages

    def _take(self, pixels: int) -> None:
        self.pixels += pixels
        self.pages += 1

    def _admit(self) -> None:
        """Admit waiters, first in order, while the first fits (a large page is not passed
        over for ever by smaller ones)."""
        while self._waiting:
            first = self._waiting[0]
            if first.admitted.done():  # gave up waiting
                heapq.heappop(self._waiting)
                continue
            if not self._fits(first.pixels):
                return
            heapq.heappop(self._waiting)
            self._take(first.pixels)
            first.admitted.set_result(None)

    def _give_back(self, pixels: int) -> None:
        self.pixels -= pixels
        self.pages -= 1
        self._admit()

    @contextlib.asynccontextmanager
    async def reserve(self, pixels: int, deadline: float | None = None, priority: Priority = INTERACTIVE,
                      wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold `pixels` and one page for the block; wait for room (`wait_s`, default
        `max_wait_s`, at most until `deadline`), then 429 (Retry-After)."""
        if pixels > self.max_pixels:
            raise PayloadTooLarge(f"one page needs {pixels} pixels; this server decodes at most "
                                  f"{self.max_pixels} at a time")
        await self._wait_for_room(pixels, deadline, priority, self.max_wait_s if wait_s is None else wait_s)
        try:
            yield
        finally:
            self._give_back(pixels)

    async def _wait_for_room(self, pixels: int, deadline: float | None, priority: Priority,
                             wait_s: float) -> None:
        if not self._waiting and self._fits(pixels):
            self._take(pixels)
            return
        waiter = _Waiter(priority, next(self._arrivals), pixels, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        self._admit()
        limit = time.monotonic() + wait_s
        if deadline is not None:
            limit = min(limit, deadline)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.admitted), max(0.0, limit - time.monotonic()))
        except BaseException as exc:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self._give_back(pixels)  # admitted as it gave up: the room goes to the next
            else:
                waiter.admitted.cancel()  # dropped from the queue when it reaches the front
                self._admit()
            if isinstance(exc, TimeoutError):
                raise TooManyRequests(
                    f"the server is decoding {self.pixels} pixels ({self.pages} pages); "
                    "retry shortly", max(1, math.ceil(self.max_wait_s))) from None
            raise
