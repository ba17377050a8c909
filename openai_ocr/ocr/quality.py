"""What one page's model output is worth: repetition loops found and cut out, truncation seen.

DeepSeek-OCR's best-known failure is the repetition loop: a table row, a line, a grounding
tag or a few characters repeated until `max_tokens` stops it (its users measured about 9% of
hard pages). `find_loop` looks for one in two ways, on text whose digit runs are collapsed
to one mark (a loop often counts: rows 1, 2, 3..., boxes [[10, 20, ...]], [[10, 21, ...]]),
and then keeps only repeats whose numbers, place by place, stay the same or count by a fixed
step: a table's rows have the same shape too, but other numbers.

- the tail: the longest stretch at the end of the text repeating one unit of up to
  `MAX_UNIT` characters (a Z-function over the reversed text: linear time);
- runs of the same line, or of the same group of up to `MAX_LINE_UNIT` lines, anywhere (a
  loop the model left again, or that the n-gram guard broke up).

Output that `max_tokens` cut is judged readily; output that ended on its own needs a much
longer run, so a form's many blank rows are not taken for a loop. Pure: no I/O.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from openai_ocr.ocr.models import QualityFlag

MAX_UNIT = 600
"""Longest repeated unit the tail check looks for, in characters."""
MAX_LINE_UNIT = 4
"""Longest group of lines the line check looks for."""
TAIL_WINDOW = 4096
"""Characters at the end of the text in which the tail check finds a loop's period (enough
for `WHEN_CUT.repeats` copies of the longest unit); the loop is then followed back as far
as it goes."""

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Thresholds:
    """How much repetition makes a loop."""

    repeats: int
    chars: int


WHEN_CUT = Thresholds(repeats=6, chars=200)
"""For output `max_tokens` cut: a loop is what usually runs into the limit."""
WHEN_ENDED = Thresholds(repeats=30, chars=1500)
"""For output that ended on its own: only a long run is a loop."""


@dataclass(frozen=True)
class Loop:
    """A repetition in the original text: `[start, end)`, whose first `unit_end - start`
    characters are the first copy of the unit (kept when the loop is cut out)."""

    start: int
    unit_end: int
    end: int
    repeats: int

    @property
    def removed_chars(self) -> int:
        return self.end - self.unit_end


@dataclass(frozen=True)
class Verdict:
    loop: Loop | None
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.loop is None and not self.truncated

    @property
    def flags(self) -> list[QualityFlag]:
        flags: list[QualityFlag] = []
        if self.loop is not None:
            flags.append("repetition_loop")
        if self.truncated:
            flags.append("truncated")
        return flags


def judge(text: str, finish_reason: str | None) -> Verdict:
    truncated = finish_reason == "length"
    return Verdict(find_loop(text, WHEN_CUT if truncated else WHEN_ENDED), truncated)


def find_loop(text: str, thresholds: Thresholds = WHEN_CUT) -> Loop | None:
    """The largest repetition in `text` that passes `thresholds`, or None."""
    found = [loop for loop in (_tail_loop(_Normalized(text), thresholds), _line_loop(text, thresholds))
             if loop is not None]
    return max(found, key=lambda loop: loop.removed_chars) if found else None


def looping_now(text: str) -> bool:
    """Whether an answer still being written has run into a loop (its end only: cheap enough
    to ask every few hundred characters of a stream)."""
    return _tail_loop(_Normalized(text[-2 * TAIL_WINDOW:]), WHEN_CUT) is not None


def without_loop(text: str, loop: Loop | None) -> str:
    """The text with the loop's repeats cut out (its first copy of the unit is kept)."""
    if loop is None:
        return text
    return text[:loop.unit_end] + text[loop.end:]


class _Normalized:
    """`text` with every digit run as `#`, and the way back to offsets in `text`."""

    def __init__(self, text: str) -> None:
        self._source = text
        self.text = _DIGITS.sub("#", text)
        self._marks: list[int] = []  # where each `#` is in the normalized text
        self._shifts = [0]  # characters removed up to and including each mark
        removed = 0
        for match in _DIGITS.finditer(text):
            self._marks.append(match.start() - removed)
            removed += match.end() - match.start() - 1
            self._shifts.append(removed)

    def origin(self, index: int) -> int:
        """The offset in the original text of the normalized text's `index`."""
        return index + self._shifts[bisect.bisect_left(self._marks, index)]

    def original(self, start: int, end: int) -> str:
        """The original text of the normalized text's [start, end)."""
        return self._source[self.origin(start):self.origin(end)]


