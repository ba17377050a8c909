"""Reading order and DeepSeek-OCR-shaped output for text lines found by a line OCR engine.

Line engines (rapidocr) return boxes and texts in no particular order. This module, pure
and engine-free, puts them into reading order (columns found by an XY-cut on vertical
gutters, lines that span the gutter kept in place) and writes the three outputs the lite
engine answers: plain text, DeepSeek-OCR's grounding format, and `Locate` boxes.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openai_ocr.ocr.grounding import GRID


@dataclass(frozen=True)
class TextLine:
    """One recognised line: an axis-aligned box in pixels, its text and the engine's score.

    `angle` is the tilt of the line's baseline in degrees (positive: falling to the right),
    which a scanned page shares across its lines; reading order straightens the page by it.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    text: str
    score: float = 1.0
    angle: float = 0.0

    @property
    def height(self) -> float:
        return max(self.y2 - self.y1, 1.0)

    @property
    def cy(self) -> float:
        return (self.y1 + self.y2) / 2


@dataclass(frozen=True)
class LineBlock:
    """Detected lines of one paragraph (or one heading, or one row), with the label DeepSeek-OCR uses.

    Not `openai_ocr.ocr.grounding.Block`, which is parsed from a model's answer: this one is
    built from the detector's lines and rendered into such an answer.
    """

    label: str
    lines: tuple[TextLine, ...]

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (min(ln.x1 for ln in self.lines), min(ln.y1 for ln in self.lines),
                max(ln.x2 for ln in self.lines), max(ln.y2 for ln in self.lines))


# ---------------------------------------------------------------- reading order

def reading_order(lines: Sequence[TextLine], page_width: float, page_height: float) -> list[TextLine]:
    """Lines in reading order: columns left to right, each top to bottom.

    A recursive XY-cut: find a vertical gutter (an x range that only a few lines cross);
    the lines crossing it (titles, full-width paragraphs) split the page into horizontal
    bands and stay where they are; inside each band the left side is read before the right.
    Without a gutter, lines are read by rows (pieces of one row left to right).
    A tilted scan is straightened first (see `deskewed`), so its gutters and rows line up.
    """
    min_gap = max(page_width * 0.012, 4.0)
    straight = deskewed(lines, page_width, page_height)
    original = {id(s): ln for s, ln in zip(straight, lines, strict=True)}
    return [original[id(s)] for s in _order(straight, min_gap)]


MIN_SKEW = 0.2
"""Degrees below which a page is taken as straight."""


def page_skew(lines: Sequence[TextLine]) -> float:
    """The page's tilt in degrees: the median angle of its long lines (short ones are noisy)."""
    angles = [ln.angle for ln in lines if ln.x2 - ln.x1 > 3 * ln.height]
    return statistics.median(angles) if angles else 0.0


def deskewed(lines: Sequence[TextLine], page_width: float, page_height: float) -> list[TextLine]:
    """The lines as they would lie on the page rotated straight (about its centre).

    Each box becomes the straight box of its line: the centre rotated back, the width the
    line's length, the height its thickness. A page tilted by 2 degrees moves text 50 px
    sideways over an A4 column at 150 dpi: enough to close a gutter and merge rows.
    """
    skew = page_skew(lines)
    if abs(skew) < MIN_SKEW:
        return list(lines)
    theta = math.radians(skew)
    cos, sin = math.cos(theta), math.sin(theta)
    ox, oy = page_width / 2, page_height / 2
    out = []
    for ln in lines:
        width, height = ln.x2 - ln.x1, ln.y2 - ln.y1
        length = width / cos
        thickness = max(height - width * abs(math.tan(theta)), min(height, 1.0))
        dx, dy = (ln.x1 + ln.x2) / 2 - ox, (ln.y1 + ln.y2) / 2 - oy
        cx, cy = ox + dx * cos + dy * sin, oy - dx * sin + dy * cos
        out.append(TextLine(cx - length / 2, cy - thickness / 2, cx + length / 2, cy + thickness / 2,
                            ln.text, ln.score))
    return out


def _order(lines: list[TextLine], min_gap: float) -> list[TextLine]:
    if len(lines) <= 1:
        return list(lines)
    gutter = _find_gutter(lines, min_gap)
    if gutter is None:
        return _by_rows(lines)
    spanning = sorted((ln for ln in lines if ln.x1 < gutter < ln.x2), key=lambda ln: ln.cy)
    rest = [ln for ln in lines if not ln.x1 < gutter < ln.x2]
    out: list[TextLine] = []
    for index in range(len(spanning) + 1):
        top = spanning[index - 1].cy if index > 0 else float("-inf")
        bottom = spanning[index].cy if index < len(spanning) else float("inf")
        band = [ln for ln in rest if top <= ln.cy < bottom]
        left = [ln for ln in band if ln.x2 <= gutter]
        right = [ln for ln in band if ln.x1 >= gutter]
        out += _order(left, min_gap) + _order(right, min_gap)
        if index < len(spanning):
            out.append(spanning[index])
    return out


