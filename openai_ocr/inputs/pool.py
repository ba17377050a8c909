"""Decoding and PDF rendering in a small pool of worker processes that can be stopped.

A thread cannot be interrupted, so an image or PDF page that takes a minute to decode would
hold its thread (and pdfium's lock) after its request timed out or its client left. Here each
task runs in a worker process (pebble's ProcessPool): a task past its time, or one whose
caller is cancelled, is ended by killing its worker, which the pool replaces. Each worker has
its own pdfium, and optionally an address-space limit, so one bomb cannot take the server's
memory. `workers=0` runs tasks in threads instead (no kill; for embedding and tests).

Inside a traced request a task's time in its worker is a span (`worker <function>`): the
worker measures it (`_timed`) and the server records the span with those times, so the
workers export nothing themselves.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import multiprocessing
import time
from collections.abc import Callable
from typing import Any, TypeVar

from openai_ocr import telemetry
from openai_ocr.errors import BadRequest, EngineTimeout, PayloadTooLarge, Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
PRELOAD = "openai_ocr.inputs.documents"
"""Imported by the fork server, so every worker starts with Pillow and pdfium loaded."""


NICENESS = 10


def _ready() -> bool:
    return True


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int, int, int]:
    """fn(*args, **kwargs) with when it started and ended (`time.time_ns`) and the worker's pid."""
    import os

    started = time.time_ns()
    result = fn(*args, **kwargs)
    return result, started, time.time_ns(), os.getpid()


def _limit_memory(max_bytes: int) -> None:
    """Worker initializer: cap the address space, so a bomb fails with MemoryError (413).

    Workers also run at a lower CPU priority: on a busy machine the server's event loop
    (probes, small requests, cancellations) comes before decoding.
    """
    import os

    os.nice(NICENESS)
    if max_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class DecodePool:
    """`await pool.run(fn, *args, deadline=...)`: fn(*args) in a worker, ended at the deadline."""

    def __init__(self, workers: int, *, memory_limit_mb: int = 0, max_tasks: int = 200) -> None:
        self.workers = workers
        self._memory = memory_limit_mb * 1024 * 1024
        self._max_tasks = max_tasks
        self._pool: Any = None

    def _ensure(self) -> Any:
        if self._pool is None:
            import pebble

            # forkserver: workers start from a clean process, not a copy of the server's
            # threads; the decoders are imported there once, so a replaced worker is quick
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([PRELOAD])
            self._pool = pebble.ProcessPool(
                max_workers=self.workers, max_tasks=self._max_tasks, initializer=_limit_memory,
                initargs=(self._memory,), context=context)
            atexit.register(self.close)  # also where no lifespan closes it (the vLLM plugin)
        return self._pool

    async def start(self) -> None:
        """Start every worker now, so the first requests do not pay for it."""
        if self.workers > 0:
            await asyncio.gather(*(self.run(_ready) for _ in range(self.workers)))

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float | None = None,
                  **kwargs: Any) -> T:
        """Run `fn` until `deadline` (time.monotonic); 504 past it, its worker killed."""
        if telemetry.recording():
            timed: tuple[T, int, int, int] = await self._run(_timed, fn, *args, deadline=deadline, **kwargs)
            result, started, ended, pid = timed
            telemetry.timed_span(f"worker {getattr(fn, '__name__', 'task')}", started, ended,
                                 {"process.pid": pid, "ocr.page": telemetry.current_page()})
            return result
        return await self._run(fn, *args, deadline=deadline, **kwargs)

    async def _run(self, fn: Callable[..., T], *args: Any, deadline: float | None = None,
                   **kwargs: Any) -> T:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise EngineTimeout("the request ran out of time before its input was decoded")
        if self.workers <= 0:
            try:
                return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout)
            except TimeoutError:
                raise EngineTimeout("decoding the input took longer than the request's "
                                    "time limit") from None
        future = self._ensure().schedule(fn, args=args, kwargs=kwargs, timeout=timeout)
        try:  # the deadline covers the wait for a free worker too
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.CancelledError:
            future.cancel()  # pebble kills the worker running it and starts a new one
            raise
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise EngineTimeout("decoding the input took longer than the request's time "
                                "limit; it was stopped") from None
        except MemoryError:
            raise PayloadTooLarge("the input needs too much memory to decode") from None
        except _expired() as exc:
            logger.warning("a decoder process died (%s)", exc)
            raise BadRequest("the input could not be decoded (its decoder stopped)") from None
        except concurrent.futures.BrokenExecutor:
            logger.error("the decoder pool broke; starting a new one")
            self.close()
            raise Unavailable("the decoders are restarting; retry shortly",
                              headers={"Retry-After": "1"}) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None


def _expired() -> type[BaseException]:
    import pebble

    return pebble.ProcessExpired