def z_function(s: str) -> list[int]:
    """z[i] = length of the longest common prefix of `s` and `s[i:]` (z[0] = len(s))."""
    n = len(s)
    z = [0] * n
    if n:
        z[0] = n
    left = right = 0
    for i in range(1, n):
        if i < right:
            z[i] = min(right - i, z[i - left])
        while i + z[i] < n and s[z[i]] == s[i + z[i]]:
            z[i] += 1
        if i + z[i] > right:
            left, right = i, i + z[i]
    return z


def _tail_loop(normalized: _Normalized, limits: Thresholds) -> Loop | None:
    """The end of the text repeating one unit: for a period p of the reversed tail, z[p] + p
    characters at the end repeat with period p. The smallest period that passes wins."""
    norm, origin = normalized.text, normalized.origin
    offset = max(0, len(norm) - TAIL_WINDOW)
    tail = norm[offset:]
    z = z_function(tail[::-1])
    for period in range(1, min(MAX_UNIT, len(tail) // 2) + 1):
        span = z[period] + period
        if span // period >= limits.repeats and span >= limits.chars:
            start = _back(norm, offset + len(tail) - span, period)
            units = [normalized.original(start + i * period, start + (i + 1) * period)
                     for i in range((len(norm) - start) // period)]
            counting = _counting_runs(units)[-1]
            start += counting[0] * period
            repeats = counting[1] - counting[0]
            if repeats >= limits.repeats and len(norm) - start >= limits.chars:
                return Loop(origin(start), origin(start + period), origin(len(norm)), repeats)
    return None


def _numbers(text: str) -> list[int | str]:
    """The digit runs of `text`; very long ones as text (compared for equality only)."""
    return [int(n) if len(n) <= 18 else n for n in _DIGITS.findall(text)]


def _step(before: list[int | str], after: list[int | str]) -> tuple[int, ...] | None:
    """Place by place, how the numbers changed from one repeat to the next; None where they
    cannot count (a different count of numbers, long numbers that differ)."""
    if len(before) != len(after):
        return None
    steps: list[int] = []
    for a, b in zip(before, after, strict=True):
        if isinstance(a, int) and isinstance(b, int):
            steps.append(b - a)
        elif a == b:
            steps.append(0)
        else:
            return None
    return tuple(steps)


def _counting_runs(units: list[str]) -> list[tuple[int, int]]:
    """The maximal stretches [first, end) of `units` (alike but for their numbers) whose
    numbers change by the same step from each unit to the next, in order."""
    rows = [_numbers(unit) for unit in units]
    runs: list[tuple[int, int]] = []
    first, step = 0, None
    for i in range(1, len(rows)):
        change = _step(rows[i - 1], rows[i])
        if change is None:
            runs.append((first, i))
            first, step = i, None
        elif step is None:
            step = change
        elif change != step:
            runs.append((first, i))
            first, step = i - 1, change
    runs.append((first, len(rows)))
    return runs


def _back(norm: str, start: int, period: int) -> int:
    """Where the `period`-periodic stretch ending at the text's end really starts, before
    the tail window: whole units first, then characters."""
    while start >= period and norm[start - period:start] == norm[start:start + period]:
        start -= period
    while start > 0 and norm[start - 1] == norm[start - 1 + period]:
        start -= 1
    return start


def _line_loop(text: str, limits: Thresholds) -> Loop | None:
    """The longest run of one line, or group of lines, repeated back to back."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    keys = [_DIGITS.sub("#", line.strip()) for line in lines]
    best: Loop | None = None
    for size in range(1, MAX_LINE_UNIT + 1):
        run = 0  # lines i with keys[i] == keys[i - size], back to back
        for i in range(size, len(keys) + 1):
            if i < len(keys) and keys[i] == keys[i - size]:
                run += 1
                continue
            first = i - run - size
            if (run + size) // size >= limits.repeats and any(keys[first:first + size]):  # not blank
                groups = ["\n".join(lines[g:g + size]) for g in range(first, i - size + 1, size)]
                for a, b in _counting_runs(groups):
                    start, end = first + a * size, min(first + b * size, len(lines))
                    loop = Loop(starts[start], starts[start + size], min(starts[end], len(text)), b - a)
                    if loop.repeats >= limits.repeats and loop.end - loop.start >= limits.chars and (
                            best is None or loop.removed_chars > best.removed_chars):
                        best = loop
            run = 0
    return best
