"""Page layout for text lines found by a line OCR engine: blocks, reading order, output.

Line engines return boxes and texts in no particular order. This module, pure and
engine-free, turns them (and, when a layout model found them, labelled page regions:
figures, captions, tables, headers) into DeepSeek-OCR-shaped blocks in reading order:

1. the page is straightened by the median tilt of its lines (`deskewed`);
2. running headers and footers are taken out (a model's regions, or small lines alone in
   the top/bottom margin) and placed first and last;
3. lines inside a figure, caption, table, title or equation region become one unit with
   that region's label (unless its lines do not fit the label, see `_plausible`); the
   other lines stay single units; a caption joins the figure or table next to it;
4. units are ordered by a recursive XY-cut (`_order`): white horizontal strips across
   everything cut the page into sections; inside one, a vertical gutter splits it into
   columns; units crossing it that are headings or cover both columns split it into
   horizontal bands (titles, full-width spans); narrower crossing units (a photo across
   the gutter, its caption set between the columns) are floats read after the band's
   columns, so they never cut a column in two;
5. consecutive lines become paragraphs, headings (`title`/`sub_title`) by size, and rows
   of aligned cells become `table` blocks written as HTML `<table>`s.
"""

from __future__ import annotations

import html
import itertools
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from openai_ocr.ocr.grounding import GRID
from openai_ocr.ocr.words import FoundWord

Box = tuple[float, float, float, float]

REGION_LABELS = {
    "text": "text", "reference": "text", "title": "title", "figure": "image",
    "figure_caption": "image_caption", "table": "table", "table_caption": "table_caption",
    "header": "header", "footer": "footer", "equation": "equation",
}
"""CDLA class names (the layout model's) to DeepSeek-OCR's grounding labels."""

UNIT_LABELS = frozenset({"title", "image", "image_caption", "table", "table_caption", "equation"})
"""Region labels whose lines are read as one unit; `text` regions leave lines to the rules."""


@dataclass(frozen=True)
class TextLine:
    """One recognised line: an axis-aligned box in pixels, its text and the engine's score.

    `angle` is the tilt of the line's baseline in degrees (positive: falling to the right),
    which a scanned page shares across its lines; reading order straightens the page by it.
    `words` are the line's words with their page boxes and scores, as the reader found them.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    text: str
    score: float = 1.0
    angle: float = 0.0
    words: tuple[FoundWord, ...] = ()

    @property
    def height(self) -> float:
        return max(self.y2 - self.y1, 1.0)

    @property
    def cy(self) -> float:
        return (self.y1 + self.y2) / 2


@dataclass(frozen=True)
class Region:
    """A labelled page area found by a layout model (pixels), label already DeepSeek-OCR's."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0


@dataclass(frozen=True)
class LineBlock:
    """Lines of one paragraph, heading, caption, table or figure, with DeepSeek-OCR's label.

    Not `openai_ocr.ocr.grounding.Block`, which is parsed from a model's answer: this one is
    built from the detector's lines and rendered into such an answer.

    `region` is the block's own box where it has one (a figure may hold no lines); `rows`
    holds a table's cells, row by row.
    """

    label: str
    lines: tuple[TextLine, ...]
    region: Box | None = None
    rows: tuple[tuple[str, ...], ...] = ()

    @property
    def box(self) -> Box:
        if self.region is not None:
            return self.region
        return (min(ln.x1 for ln in self.lines), min(ln.y1 for ln in self.lines),
                max(ln.x2 for ln in self.lines), max(ln.y2 for ln in self.lines))


