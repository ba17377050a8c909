"""Quotas per API key: pages per UTC day and per UTC calendar month, and requests at once.

A key's limits are its own in `auth.keys_file`, else the `[quotas]` defaults (unset or 0: no
limit). The pages are those counted by `openai_ocr.service.usage` (persisted in the store, so
a restart does not reset them). The pages a request will read are not always known before it
reads (a PDF's page count, a chat request's images), so a request is refused only when the
key is already at or over a quota when it starts; the pages it reads are counted when it ends.
A request may so overshoot a quota by its own pages (and requests running at once by theirs).
Across several processes or replicas on one store, each sees the others' pages up to the usage
flush interval late (`usage.FLUSH_INTERVAL_S`). `max_concurrent` counts the requests of this
process only: with N workers a key may have N times as many in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from openai_ocr.errors import QuotaExceeded
from openai_ocr.service.keys import KeyRing
from openai_ocr.service.usage import UsageRecorder
from openai_ocr.settings import QuotaSettings


@dataclass(frozen=True)
class Limits:
    """A key's quotas (None: no limit)."""

    pages_per_day: int | None = None
    pages_per_month: int | None = None
    max_concurrent: int | None = None

    @property
    def on_pages(self) -> bool:
        return self.pages_per_day is not None or self.pages_per_month is not None


@dataclass(frozen=True)
class Exhausted:
    """A used-up pages quota: which, how far, and when its window ends."""

    quota: str  # "pages_per_day" or "pages_per_month"
    used: int
    limit: int
    resets_at: dt.datetime
    now: dt.datetime

    @property
    def wait_s(self) -> float:
        return max(0.0, (self.resets_at - self.now).total_seconds())

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.wait_s))

    def message(self, key_label: str) -> str:
        window = "UTC day" if self.quota == "pages_per_day" else "UTC month"
        return (f"quota {self.quota} of key {key_label} is used up ({self.used} of {self.limit} "
                f"pages this {window}); it resets at {self.resets_at.isoformat().replace('+00:00', 'Z')}")

    def error(self, key_label: str) -> QuotaExceeded:
        return QuotaExceeded(self.message(key_label), self.retry_after_s)


def next_midnight(now: dt.datetime) -> dt.datetime:
    """The next UTC midnight after `now`."""
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def next_month(now: dt.datetime) -> dt.datetime:
    """The first of the next UTC month, at midnight."""
    now = now.astimezone(dt.UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def _limit(own: int | None, default: int | None) -> int | None:
    value = own if own is not None else default
    return value or None  # 0: no limit


class Quotas:
    """The quotas of every key of a server process: pages checked against the usage counts,
    requests at once counted here."""

    def __init__(self, keys: KeyRing, defaults: QuotaSettings, usage: UsageRecorder) -> None:
        self.keys = keys
        self.defaults = defaults
        self.usage = usage
        self._in_flight: dict[str, int] = {}

    def limits(self, key_id: str) -> Limits:
        key = self.keys.by_id(key_id)
        d = self.defaults
        if key is None:
            return Limits(_limit(None, d.pages_per_day), _limit(None, d.pages_per_month),
                          _limit(None, d.max_concurrent))
        return Limits(_limit(key.pages_per_day, d.pages_per_day),
                      _limit(key.pages_per_month, d.pages_per_month),
                      _limit(key.max_concurrent, d.max_concurrent))

    def label(self, key_id: str) -> str:
        name = self.keys.name_of(key_id)
        return f"{name} ({key_id})" if name else key_id

    async def exhausted(self, key_id: str) -> Exhausted | None:
        """The pages quota `key_id` is at or over now (the day's first), or None."""
        limits = self.limits(key_id)
        if not limits.on_pages:
            return None
        day, month = await self.usage.pages_used(key_id)
        now = self.usage.clock()
        if limits.pages_per_day is not None and day >= limits.pages_per_day:
            return Exhausted("pages_per_day", day, limits.pages_per_day, next_midnight(now), now)
        if limits.pages_per_month is not None and month >= limits.pages_per_month:
            return Exhausted("pages_per_month", month, limits.pages_per_month, next_month(now), now)
        return None

    async def check_pages(self, key_id: str) -> None:
        """QuotaExceeded (429, Retry-After at the window's end) when a pages quota is used up."""
        over = await self.exhausted(key_id)
        if over is not None:
            raise over.error(self.label(key_id))

    def enter(self, key_id: str) -> None:
        """Count one more request of `key_id` in flight; QuotaExceeded (Retry-After: 1) when
        it has `max_concurrent` already. Each `enter` that returns needs its `leave`."""
        limit = self.limits(key_id).max_concurrent
        held = self._in_flight.get(key_id, 0)
        if limit is not None and held >= limit:
            raise QuotaExceeded(f"quota max_concurrent of key {self.label(key_id)} is reached "
                                f"({held} of {limit} requests in flight on this server process); "
                                "retry when one has ended", 1)
        self._in_flight[key_id] = held + 1

    @contextlib.asynccontextmanager
    async def admitted(self, key_id: str) -> AsyncIterator[None]:
        """One request of `key_id` under its quotas for the block: QuotaExceeded when a pages
        quota is used up (`check_pages`) or it has `max_concurrent` in flight (`enter`); the
        slot is held until the block ends."""
        await self.check_pages(key_id)
        self.enter(key_id)
        try:
            yield
        finally:
            self.leave(key_id)

    def in_flight(self, key_id: str) -> int:
        """Requests of `key_id` in flight in this process (counted against `max_concurrent`)."""
        return self._in_flight.get(key_id, 0)

    def leave(self, key_id: str) -> None:
        held = self._in_flight.get(key_id, 0) - 1
        if held > 0:
            self._in_flight[key_id] = held
        else:
            self._in_flight.pop(key_id, None)
