"""Admission by cost: a server-wide budget of decoded pixels and pages in flight.

Counting requests is not enough: one request can carry a thousand 64-megapixel frames. Each
page reserves its decoded pixel count (known from the headers) before it is decoded and
holds it until its OCR is done. Past the budget a page waits, up to `max_wait_s`, then the
request gets 429 with Retry-After, so memory stays bounded under any mix of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

from openai_ocr.errors import PayloadTooLarge, TooManyRequests


class CostBudget:
    def __init__(self, max_pixels: int, max_pages: int, max_wait_s: float) -> None:
        self.max_pixels = max_pixels
        self.max_pages = max_pages
        self.max_wait_s = max_wait_s
        self.pixels = 0
        self.pages = 0
        self._changed = asyncio.Condition()

    def _fits(self, pixels: int) -> bool:
        return self.pixels + pixels <= self.max_pixels and self.pages + 1 <= self.max_pages

    @contextlib.asynccontextmanager
    async def reserve(self, pixels: int, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold `pixels` and one page for the block; wait for room, then 429 (Retry-After)."""
        if pixels > self.max_pixels:
            raise PayloadTooLarge(f"one page needs {pixels} pixels; this server decodes at most "
                                  f"{self.max_pixels} at a time")
        limit = time.monotonic() + self.max_wait_s
        if deadline is not None:
            limit = min(limit, deadline)
        async with self._changed:
            while not self._fits(pixels):
                try:
                    await asyncio.wait_for(self._changed.wait(), max(0.0, limit - time.monotonic()))
                except TimeoutError:
                    raise TooManyRequests(
                        f"the server is decoding {self.pixels} pixels ({self.pages} pages); "
                        "retry shortly", max(1, math.ceil(self.max_wait_s))) from None
            self.pixels += pixels
            self.pages += 1
        try:
            yield
        finally:
            async with self._changed:
                self.pixels -= pixels
                self.pages -= 1
                self._changed.notify_all()
