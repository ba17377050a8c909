"""Usage per API key: what each request cost, by key id, route, model and UTC day.

The service code that finishes a request (the Recognizer, the page streamer, the chat paths)
charges what it computed (`charge`) to the meter of the request it runs for, which a context
variable holds: the HTTP layer opens one per request (`metering`), the batch runner one per
line. When the request ends, the meter goes to the `UsageRecorder`: the Prometheus counters at
once, the store (when there is one) through a buffer flushed every second and at shutdown,
so no request waits for the database.

The key id is the caller's identity of the API-key middleware (a short hash of the key, never
the key; "anonymous" without keys), the one the Files and Batch API use as `owner`.

The quotas (`openai_ocr.service.quotas`) read a key's pages of the current UTC day and month
with `pages_used`: the store's figure, read once per key and again after each write (every
`FLUSH_INTERVAL_S`), plus what this process counted and has not written yet, so a check costs
no database read. Several processes (workers, replicas) on one store see each other's pages
at their next write: their figures lag by up to the flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from openai_ocr.errors import BadRequest, NotFound, OCRError, Unavailable
from openai_ocr.metrics import Metrics
from openai_ocr.ocr.models import Usage
from openai_ocr.protocol.usage import UsageBucket, UsageReport, UsageTotals
from openai_ocr.storage.base import StateStore
from openai_ocr.storage.store import USAGE_COUNTS

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
"""The key id of every caller of a server without API keys."""
BATCH_ROUTE = "/v1/batches"
"""The route a Batch API line's usage is counted under (whatever its endpoint)."""
FLUSH_INTERVAL_S = 1.0
"""Seconds between two writes of the buffered usage to the store."""
DEFAULT_DAYS = 30
"""Days `GET /v1/usage` reports without `start` (today included)."""
MAX_DAYS = 366
"""The longest range `GET /v1/usage` reports."""
NO_STORE = ("usage per key is kept in the store of files and batches, which is off on this server "
            "(batches.enabled = false); the Prometheus counters openai_ocr_key_* still count it")


def add(into: UsageTotals, other: UsageTotals) -> None:
    """Add `other`'s counters to `into`'s."""
    for name in USAGE_COUNTS:
        setattr(into, name, getattr(into, name) + getattr(other, name))


class UsageRecord(UsageBucket):
    """The counters of one (day, key id, route, model) bucket: what the store adds up."""

    @property
    def bucket(self) -> tuple[str, str, str, str]:
        return self.date, self.key_id, self.route, self.model


class UsageMeter:
    """What one request (or batch line) has cost so far, by model."""

    def __init__(self) -> None:
        self.by_model: dict[str, UsageTotals] = {}

    def charge(self, model: str, usage: Usage, pages: int, images: int | None = None,
               engine_seconds: float | None = None) -> None:
        counts = self.by_model.setdefault(model, UsageTotals(requests=1))
        add(counts, UsageTotals(
            pages=pages, images=images if images is not None else max(usage.attempts, pages),
            image_tokens=usage.image_tokens, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            engine_seconds=engine_seconds if engine_seconds is not None else usage.engine_ms / 1000))

    def total(self) -> UsageTotals:
        """The request's figures over all its models (what its access line reports)."""
        total = UsageTotals(requests=0)
        for counts in self.by_model.values():
            add(total, counts)
        return total

    def records(self, key_id: str, route: str, day: str) -> list[UsageRecord]:
        return [UsageRecord(date=day, key_id=key_id, route=route, model=model, **counts.model_dump())
                for model, counts in self.by_model.items()]


_meter: ContextVar[UsageMeter | None] = ContextVar("openai_ocr_usage_meter", default=None)


@contextlib.contextmanager
def metering() -> Iterator[UsageMeter]:
    """Charges made inside the block (tasks it starts included) go to the meter it yields."""
    meter = UsageMeter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def charge(model: str, usage: Usage, pages: int, images: int | None = None,
           engine_seconds: float | None = None) -> None:
    """Count a finished request's cost to the meter of the request running (none: not counted).

    `images` defaults to the engine calls made (`usage.attempts`, at least one a page),
    `engine_seconds` to `usage.engine_ms`."""
    meter = _meter.get()
    if meter is not None:
        meter.charge(model, usage, pages, images, engine_seconds)


