"""A deadline on reading a request body: 408 and the connection closed when it is missed.

uvicorn times nothing between a request's headers and the end of its body, and
`limits.request_timeout_s` starts only once the body is parsed: a client sending a byte every
few seconds held its request slot, and its memory, for as long as it liked. Here the body's
first N bytes must have arrived within `connections.body_timeout_s + N /
connections.body_min_rate` seconds of the headers (a grace period, then a minimum average
rate), else `receive` raises and the client gets a JSON 408 with `Connection: close`.

Once the body is complete, `receive` is passed through untouched (handlers wait on it for
the client's disconnect). An answer sent before the body was read whole also closes the
connection, so a slow body cannot outlive its request on a kept-alive connection.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException

from openai_ocr.api.middleware.asgi import Scope, send_json
from openai_ocr.errors import RequestTimeout


class BodyTimeout(HTTPException):
    """Raised from `receive`; an HTTPException, so FastAPI's body parsing lets it through."""

    def __init__(self, seconds: float) -> None:
        super().__init__(HTTPStatus.REQUEST_TIMEOUT, f"the request body did not arrive in time "
                         f"({seconds:.0f} s; connections.body_timeout_s, body_min_rate)")


def _expects_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


class _BodyClock:
    """One request's body deadline: a single timer, armed at the end of the grace period and
    moved on as bytes arrive; on expiry it cancels the task waiting in `receive`, if any (a
    timer per `receive` call cost 10 us each: 190 us on a 1 MB body)."""

    def __init__(self, grace_s: float, min_rate: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.grace_s = grace_s
        self.min_rate = min_rate
        self.received = 0
        self.complete = self.expired = False
        self.waiter: asyncio.Task[Any] | None = None
        self.timer: asyncio.TimerHandle | None = self.loop.call_at(self.started + grace_s, self._check)

    def _check(self) -> None:
        self.timer = None
        if self.complete:
            return
        due = self.started + self.grace_s + self.received / self.min_rate
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check)
            return
        self.expired = True
        if self.waiter is not None:
            self.waiter.cancel()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def elapsed(self) -> float:
        return self.loop.time() - self.started


class BodyDeadlineMiddleware:
    def __init__(self, app: Any, grace_s: float, min_rate: float) -> None:
        self.app = app
        self.grace_s = grace_s
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _expects_body(scope):
            await self.app(scope, receive, send)
            return
        clock = _BodyClock(self.grace_s, self.min_rate)
        replied = False

        async def timed_receive() -> Any:
            if clock.complete:
                return await receive()
            if clock.expired:
                raise BodyTimeout(clock.elapsed())
            task = clock.waiter = asyncio.current_task()
            try:
                message = await receive()
            except asyncio.CancelledError:
                if not clock.expired or task is None or task.uncancel() > 0:
                    raise  # cancelled by someone else too (a client gone, a shutdown)
                raise BodyTimeout(clock.elapsed()) from None
            finally:
                clock.waiter = None
            if message["type"] == "http.request":
                clock.received += len(message.get("body", b""))
                clock.complete = not message.get("more_body", False)
            else:  # the client left
                clock.complete = True
            if clock.complete:
                clock.stop()
            return message

        async def closing_send(message: Any) -> None:
            nonlocal replied
            if message["type"] == "http.response.start":
                replied = True
                if not clock.complete:  # timed out, or answered unread: close
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, timed_receive, closing_send)
        except BodyTimeout as exc:
            if replied:
                raise
            error = RequestTimeout(str(exc.detail))
            await send_json(send, 408, error.as_json(), [(b"connection", b"close")])
        finally:
            clock.stop()