@dataclass(eq=False)
class _Unit:
    """What the XY-cut orders: one free line, or every line of one labelled region."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = "text"
    lines: list[TextLine] = field(default_factory=list)
    line_height: float = 0.0
    members: list[_Unit] = field(default_factory=list)
    """A figure or table with its captions: read together, the figure first."""

    @property
    def height(self) -> float:
        return max(self.line_height or (self.y2 - self.y1), 1.0)

    @property
    def cy(self) -> float:
        return (self.y1 + self.y2) / 2


# ---------------------------------------------------------------- straightening

MIN_SKEW = 0.2
"""Degrees below which a page is taken as straight."""


def page_skew(lines: Sequence[TextLine]) -> float:
    """The page's tilt in degrees: the median angle of its long lines (short ones are noisy).

    The detector snaps many boxes of a slightly tilted page (under a degree) to exactly 0;
    when at least a quarter of the long lines carry an angle, those lines set the tilt.
    """
    angles = [ln.angle for ln in lines if ln.x2 - ln.x1 > 3 * ln.height]
    tilted = [a for a in angles if abs(a) > 0.05]
    if tilted and len(tilted) >= 0.25 * len(angles):
        return statistics.median(tilted)
    return statistics.median(angles) if angles else 0.0


def _turn(box: Box, skew: float, page_width: float, page_height: float, *, line: bool) -> Box:
    """A box as it lies on the page rotated straight by `skew` degrees about its centre.

    A line's box becomes the straight box of the line (its length and thickness); a region
    keeps its size and only its centre moves.
    """
    x1, y1, x2, y2 = box
    theta = math.radians(skew)
    cos, sin = math.cos(theta), math.sin(theta)
    width, height = x2 - x1, y2 - y1
    if line:
        width, height = width / cos, max(height - width * abs(math.tan(theta)), min(height, 1.0))
    ox, oy = page_width / 2, page_height / 2
    dx, dy = (x1 + x2) / 2 - ox, (y1 + y2) / 2 - oy
    cx, cy = ox + dx * cos + dy * sin, oy - dx * sin + dy * cos
    return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def deskewed(lines: Sequence[TextLine], page_width: float, page_height: float) -> list[TextLine]:
    """The lines as they would lie on the page rotated straight (about its centre).

    A page tilted by 2 degrees moves text 50 px sideways over an A4 column at 150 dpi:
    enough to close a gutter and merge rows.
    """
    skew = page_skew(lines)
    if abs(skew) < MIN_SKEW:
        return list(lines)
    return [TextLine(*_turn((ln.x1, ln.y1, ln.x2, ln.y2), skew, page_width, page_height, line=True),
                     ln.text, ln.score, words=ln.words) for ln in lines]


# ---------------------------------------------------------------- page analysis

def page_blocks(lines: Sequence[TextLine], page_width: float, page_height: float,
                regions: Sequence[Region] = (), *, paragraphs: bool = True) -> list[LineBlock]:
    """The page's blocks in reading order (see the module docstring for the steps).

    With `paragraphs=False` every visual row of running text is its own block (DeepSeek-OCR's
    "OCR this image." granularity).
    """
    skew = page_skew(lines)
    straight = deskewed(lines, page_width, page_height)
    original = {id(s): ln for s, ln in zip(straight, lines, strict=True)}
    if abs(skew) >= MIN_SKEW:
        turned = [Region(r.label, *_turn((r.x1, r.y1, r.x2, r.y2), skew, page_width, page_height,
                                         line=False), r.score) for r in regions]
    else:
        turned = list(regions)
    body = _body_height(straight)

    units, heads, feet = _units(straight, turned, page_height, body)
    ordered = _order(_attach_captions(units, body), max(page_width * 0.008, 4.0), body)
    ordered = [m for u in ordered for m in (u.members or [u])]
    blocks: list[LineBlock] = []
    for label, group in itertools.groupby(ordered, key=lambda u: "line" if u.label == "line" else id(u)):
        group_units = list(group)
        if label == "line":
            blocks += _text_blocks([u.lines[0] for u in group_units], body, paragraphs)
        else:
            blocks.append(_region_block(group_units[0], body))
    blocks = [LineBlock("header", tuple(h)) for h in heads] + blocks + [LineBlock("footer", tuple(f)) for f in feet]
    return _headings([_restore(b, original) for b in blocks])


def reading_order(lines: Sequence[TextLine], page_width: float, page_height: float,
                  regions: Sequence[Region] = ()) -> list[TextLine]:
    """The page's lines in reading order (headers first, footers last)."""
    return [ln for block in page_blocks(lines, page_width, page_height, regions) for ln in block.lines]