def _find_gutter(lines: list[TextLine], min_gap: float) -> float | None:
    """The x of the best vertical gutter, or None.

    A gutter is an empty x range (between two consecutive box edges) at least `min_gap`
    wide, crossed by at most 40% of the lines, with a text column on each side (see
    `_is_column`), so ragged line ends, a right-aligned date or the cells of a table never
    make columns. The fewest crossing lines win, then the widest gap.
    """
    xs = sorted({ln.x1 for ln in lines} | {ln.x2 for ln in lines})
    allowed = int(len(lines) * 0.4)
    best: tuple[int, float, float] | None = None  # (-crossing, width, x)
    for a, b in itertools.pairwise(xs):
        if b - a < min_gap:
            continue
        mid = (a + b) / 2
        crossing = sum(1 for ln in lines if ln.x1 < mid < ln.x2)
        if crossing > allowed:
            continue
        left = [ln for ln in lines if ln.x2 <= mid]
        right = [ln for ln in lines if ln.x1 >= mid]
        if _is_column(left) and _is_column(right):
            candidate = (-crossing, b - a, mid)
            best = candidate if best is None or candidate > best else best
    return None if best is None else best[2]


def _is_column(lines: list[TextLine]) -> bool:
    """Lines that look like a column of running text, not table cells or scattered notes.

    At least two lines, typically 5+ line-heights wide (a dozen characters or more),
    and covering at least 30% of their own vertical extent (a column is dense).
    """
    if len(lines) < 2:
        return False
    height = statistics.median(ln.height for ln in lines)
    if statistics.median(ln.x2 - ln.x1 for ln in lines) < 5 * height:
        return False
    spans = sorted((ln.y1, ln.y2) for ln in lines)
    covered, reach = 0.0, spans[0][0]
    for y1, y2 in spans:
        if y2 > reach:
            covered += y2 - max(y1, reach)
            reach = y2
    return covered >= 0.3 * (reach - spans[0][0])


def _by_rows(lines: list[TextLine]) -> list[TextLine]:
    """Top to bottom; pieces whose vertical centres fall in one row are read left to right."""
    rows: list[list[TextLine]] = []
    for ln in sorted(lines, key=lambda ln: (ln.cy, ln.x1)):
        row = rows[-1] if rows else None
        if row is not None and abs(ln.cy - statistics.fmean(r.cy for r in row)) < 0.5 * min(
                ln.height, min(r.height for r in row)):
            row.append(ln)
        else:
            rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.x1)]


# ---------------------------------------------------------------- blocks and text

def _same_row(a: TextLine, b: TextLine) -> bool:
    return b.x1 >= a.x2 - 0.5 * min(a.height, b.height) and abs(a.cy - b.cy) < 0.5 * min(a.height, b.height)


def _body_height(lines: Sequence[TextLine]) -> float:
    return statistics.median(ln.height for ln in lines) if lines else 1.0


def _starts_block(prev: TextLine, line: TextLine, body: float) -> bool:
    """A new paragraph: a column jump, a large vertical gap, or a change of font size."""
    if line.y1 < prev.y1 - 0.5 * prev.height:            # went back up: next column
        return True
    if line.x1 > prev.x2 or line.x2 < prev.x1:            # no horizontal overlap
        return True
    if line.y1 - prev.y2 > 0.8 * min(prev.height, line.height):
        return True
    ratio = line.height / prev.height
    return ratio > 1.3 or ratio < 1 / 1.3 or (prev.height > 1.3 * body) != (line.height > 1.3 * body)


def _rows(ordered: Sequence[TextLine]) -> list[list[TextLine]]:
    """Consecutive pieces of one visual row grouped together."""
    rows: list[list[TextLine]] = []
    for ln in ordered:
        if rows and _same_row(rows[-1][-1], ln):
            rows[-1].append(ln)
        else:
            rows.append([ln])
    return rows


def _row_line(row: Sequence[TextLine]) -> TextLine:
    return TextLine(min(r.x1 for r in row), min(r.y1 for r in row), max(r.x2 for r in row),
                    max(r.y2 for r in row), " ".join(r.text for r in row),
                    min(r.score for r in row))


