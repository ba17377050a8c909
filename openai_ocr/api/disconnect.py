"""Cancel a handler when its client goes away (as vLLM's `with_cancellation` does).

Without this a non-streaming request keeps the engine busy after the client has left; with
it, the handler task is cancelled, which closes the upstream call or aborts the vLLM request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLIENT_CLOSED = 499
"""Status recorded for a request whose client left (nginx's convention); nobody reads it."""


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def cancel_on_disconnect(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T | Response]]:
    """Decorate an endpoint that takes `request: Request`; call only after the body is read."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> T | Response:
        request: Request = kwargs["request"]
        work = asyncio.ensure_future(handler(*args, **kwargs))
        watcher = asyncio.ensure_future(_wait_for_disconnect(request))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server itself cancels us: take the work along
            work.cancel()
            raise
        finally:
            watcher.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        logger.info("client left; request %s cancelled",
                    getattr(request.state, "request_id", "?"))
        return Response(status_code=CLIENT_CLOSED)

    return wrapper
