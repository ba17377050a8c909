"""A spec-following Server-Sent Events reader for tests (WHATWG event-stream parsing)."""

from __future__ import annotations

from collections.abc import Iterable


def parse_sse(lines: Iterable[str]) -> list[str]:
    """The `data` of each event, multi-line data joined with "\\n", comments skipped."""
    events: list[str] = []
    data: list[str] | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data is not None:
                events.append("\n".join(data))
            data = None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data = (data or []) + [value]
    if data is not None:
        events.append("\n".join(data))
    return events