def _units(lines: list[TextLine], regions: list[Region], page_height: float,
           body: float) -> tuple[list[_Unit], list[list[TextLine]], list[list[TextLine]]]:
    """Free lines and region units, and the header and footer lines taken out of the flow."""
    owner: dict[int, Region] = {}
    for ln in lines:
        best, share = None, 0.5
        for region in regions:
            overlap = _overlap(ln, region)
            if overlap > share:
                best, share = region, overlap
        if best is not None:
            owner[id(ln)] = best
    for ln in lines:  # a page's title set at the very top is no running header
        if id(ln) in owner and owner[id(ln)].label in ("header", "footer") and ln.height > 1.25 * body:
            del owner[id(ln)]
    heads = [ln for ln in lines if owner.get(id(ln)) and owner[id(ln)].label == "header"]
    feet = [ln for ln in lines if owner.get(id(ln)) and owner[id(ln)].label == "footer"]
    rest = [ln for ln in lines if not (owner.get(id(ln)) and owner[id(ln)].label in ("header", "footer"))]
    top, bottom = _margin_lines(rest, page_height, body)
    heads += top
    feet += bottom
    taken = {id(ln) for ln in top + bottom}
    units: list[_Unit] = []
    by_region: dict[int, _Unit] = {}
    for region in regions:
        if region.label in UNIT_LABELS:
            by_region[id(region)] = _Unit(region.x1, region.y1, region.x2, region.y2, region.label)
    for ln in rest:
        if id(ln) in taken:
            continue
        ln_region = owner.get(id(ln))
        unit = by_region.get(id(ln_region)) if ln_region is not None else None
        if unit is None:
            units.append(_Unit(ln.x1, ln.y1, ln.x2, ln.y2, "line", [ln], ln.height))
        else:
            unit.lines.append(ln)
    for region in regions:
        unit = by_region.get(id(region))
        if unit is None:
            continue
        if unit.lines and not _plausible(unit.label, [ln for ln in rest if _overlap(ln, region) > 0.5], body):
            units += [_Unit(ln.x1, ln.y1, ln.x2, ln.y2, "line", [ln], ln.height) for ln in unit.lines]
            continue
        if unit.lines or unit.label == "image":
            if unit.lines:  # the unit's box covers its lines, whatever the model's box
                own = unit.lines
                unit.x1, unit.y1 = min(unit.x1, *(ln.x1 for ln in own)), min(unit.y1, *(ln.y1 for ln in own))
                unit.x2, unit.y2 = max(unit.x2, *(ln.x2 for ln in own)), max(unit.y2, *(ln.y2 for ln in own))
                unit.line_height = statistics.median(ln.height for ln in unit.lines)
            units.append(unit)
    return units, _as_rows(heads), _as_rows(feet)


CAPTION_GAP = 3.0
"""A caption this many body-line heights or less from its figure or table belongs to it."""


def _attach_captions(units: list[_Unit], body: float) -> list[_Unit]:
    """Each caption joined to the nearest figure (or table) beside, below or above it.

    The pair is then one unit for the reading order, so a side caption in a margin never
    becomes a column of its own and a caption under a photo goes where the photo goes.
    """
    objects = [u for u in units if u.label in ("image", "table")]
    groups: dict[int, list[_Unit]] = {id(o): [o] for o in objects}
    joined: set[int] = set()
    for caption in (u for u in units if u.label in ("image_caption", "table_caption")):
        best, best_gap = None, CAPTION_GAP * body
        for obj in objects:
            dx = max(obj.x1 - caption.x2, caption.x1 - obj.x2, 0.0)
            dy = max(obj.y1 - caption.y2, caption.y1 - obj.y2, 0.0)
            gap = dx + dy if min(dx, dy) == 0 else float("inf")  # beside or above/below, not diagonal
            if gap <= best_gap:
                best, best_gap = obj, gap
        if best is not None:
            groups[id(best)].append(caption)
            joined.add(id(caption))
    out = []
    for unit in units:
        if id(unit) in joined:
            continue
        members = groups.get(id(unit), [unit])
        if len(members) == 1:
            out.append(unit)
            continue
        members = [unit, *sorted(members[1:], key=lambda m: (m.y1, m.x1))]
        out.append(_Unit(min(m.x1 for m in members), min(m.y1 for m in members), max(m.x2 for m in members),
                         max(m.y2 for m in members), unit.label, members=members))
    return out