def utc_day(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).date().isoformat()


def _day(value: str, param: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{param} must be a date as YYYY-MM-DD, not {value[:40]!r}", param=param) from None


def report_range(start: str | None, end: str | None, today: dt.date | None = None) -> tuple[str, str]:
    """The days `start`..`end` (both included) of a usage report: by default the last
    DEFAULT_DAYS days up to today (UTC); a 400 for a bad date, an inverted or too long range."""
    last = _day(end, "end") if end is not None else (today or dt.datetime.now(dt.UTC).date())
    if start is not None:
        first = _day(start, "start")
    elif last.toordinal() > DEFAULT_DAYS:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
    else:  # the first days of year 1
        first = dt.date.min
    if first > last:
        raise BadRequest(f"start ({first}) is after end ({last})", param="start")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRequest(f"the range holds {(last - first).days + 1} days; at most {MAX_DAYS}", param="start")
    return first.isoformat(), last.isoformat()


def report(start: str, end: str, key_id: str | None, rows: list[dict[str, Any]]) -> UsageReport:
    """The `GET /v1/usage` answer for the store's buckets `rows`."""
    data = [UsageBucket.model_validate(row) for row in rows]
    totals = UsageTotals()
    for bucket in data:
        add(totals, bucket)
    totals.engine_seconds = round(totals.engine_seconds, 3)
    return UsageReport(start=start, end=end, key_id=key_id, data=data, totals=totals)


def merge(records: list[UsageRecord], into: dict[tuple[str, str, str, str], UsageRecord]) -> None:
    for record in records:
        held = into.get(record.bucket)
        if held is None:
            into[record.bucket] = record.model_copy()
        else:
            add(held, record)


class UsageRecorder:
    """Counts each finished request in the Prometheus counters, and in the store's `key_usage`
    table through a buffer that a background task writes every second (and `close` at the
    end); without a store, only the counters count."""

    def __init__(self, store: StateStore | None, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._pending: dict[tuple[str, str, str, str], UsageRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._write = asyncio.Lock()
        #: the time usage is dated by, and the quotas' windows are read at (a test moves it)
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        #: the buckets `flush` is writing (counted by `pages_used` until the store is read again)
        self._writing: dict[tuple[str, str, str, str], UsageRecord] = {}
        #: key id -> (month "YYYY-MM", pages by day of that month up to today) as the store had them
        self._stored: dict[str, tuple[str, dict[str, int]]] = {}
        #: without a store: this process's pages by (key id, day), for the quotas
        self._memory: dict[tuple[str, str], int] = {}

    def record(self, meter: UsageMeter, key_id: str | None, route: str) -> None:
        """Count what `meter` holds for `key_id` (None: anonymous) on `route` (no I/O)."""
        if not meter.by_model:
            return
        records = meter.records(key_id or ANONYMOUS, route, utc_day(self.clock()))
        for record in records:
            self.metrics.count_key_usage(record.key_id, record.route, record.requests, record.pages,
                                         record.images, record.prompt_tokens,
                                         record.completion_tokens, record.image_tokens,
                                         record.engine_seconds)
        if self.store is not None:
            merge(records, self._pending)
        else:
            for record in records:
                bucket = (record.key_id, record.date)
                self._memory[bucket] = self._memory.get(bucket, 0) + record.pages

    def start(self) -> None:
        if self.store is not None and self._task is None:
            self._task = asyncio.create_task(self._flush_often(), name="openai-ocr-usage")

    async def _flush_often(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        """Write what is buffered (off the event loop); kept for the next try on a store error."""
        if self.store is None:
            return
        async with self._write:
            batch, self._pending = self._pending, {}
            if batch:
                self._writing = batch
                rows = [record.model_dump() for record in batch.values()]
                try:
                    await asyncio.to_thread(self.store.add_usage, rows)
                except (OCRError, OSError) as exc:
                    logger.warning("usage: could not write %d buckets to the store (%s); kept for "
                                   "the next try", len(rows), exc)
                    merge(list(self._pending.values()), batch)
                    self._pending, self._writing = batch, {}
                    return
            await self._reread()

    # -- pages per key, for the quotas ------------------------------------------------------
    async def _reread(self) -> None:
        """The store's pages of the keys whose quotas are checked, read again (other processes'
        writes included; this process's last write too, so `_writing` is emptied at once)."""
        if not self._stored:
            self._writing = {}
            return
        now = self.clock()
        month, today = now.strftime("%Y-%m"), utc_day(now)
        wanted = list(self._stored)
        try:
            if len(wanted) <= 4:
                found = {key: await asyncio.to_thread(self._read_pages, key, month, today) for key in wanted}
            else:
                found = await asyncio.to_thread(self._read_all_pages, month, today)
        except Exception as exc:  # noqa: BLE001 - quotas never stop the service
            logger.warning("usage: could not read the pages per key for the quotas (%s); read "
                           "again at the next check", exc)
            self._stored, self._writing = {}, {}
            return
        self._stored = {key: (month, found.get(key, {})) for key in wanted}
        self._writing = {}

    def _read_pages(self, key_id: str, month: str, today: str) -> dict[str, int]:
        assert self.store is not None
        by_day: dict[str, int] = {}
        for row in self.store.usage(f"{month}-01", today, key_id):
            by_day[row["date"]] = by_day.get(row["date"], 0) + int(row["pages"])
        return by_day

    def _read_all_pages(self, month: str, today: str) -> dict[str, dict[str, int]]:
        assert self.store is not None
        found: dict[str, dict[str, int]] = {}
        for row in self.store.usage(f"{month}-01", today, None):
            by_day = found.setdefault(row["key_id"], {})
            by_day[row["date"]] = by_day.get(row["date"], 0) + int(row["pages"])
        return found

    async def pages_used(self, key_id: str) -> tuple[int, int]:
        """(pages of the current UTC day, pages of the current UTC month) of `key_id`: the
        store's figure (read at the key's first check, then after each write) plus this
        process's unwritten counts; without a store, this process's counts since it started.
        A store that cannot be read counts nothing (logged): quotas never stop the service."""
        now = self.clock()
        today = utc_day(now)
        month = today[:7]
        if self.store is None:
            for old in [b for b in self._memory if not b[1].startswith(month)]:
                del self._memory[old]
            return (self._memory.get((key_id, today), 0),
                    sum(n for (key, _), n in self._memory.items() if key == key_id))
        held = self._stored.get(key_id)
        if self.store.problem:  # a damaged store (503s on its routes): this process's counts only
            held = (month, {})
        if held is None or held[0] != month:
            async with self._write:  # not while a write is half seen
                try:
                    by_day = await asyncio.to_thread(self._read_pages, key_id, month, today)
                except Exception as exc:  # noqa: BLE001 - quotas never stop the service
                    logger.warning("usage: could not read the pages of key %s for its quotas (%s)",
                                   key_id, exc)
                    by_day = {}
                else:
                    self._stored[key_id] = (month, by_day)
        else:
            by_day = held[1]
        day = by_day.get(today, 0)
        monthly = sum(n for date, n in by_day.items() if date <= today)
        for record in (*self._writing.values(), *self._pending.values()):
            if record.key_id == key_id and record.date[:7] == month and record.date <= today:
                monthly += record.pages
                day += record.pages if record.date == today else 0
        return day, monthly

    async def report(self, start: str, end: str, key_id: str | None) -> UsageReport:
        """The usage of `key_id` (None: every key) on the days `start`..`end`, this process's
        buffer written first; 404 without a store, 503 while it is damaged."""
        if self.store is None:
            raise NotFound(NO_STORE)
        if self.store.problem:
            raise Unavailable(self.store.problem)
        await self.flush()
        rows = await asyncio.to_thread(self.store.usage, start, end, key_id)
        return report(start, end, key_id, rows)

    async def close(self) -> None:
        """Stop the background writes and write what is left (before the store closes)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._pending:
            logger.error("usage: %d buckets could not be written at shutdown and are lost",
                         len(self._pending))
