"""uvicorn's HTTP protocol with a time limit on request headers.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a client that sends a
header byte every few seconds keeps a connection, and its memory, forever: any received data
cancels that timer. Here a connection must deliver each request's complete head within
`header_timeout_s` of being opened, or of the first byte of each later request (between
requests uvicorn's keep-alive limit applies), else it is closed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_ENV = "OPENAI_OCR_HEADER_TIMEOUT_S"
"""How uvicorn's worker processes learn the limit (the protocol class is built by uvicorn)."""


class HeaderTimeoutProtocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self._header_timer: asyncio.TimerHandle | None = None
        self._between_requests = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_overdue)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self._between_requests and self.conn.their_state is h11.IDLE:
            self._between_requests = False  # a new request starts: its head has a time limit
            self._arm()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a complete request head has arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._between_requests = True  # idle: uvicorn's keep-alive timer runs now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
