"""Readers of one stored file at the same time share one copy (and one file for a large PDF)."""

from __future__ import annotations

import asyncio
import os

import pytest

from openai_ocr.errors import NotFound
from openai_ocr.service import shared_reads
from openai_ocr.service.shared_reads import SharedReads
from tests.helpers import blank_pdf


async def test_readers_at_once_share_one_load_and_the_last_release_drops_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = blank_pdf(30)
    monkeypatch.setattr(shared_reads, "SPILL_BYTES", len(pdf) - 1)  # this PDF counts as large
    loads = 0
    gate = asyncio.Event()

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        await gate.wait()
        return bytes(pdf)

    reads = SharedReads()
    first = asyncio.ensure_future(reads.open(("owner", "file-1"), load))
    second = asyncio.ensure_future(reads.open(("owner", "file-1"), load))
    other_owner = asyncio.ensure_future(reads.open(("someone else", "file-1"), load))
    await asyncio.sleep(0)
    gate.set()
    (a, release_a), (b, release_b), (c, release_c) = await asyncio.gather(first, second, other_owner)
    assert loads == 2 and a is b and a is not c  # one load per owner and file
    assert a.path is not None and open(a.path, "rb").read() == pdf
    release_a()
    assert os.path.exists(a.path)  # the second reader still reads it
    path = a.path
    release_b()
    assert not os.path.exists(path) and a.data == b""
    release_c()
    (d, release_d) = await reads.open(("owner", "file-1"), load)
    assert loads == 3 and d is not a  # nobody held it: read again
    release_d()


async def test_a_failed_read_fails_its_waiters_and_the_next_reader_tries_again() -> None:
    calls = 0
    gate = asyncio.Event()

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        if calls == 1:
            raise NotFound("no such file")
        return b"small, not a PDF"

    reads = SharedReads()
    waiting = [asyncio.ensure_future(reads.open(("o", "f"), load)) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, NotFound) for r in results)
    held, release = await reads.open(("o", "f"), load)
    assert held.data == b"small, not a PDF" and held.path is None and calls == 2
    release()


async def test_a_reader_cancelled_while_it_reads_leaves_the_others_their_read() -> None:
    """The first reader (say an interactive request whose client left) is cancelled during the
    read: a batch line waiting on the same file reads it itself instead of being cancelled with
    it, and a waiter cancelled in turn gives its place back (nothing is held afterwards)."""
    started, gate = asyncio.Event(), asyncio.Event()
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        return b"data"

    reads = SharedReads()
    first = asyncio.ensure_future(reads.open(("o", "f"), load))
    await started.wait()
    waiter = asyncio.ensure_future(reads.open(("o", "f"), load))
    leaver = asyncio.ensure_future(reads.open(("o", "f"), load))
    await asyncio.sleep(0)
    leaver.cancel()
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    held, release = await waiter
    assert held.data == b"data" and calls == 2
    assert first.cancelled() and leaver.cancelled()
    release()
    assert not reads._held  # every reader gave its place back
