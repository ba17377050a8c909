"""The server-wide pixel/page budget: pages wait for room, then 429 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from openai_ocr.errors import PayloadTooLarge, TooManyRequests
from openai_ocr.service.budget import CostBudget


async def test_a_page_waits_for_room_and_gets_it_when_another_finishes() -> None:
    budget = CostBudget(max_pixels=100, max_pages=10, max_wait_s=30)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with budget.reserve(80):
            entered.set()
            await release.wait()

    task = asyncio.ensure_future(holder())
    await entered.wait()
    waiter = asyncio.ensure_future(_enter(budget, 50))
    await asyncio.sleep(0)  # the waiter is now blocked: 80 + 50 > 100
    assert not waiter.done() and budget.pixels == 80
    release.set()
    await task
    assert await waiter == 50 and budget.pixels == 0 and budget.pages == 0


async def _enter(budget: CostBudget, pixels: int) -> int:
    async with budget.reserve(pixels):
        return budget.pixels


async def test_past_the_wait_the_answer_is_429_with_retry_after() -> None:
    budget = CostBudget(max_pixels=1000, max_pages=1, max_wait_s=0.05)
    async with budget.reserve(10):
        with pytest.raises(TooManyRequests) as caught:
            await _enter(budget, 10)  # the page budget (1) is full
    assert caught.value.headers["Retry-After"] == "1"
    assert (budget.pixels, budget.pages) == (0, 0)


async def test_a_page_larger_than_the_whole_budget_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        await _enter(CostBudget(max_pixels=10, max_pages=1, max_wait_s=1), 11)