def _plausible(label: str, covered: list[TextLine], body: float) -> bool:
    """Whether the lines a region covers fit its label; a layout model sometimes calls a
    column of running text a table or a figure, and reading it as one would scramble it.

    All the lines inside the region count, not only those it won from an overlapping
    region: a column found both as `text` and as `image` must not leave the image the one
    line that reaches past the text region's edge (it would be read mid-column).
    A table needs most of its rows split into cells and no gutter between columns of
    running text; a figure holds no running text (a few words at most); a title or caption
    is a few rows.
    """
    rows = _rows(_by_rows(covered))
    if label == "table":
        cells = [_Unit(ln.x1, ln.y1, ln.x2, ln.y2, "line", [ln], ln.height) for ln in covered]
        columns_of_text = _find_gutter(cells, max(body * 0.5, 4.0)) is not None
        return (len(rows) >= 2 and sum(1 for row in rows if _is_cell_row(row)) >= 0.5 * len(rows)
                and not columns_of_text)
    running = [ln for ln in covered if ln.x2 - ln.x1 >= 8 * body]
    if label == "image":
        return len(running) <= 2
    if label == "title":
        return len(rows) <= 3
    return len(rows) <= 6


def _as_rows(lines: list[TextLine]) -> list[list[TextLine]]:
    """Header or footer lines as one block (they are few): top to bottom, left to right."""
    return [_by_rows(lines)] if lines else []


def _overlap(ln: TextLine, region: Region) -> float:
    """The share of the line's area inside the region."""
    width = min(ln.x2, region.x2) - max(ln.x1, region.x1)
    height = min(ln.y2, region.y2) - max(ln.y1, region.y1)
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / max((ln.x2 - ln.x1) * (ln.y2 - ln.y1), 1.0)


MARGIN = 0.07
"""Share of the page height at the top and at the bottom where running headers and footers sit."""


def _margin_lines(lines: list[TextLine], page_height: float,
                  body: float) -> tuple[list[TextLine], list[TextLine]]:
    """Running header and footer lines: no larger than body text, alone in the top or bottom
    margin, and set apart from the body by at least a line's height."""
    def apart(group: list[TextLine], others: list[TextLine], below: bool) -> bool:
        if not group or not others or any(ln.height > 1.25 * body for ln in group):
            return False
        if below:
            return min(o.y1 for o in others) - max(g.y2 for g in group) >= body
        return min(g.y1 for g in group) - max(o.y2 for o in others) >= body

    top = [ln for ln in lines if ln.cy < MARGIN * page_height]
    bottom = [ln for ln in lines if ln.cy > (1 - MARGIN) * page_height]
    middle = [ln for ln in lines if MARGIN * page_height <= ln.cy <= (1 - MARGIN) * page_height]
    return (top if apart(top, middle, below=True) else [],
            bottom if apart(bottom, middle, below=False) else [])


def _restore(block: LineBlock, original: dict[int, TextLine]) -> LineBlock:
    """The block with the engine's own line boxes (not the straightened ones)."""
    lines = tuple(original.get(id(ln), ln) for ln in block.lines)
    return replace(block, lines=lines)


def _headings(blocks: list[LineBlock]) -> list[LineBlock]:
    """`title` for the first heading when nothing but a header comes before it, else `sub_title`."""
    out = []
    for index, block in enumerate(blocks):
        if block.label in ("title", "sub_title"):
            first = all(b.label == "header" for b in blocks[:index])
            block = replace(block, label="title" if first else "sub_title")
        out.append(block)
    return out


# ---------------------------------------------------------------- reading order