def to_blocks(ordered: Sequence[TextLine], *, paragraphs: bool = True) -> list[LineBlock]:
    """Group ordered lines into blocks; label clearly larger lines as headings.

    With `paragraphs=False` every visual row is its own block (DeepSeek-OCR's "OCR this
    image." granularity). A heading is a row at least 1.3x the median row height: `title`
    when it is the first block, `sub_title` after that.
    """
    rows = [_row_line(row) for row in _rows(ordered)]
    if not rows:
        return []
    body = _body_height(rows)
    groups: list[list[TextLine]] = []
    for row in rows:
        if groups and paragraphs and not _starts_block(groups[-1][-1], row, body):
            groups[-1].append(row)
        else:
            groups.append([row])
    blocks = []
    for index, group in enumerate(groups):
        large = statistics.median(ln.height for ln in group) >= 1.3 * body
        label = ("title" if index == 0 else "sub_title") if large else "text"
        blocks.append(LineBlock(label=label, lines=tuple(group)))
    return blocks


def to_plain_text(ordered: Sequence[TextLine]) -> str:
    """One text line per visual row, and a blank line between paragraphs."""
    blocks = to_blocks(ordered)
    return "\n\n".join("\n".join(ln.text for ln in block.lines) for block in blocks)


# ---------------------------------------------------------------- grounding format

def grid_box(box: tuple[float, float, float, float], width: float, height: float) -> list[int]:
    """A pixel box on DeepSeek-OCR's 0..999 grid: x_grid = round(x / width * 999), clamped."""
    x1, y1, x2, y2 = box

    def scale(value: float, size: float) -> int:
        return min(GRID, max(0, round(value / max(size, 1.0) * GRID)))

    return [scale(x1, width), scale(y1, height), scale(x2, width), scale(y2, height)]


def _det(boxes: Iterable[list[int]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in box) + "]" for box in boxes) + "]"


def to_grounding(ordered: Sequence[TextLine], width: float, height: float, *,
                 markdown: bool = True) -> str:
    """DeepSeek-OCR's grounding output: `<|ref|>label<|/ref|><|det|>[[box]]<|/det|>` + text.

    `markdown=True` ("Convert the document to markdown."): paragraphs as blocks, lines
    joined by spaces, headings prefixed with `#`/`##`. `markdown=False` ("OCR this image."):
    one block per visual row, text as read. Blocks are separated by a blank line.
    """
    parts = []
    for block in to_blocks(ordered, paragraphs=markdown):
        if markdown:
            text = _join_paragraph(ln.text for ln in block.lines)
            prefix = {"title": "# ", "sub_title": "## "}.get(block.label, "")
            text = prefix + text
        else:
            text = "\n".join(ln.text for ln in block.lines)
        head = f"<|ref|>{block.label}<|/ref|><|det|>{_det([grid_box(block.box, width, height)])}<|/det|>"
        parts.append(f"{head}\n{text}")
    return "\n\n".join(parts)


def _join_paragraph(texts: Iterable[str]) -> str:
    """Soft line breaks become spaces; a word hyphenated at the line end is joined again."""
    out = ""
    for text in texts:
        text = text.strip()
        if not out:
            out = text
        elif re.search(r"[A-Za-z]-$", out) and text[:1].islower():
            out = out[:-1] + text
        else:
            out = f"{out} {text}"
    return out


# ---------------------------------------------------------------- locate

def locate_boxes(lines: Sequence[TextLine], query: str) -> list[tuple[float, float, float, float]]:
    """Pixel boxes of every occurrence of `query` (case-insensitive) in the lines.

    A line engine gives no character positions, so an occurrence inside a longer line is
    boxed by its share of the line's characters: an estimate, exact for whole lines.
    """
    needle = query.strip().casefold()
    if not needle:
        return []
    boxes = []
    for ln in lines:
        hay = ln.text.casefold()
        count = max(len(hay), 1)
        start = hay.find(needle)
        while start >= 0:
            end = start + len(needle)
            width = ln.x2 - ln.x1
            boxes.append((ln.x1 + width * start / count, ln.y1, ln.x1 + width * end / count, ln.y2))
            start = hay.find(needle, end)
    return boxes


def to_locate(lines: Sequence[TextLine], query: str, width: float, height: float) -> str:
    """DeepSeek-OCR's answer to `Locate <|ref|>X<|/ref|> in the image.`; "" when X is absent."""
    boxes = locate_boxes(lines, query)
    if not boxes:
        return ""
    return f"<|ref|>{query.strip()}<|/ref|><|det|>{_det(grid_box(b, width, height) for b in boxes)}<|/det|>"
