"""Stored files read once while several requests read them at the same time.

`openai-ocr batch` sends a long PDF as many page-range lines of one uploaded file, and the
batch runner runs them together: each line reading the file itself would hold one copy per
line (30 copies of a 200 MB PDF). Here the readers of one file share one copy, and, for a
large PDF, one temporary file that the decoder processes open by path instead of being sent
the whole document with every page. The last reader's release drops both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from openai_ocr.inputs.pdf import is_pdf

SPILL_BYTES = 4 * 1024 * 1024
"""A PDF larger than this goes to the decoder processes as a file, not as bytes per page."""


@dataclass
class Held:
    data: bytes
    #: the data in a temporary file (a PDF over `SPILL_BYTES`), else None
    path: str | None = None
    readers: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: BaseException | None = None


def spill(data: bytes) -> str | None:
    """A large PDF written to a temporary file (its path); None for anything else."""
    if len(data) <= SPILL_BYTES or not is_pdf(data):
        return None
    handle, path = tempfile.mkstemp(prefix="openai-ocr-", suffix=".pdf")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
    except BaseException:
        remove(path)
        raise
    return path


def remove(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


class SharedReads:
    """`await reads.open(key, load)`: the file's bytes and path, shared by every reader of
    `key` until each has called the `release` it got."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], Held] = {}

    async def open(self, key: tuple[str, str], load: Callable[[], Awaitable[bytes]]
                   ) -> tuple[Held, Callable[[], None]]:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = Held(b"")
            held.readers += 1
            try:
                held.data = await load()
                held.path = await asyncio.to_thread(spill, held.data)
            except BaseException as exc:
                held.failed = exc
                del self._held[key]  # a reader coming later tries again
                self._release(key, held)
                raise
            finally:
                held.ready.set()
        else:
            held.readers += 1
            try:
                await held.ready.wait()
            except BaseException:  # this reader was cancelled while another read the file
                self._release(key, held)
                raise
            if held.failed is not None:
                self._release(key, held)
                if not isinstance(held.failed, Exception):  # the first reader was cancelled, not
                    return await self.open(key, load)     # the read: this one reads it again
                raise held.failed  # the first reader's error (a 404, a 413) is this one's too
        return held, lambda: self._release(key, held)

    def readers(self, key: tuple[str, str]) -> int:
        """How many readers hold `key`'s copy now (0: none is held)."""
        held = self._held.get(key)
        return held.readers if held is not None else 0

    def _release(self, key: tuple[str, str], held: Held) -> None:
        held.readers -= 1
        if held.readers <= 0:
            if self._held.get(key) is held:
                del self._held[key]
            remove(held.path)
            held.data, held.path = b"", None
