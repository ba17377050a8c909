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


async def test_waiting_pages_are_admitted_by_priority_then_arrival() -> None:
    """Interactive pages first, then batch lines' pages in line order, each in arrival order;
    a page that gave up waiting is passed over."""
    budget = CostBudget(max_pixels=1000, max_pages=1, max_wait_s=30)
    admitted: list[str] = []
    release = asyncio.Event()

    async def page(name: str, priority: tuple[float, ...], wait_s: float | None = None) -> None:
        async with budget.reserve(10, priority=priority, wait_s=wait_s):
            admitted.append(name)
            await release.wait()

    holder = asyncio.ensure_future(page("holder", (0.0,)))
    await asyncio.sleep(0)
    waiters = [asyncio.ensure_future(page(name, priority)) for name, priority in [
        ("line 2", (1.0, 5, 2)), ("line 1 a", (1.0, 5, 1)), ("interactive", (0.0,)),
        ("line 1 b", (1.0, 5, 1)), ("earlier batch", (1.0, 4, 9))]]
    gives_up = asyncio.ensure_future(page("gives up", (0.0,), wait_s=0.01))
    await asyncio.sleep(0.05)
    with pytest.raises(TooManyRequests):
        await gives_up
    for _ in waiters:  # one page at a time (max_pages=1): each finishes, the next enters
        release.set()
        await asyncio.sleep(0)
        release.clear()
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(holder, *waiters)
    assert admitted == ["holder", "interactive", "earlier batch", "line 1 a", "line 1 b", "line 2"]
    assert (budget.pixels, budget.pages) == (0, 0)


async def test_a_page_that_may_wait_longer_is_not_refused_at_max_wait() -> None:
    """A batch line's page (`wait_s`: its line's time) outwaits `max_wait_s`."""
    budget = CostBudget(max_pixels=1000, max_pages=1, max_wait_s=0.01)
    async with budget.reserve(10):
        waiter = asyncio.ensure_future(budget.reserve(10, wait_s=5).__aenter__())
        await asyncio.sleep(0.1)  # ten times max_wait_s
        assert not waiter.done()
    await waiter
    assert budget.pages == 1