SPAN_COVER = 0.6
"""A unit crossing a gutter splits the page into bands when it covers at least this share of
the text on each side (or is a heading); narrower ones are floats."""


SECTION_GAP = 1.5
"""A horizontal strip of white at least this many body-line heights tall, across everything,
separates sections that are ordered on their own (a letterhead from a table, stories)."""


def _order(units: list[_Unit], min_gap: float, body: float) -> list[_Unit]:
    if len(units) <= 1:
        return list(units)
    sections = _sections(units, SECTION_GAP * body)
    if len(sections) > 1:
        return [u for section in sections for u in _order(section, min_gap, body)]
    gutter = _find_gutter(units, min_gap)
    if gutter is None:
        return _by_rows(units)
    crossing = [u for u in units if u.x1 < gutter < u.x2]
    rest = [u for u in units if not u.x1 < gutter < u.x2]
    left_edge = min(u.x1 for u in rest if u.x2 <= gutter)
    right_edge = max(u.x2 for u in rest if u.x1 >= gutter)
    spanning: list[_Unit] = []
    floats: list[_Unit] = []
    for unit in crossing:
        cover_left = (gutter - max(unit.x1, left_edge)) / max(gutter - left_edge, 1.0)
        cover_right = (min(unit.x2, right_edge) - gutter) / max(right_edge - gutter, 1.0)
        heading = unit.label == "title" or (unit.label == "line" and _large_text(unit.lines[0], body))
        wide = min(cover_left, cover_right) >= SPAN_COVER
        (spanning if heading or wide else floats).append(unit)
    spanning.sort(key=lambda u: u.cy)
    out: list[_Unit] = []
    for index in range(len(spanning) + 1):
        top = spanning[index - 1].cy if index > 0 else float("-inf")
        bottom = spanning[index].cy if index < len(spanning) else float("inf")
        band = [u for u in rest if top <= u.cy < bottom]
        left = [u for u in band if u.x2 <= gutter]
        right = [u for u in band if u.x1 >= gutter]
        out += _order(left, min_gap, body) + _order(right, min_gap, body)
        out += sorted((u for u in floats if top <= u.cy < bottom), key=lambda u: u.cy)
        if index < len(spanning):
            out.append(spanning[index])
    return out


def _sections(units: list[_Unit], gap: float) -> list[list[_Unit]]:
    """The units cut at every horizontal white strip at least `gap` tall, top to bottom.

    Figures count as white here (a picture between an abstract and the columns separates
    them as a blank would) and join the section their middle falls in.
    """
    text = [u for u in units if u.label != "image"]
    if not text:
        return [units]
    sections: list[list[_Unit]] = []
    reach = float("-inf")
    for unit in sorted(text, key=lambda u: u.y1):
        if sections and unit.y1 - reach < gap:
            sections[-1].append(unit)
        else:
            sections.append([unit])
        reach = max(reach, unit.y2)
    for figure in (u for u in units if u.label == "image"):
        home = min(sections, key=lambda sec: max(min(u.y1 for u in sec) - figure.cy,
                                                 figure.cy - max(u.y2 for u in sec), 0.0))
        home.append(figure)
    return sections


def _find_gutter(units: list[_Unit], min_gap: float) -> float | None:
    """The x of the best vertical gutter, or None.

    A gutter is an empty x range (between two consecutive box edges) at least `min_gap`
    wide, crossed by at most 40% of the units, with a text column on each side (see
    `_is_column`), so ragged line ends, a right-aligned date or the cells of a table never
    make columns. The fewest crossing units win, then the widest gap.
    """
    xs = sorted({u.x1 for u in units} | {u.x2 for u in units})
    allowed = int(len(units) * 0.4)
    best: tuple[int, float, float] | None = None  # (-crossing, width, x)
    for a, b in itertools.pairwise(xs):
        if b - a < min_gap:
            continue
        mid = (a + b) / 2
        crossing = sum(1 for u in units if u.x1 < mid < u.x2)
        if crossing > allowed:
            continue
        left = [u for u in units if u.x2 <= mid]
        right = [u for u in units if u.x1 >= mid]
        if _is_column(left) and _is_column(right):
            candidate = (-crossing, b - a, mid)
            best = candidate if best is None or candidate > best else best
    return None if best is None else best[2]


