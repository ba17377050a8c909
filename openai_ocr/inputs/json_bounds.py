"""The cost of parsing a JSON body, bounded before it is parsed.

A JSON parser's time and memory follow the number of values in a body, not its size: 11 MiB
of `{"k0":0,"k1":0,...}` is a million keys (and, with a strict schema, a million validation
errors). `check_json_bounds` counts a body's object members and array items (the commas and
opening brackets outside strings) and its nesting from the bytes alone, so a body over the
limits is refused in milliseconds and never parsed.

Strings are skipped, not scanned: the next quote is found with `bytes.find` (memchr), so a
page image of megabytes in base64 costs one call. Only a string holding an escaped quote
needs its backslashes looked at; past `MAX_ESCAPED_QUOTES` of them the rest of the body is
de-escaped at once (two `bytes.replace`, which keep every offset), so no input makes the scan
slower than linear.
"""

from __future__ import annotations

from openai_ocr.errors import PayloadTooLarge

MAX_ESCAPED_QUOTES = 1024
"""Escaped quotes looked at one by one before the rest of the body is de-escaped at once."""

_BACKSLASH = ord("\\")
_LONGEST_RUN = 64
"""Backslashes counted one by one before a quote; a longer run de-escapes the rest at once."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def outside_strings(body: bytes, max_strings: int) -> bytes | None:
    """The bytes of `body` outside its JSON strings (the strings and their quotes removed),
    or None when it holds more than `max_strings` strings.

    Exact for valid JSON; for anything else some bytes may be counted on the wrong side,
    which the parser then refuses anyway.
    """
    data = body
    find = data.find
    parts: list[bytes] = []
    pos = strings = escaped = 0
    plain = False  # True once the rest of `data` holds no escaped quote
    while True:
        start = find(b'"', pos)
        if start < 0:
            parts.append(data[pos:])
            return b"".join(parts)
        parts.append(data[pos:start])
        strings += 1
        if strings > max_strings:
            return None
        end = find(b'"', start + 1)
        while not plain and end > 0 and data[end - 1] == _BACKSLASH:
            before, floor = end - 1, end - 2 - _LONGEST_RUN
            while before > floor and data[before] == _BACKSLASH:  # stops at `start` at the latest
                before -= 1
            run = end - 1 - before
            if run <= _LONGEST_RUN and run % 2 == 0:
                break  # `\\"`: an escaped backslash, then the string's end
            escaped += 1
            if run > _LONGEST_RUN or escaped > MAX_ESCAPED_QUOTES:
                # `\\` then `\"` become two inert bytes each: same offsets, no escaped quote left
                data = data[:start] + data[start:].replace(b"\\\\", b"__").replace(b'\\"', b"__")
                find = data.find
                plain = True
                end = find(b'"', start + 1)
                break
            end = find(b'"', end + 1)
        if end < 0:  # an unterminated string: the parser refuses it
            return b"".join(parts)
        pos = end + 1


def nesting_over(outside: bytes, max_depth: int) -> bool:
    """Whether the brackets of `outside` (a body without its strings) nest deeper than
    `max_depth`; stops at the first bracket past it, or at a closer without an opener."""
    depth = 0
    for byte in outside.translate(None, _NOT_BRACKETS):
        if byte in _OPENERS:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
            if depth < 0:
                return False
    return False


def check_json_bounds(body: bytes, max_items: int, max_depth: int) -> None:
    """413 for a JSON body with more than `max_items` members and items, or nested deeper
    than `max_depth`, from its bytes alone (before any parsing)."""
    if len(body) <= max_depth:  # too short to be over either limit
        return
    # Every string is a key or a value, and a key or value after the first of its object or
    # array follows a comma: more than 2 * max_items + 2 strings is over the limit.
    outside = outside_strings(body, 2 * max_items + 2)
    openers = -1 if outside is None else outside.count(b"[") + outside.count(b"{")
    if outside is None or outside.count(b",") + openers > max_items:
        raise PayloadTooLarge(f"the JSON body holds more than {max_items} members and items "
                              "(limits.max_json_items)", param="body")
    if openers > max_depth and nesting_over(outside, max_depth):
        raise PayloadTooLarge(f"the JSON body is nested deeper than {max_depth} levels "
                              "(limits.max_json_depth)", param="body")
