"""Helpers for async streams of chunks, groups of tasks and deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from openai_ocr.errors import EngineTimeout

T = TypeVar("T")


async def aclose(chunks: AsyncIterator[object]) -> None:
    """Close an async generator (cancelling the work behind it); other iterators have nothing to close."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


async def primed(chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """Await the first item now, so a failing start raises here rather than mid-response.

    Returns an iterator over all items (the first included) that closes `chunks` when it
    is closed itself, so a client that leaves still cancels the work behind it.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        await aclose(chunks)
        return _empty()
    except BaseException:
        await aclose(chunks)
        raise
    return _chain(first, chunks)


async def _empty() -> AsyncIterator[T]:
    return
    yield


async def _chain(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await aclose(rest)


async def gather_or_cancel(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Like asyncio.gather, but the first failure cancels the rest (no orphaned work)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@contextlib.asynccontextmanager
async def within(deadline: float | None, limit_s: float,
                 on_timeout: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """The block ends at `deadline` (time.monotonic) with a 504, its work cancelled
    (`on_timeout` is called first: the time-out counter)."""
    if deadline is None:
        yield
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
            yield
    except TimeoutError:
        if on_timeout is not None:
            on_timeout()
        raise EngineTimeout(f"the request did not finish within {limit_s:g} s") from None