def _is_column(units: list[_Unit]) -> bool:
    """Units that look like a column of running text, not table cells or scattered notes.

    At least two text lines, typically 5+ line-heights wide (a dozen characters or more),
    covering at least 30% of their own vertical extent (a column is dense). A figure or
    table beside the text counts towards the extent, not as a line.
    """
    lines = [u for u in units if u.label == "line"]
    if len(lines) < 2:
        return False
    height = statistics.median(u.height for u in lines)
    if statistics.median(u.x2 - u.x1 for u in lines) < 5 * height:
        return False
    spans = sorted((u.y1, u.y2) for u in units)
    covered, reach = 0.0, spans[0][0]
    for y1, y2 in spans:
        if y2 > reach:
            covered += y2 - max(y1, reach)
            reach = y2
    return covered >= 0.3 * (reach - spans[0][0])


def _large_text(line: TextLine, body: float) -> bool:
    """A heading's line: set at least 1.3x the body size, with words in it (a blob in a photo
    that the detector took for a large glyph is no heading)."""
    return line.height >= 1.3 * body and sum(ch.isalnum() for ch in line.text) >= 2


def _by_rows(items: list) -> list:  # type: ignore[type-arg]
    """Top to bottom; pieces whose vertical centres fall in one row are read left to right."""
    rows: list[list] = []  # type: ignore[type-arg]
    for item in sorted(items, key=lambda u: (u.cy, u.x1)):
        row = rows[-1] if rows else None
        if row is not None and abs(item.cy - statistics.fmean(r.cy for r in row)) < 0.5 * min(
                item.height, min(r.height for r in row)):
            row.append(item)
        else:
            rows.append([item])
    return [u for row in rows for u in sorted(row, key=lambda u: u.x1)]


# ---------------------------------------------------------------- blocks

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
                    min(r.score for r in row), words=tuple(w for r in row for w in r.words))


TABLE_ROWS = 3
"""Consecutive rows of separate cells that make a table (fewer: a form line or a date)."""


def _is_cell_row(row: Sequence[TextLine]) -> bool:
    """Two or more pieces set at least a line-height apart: cells, not words of one line."""
    if len(row) < 2:
        return False
    return all(b.x1 - a.x2 >= 0.8 * min(a.height, b.height) for a, b in itertools.pairwise(row))


def table_grid(rows: Sequence[Sequence[TextLine]]) -> list[list[str]]:
    """Cells row by row: columns are the x ranges where some row has a cell (overlaps merged)."""
    spans = sorted((ln.x1, ln.x2) for row in rows for ln in row)
    columns: list[list[float]] = []
    for x1, x2 in spans:
        if columns and x1 < columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x2)
        else:
            columns.append([x1, x2])
    grid = []
    for row in rows:
        cells = [""] * len(columns)
        for ln in row:
            index = next(i for i, (a, b) in enumerate(columns) if a <= (ln.x1 + ln.x2) / 2 <= b)
            cells[index] = f"{cells[index]} {ln.text}".strip()
        grid.append(cells)
    return grid


def _table_block(rows: Sequence[Sequence[TextLine]]) -> LineBlock:
    lines = tuple(ln for row in rows for ln in row)
    return LineBlock("table", lines, rows=tuple(tuple(r) for r in table_grid(rows)))


def _text_blocks(ordered: Sequence[TextLine], body: float, paragraphs: bool) -> list[LineBlock]:
    """Paragraphs (or rows) of free lines in reading order; runs of cell rows become tables."""
    rows = _rows(ordered)
    blocks: list[LineBlock] = []
    index = 0
    while index < len(rows):
        run = list(itertools.takewhile(_is_cell_row, rows[index:]))
        if len(run) >= TABLE_ROWS and len(table_grid(run)[0]) >= 2:
            blocks.append(_table_block(run))
            index += len(run)
            continue
        row = _row_line(rows[index])
        last = blocks[-1] if blocks else None
        if (paragraphs and last is not None and last.label in ("text", "title")
                and last.region is None and not last.rows
                and not _starts_block(last.lines[-1], row, body)):
            blocks[-1] = replace(last, lines=(*last.lines, row))
        else:
            large = _large_text(row, body)
            blocks.append(LineBlock("title" if large else "text", (row,)))
        index += 1
    return blocks


