"""uvicorn's fast HTTP protocol (httptools) with a time and a size limit on request heads.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a client that sends a
header byte every few seconds keeps a connection, and its memory, forever: any received data
cancels that timer. Here a connection must deliver each request's complete head within
`header_timeout_s` of being opened, or of the first byte of each later request (between
requests uvicorn's keep-alive limit applies), else it is closed. httptools has no limit on a
head's size (uvicorn's h11 protocol has one, at several times the CPU per request), so the
head's bytes are counted here too: past `max_header_bytes` the request is a 400 and the
connection closes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_ENV = "OPENAI_OCR_HEADER_TIMEOUT_S"
MAX_HEADER_BYTES_ENV = "OPENAI_OCR_MAX_HEADER_BYTES"
"""How uvicorn's worker processes learn the limits (the protocol class is built by uvicorn)."""


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into a parse error (a 400)."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self.max_header_bytes = int(os.environ.get(MAX_HEADER_BYTES_ENV, "65536"))
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_pending = True
        self._head_bytes = 0

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

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            raise HeadTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_pending:  # a later request on this connection: its head is timed
            self._head_pending = True
            self._arm()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self._head_pending and not self.transport.is_closing():
            self.transport.close()