def _region_block(unit: _Unit, body: float) -> LineBlock:
    """The block of a labelled region: a table's grid from its lines' positions."""
    box = (unit.x1, unit.y1, unit.x2, unit.y2)
    if unit.label == "table" and unit.lines:
        rows = _rows(_by_rows(unit.lines))
        return LineBlock("table", tuple(ln for row in rows for ln in row), region=box,
                         rows=tuple(tuple(r) for r in table_grid(rows)))
    joined = [_row_line(row) for row in _rows(_by_rows(unit.lines))]
    return LineBlock(unit.label, tuple(joined), region=box)


def to_blocks(ordered: Sequence[TextLine], *, paragraphs: bool = True) -> list[LineBlock]:
    """Blocks of lines already in reading order (no regions, no header/footer rule)."""
    rows = [_row_line(row) for row in _rows(ordered)]
    return _headings(_text_blocks(ordered, _body_height(rows), paragraphs))


def block_text(block: LineBlock, *, markdown: bool) -> str:
    """A block's text: tables as HTML (markdown) or rows of cells; paragraphs joined (markdown)."""
    if block.rows:
        if markdown:
            return "<table>" + "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell, quote=False)}</td>" for cell in row) + "</tr>"
                for row in block.rows) + "</table>"
        return "\n".join(" ".join(cell for cell in row if cell) for row in block.rows)
    if not markdown:
        return "\n".join(ln.text for ln in block.lines)
    prefix = {"title": "# ", "sub_title": "## "}.get(block.label, "")
    return prefix + _join_paragraph(ln.text for ln in block.lines)


def block_words(blocks: Sequence[LineBlock]) -> list[FoundWord]:
    """The words of the blocks' lines, in reading order (word boxes are the page's own, never
    straightened)."""
    return [word for block in blocks for line in block.lines for word in line.words]


def to_plain_text(blocks: Sequence[LineBlock]) -> str:
    """One text line per visual row (a table row: its cells), a blank line between blocks."""
    return "\n\n".join(text for text in (block_text(b, markdown=False) for b in blocks) if text)


# ---------------------------------------------------------------- grounding format

def grid_box(box: Box, width: float, height: float) -> list[int]:
    """A pixel box on DeepSeek-OCR's 0..999 grid: x_grid = round(x / width * 999), clamped."""
    x1, y1, x2, y2 = box

    def scale(value: float, size: float) -> int:
        return min(GRID, max(0, round(value / max(size, 1.0) * GRID)))

    return [scale(x1, width), scale(y1, height), scale(x2, width), scale(y2, height)]


def _det(boxes: Iterable[list[int]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in box) + "]" for box in boxes) + "]"


def to_grounding(blocks: Sequence[LineBlock], width: float, height: float, *, markdown: bool = True) -> str:
    """DeepSeek-OCR's grounding output: `<|ref|>label<|/ref|><|det|>[[box]]<|/det|>` + text.

    `markdown=True` ("Convert the document to markdown."): paragraphs joined by spaces,
    headings prefixed with `#`/`##`, tables as HTML. `markdown=False` ("OCR this image."):
    text as read. A figure's block carries no text unless the model found text inside it,
    as DeepSeek-OCR's. Blocks are separated by a blank line.
    """
    parts = []
    for block in blocks:
        head = f"<|ref|>{block.label}<|/ref|><|det|>{_det([grid_box(block.box, width, height)])}<|/det|>"
        parts.append(f"{head}\n{block_text(block, markdown=markdown)}")
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

def locate_boxes(lines: Sequence[TextLine], query: str) -> list[Box]:
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
