"""Pages, blocks, lines and words as the archival writers place them: each with a pixel box.

A block's words go where the engine found them (`BlockResult.words` with boxes), grouped
into lines by their boxes; a word without a box sits in the gap between its neighbours. A
block without word boxes has its text laid over the block's box: its lines (a paragraph the
model wrote on one line is wrapped into as many lines as its box holds) spread evenly down
the box, each line's words across it in proportion to their length. A block without a box
covers the page.

Text is what a reader of the page sees: markdown markers (`#`, `**`), HTML tags and
entities are removed, a table's rows become lines of cell text, and characters XML cannot
hold are dropped. Pure: no I/O.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from xml.sax import saxutils

from openai_ocr.ocr.block_types import mistral_block_type
from openai_ocr.ocr.models import BlockResult, PageResult
from openai_ocr.ocr.tables import html_table_rows

Box = tuple[float, float, float, float]

Role = Literal["title", "heading", "paragraph", "list", "table", "figure", "caption", "header",
               "footer", "page_number", "equation", "code", "reference"]
"""What a block is on the page: each writer maps it to its own vocabulary."""

_ROLE_OF_TYPE: dict[str, Role] = {
    "text": "paragraph", "title": "title", "list": "list", "table": "table", "image": "figure",
    "equation": "equation", "caption": "caption", "code": "code", "references": "reference",
    "aside_text": "paragraph", "header": "header", "footer": "footer", "signature": "paragraph"}

LINE_PITCH_PER_CHAR = 2.4
"""Line pitch over average character width of printed text (about 1.2 em over 0.5 em): how
many lines a block's box holds for its text."""

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_BREAK = re.compile(r"<br\s*/?>", re.I)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_FENCE = re.compile(r"^\s*```.*$")
_WIDE = re.compile("[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60"
                   "\uffe0-\uffe6\U00016fe0-\U0001f64f\U0001f900-\U0001faff\U00020000-\U0003fffd]")
"""Where East Asian wide characters can be (a text without any is measured by its length)."""


@dataclass(frozen=True)
class WordBox:
    text: str
    box: Box
    confidence: float | None = None


@dataclass(frozen=True)
class LineBox:
    box: Box
    words: tuple[WordBox, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class BlockBox:
    label: str
    """DeepSeek-OCR's label (title, text, table, image, ...)."""
    role: Role
    box: Box
    lines: tuple[LineBox, ...]
    confidence: float | None = None
    placed: Literal["words", "estimated", "none"] = "estimated"
    """`words`: the engine's word boxes; `estimated`: text spread over the block's box."""

    @property
    def words(self) -> list[WordBox]:
        return [w for line in self.lines for w in line.words]


@dataclass(frozen=True)
class PageLayout:
    number: int
    """Page number in the document (1-based)."""
    width: int
    height: int
    blocks: tuple[BlockBox, ...]
    confidence: float | None = None

    @property
    def words(self) -> list[WordBox]:
        return [w for block in self.blocks for w in block.words]


# -- text ---------------------------------------------------------------------------------

def escape_xml(text: str) -> str:
    """Text for XML written by hand (markup and attribute values): &, <, > and " escaped."""
    return saxutils.escape(text, {'"': "&quot;"})


class ElementIds:
    """Ids unique within a document, per kind and page (`line_3_12`): hOCR's and ALTO's."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.page}_{self.counts[kind]}"


def xml_safe(text: str) -> str:
    """Without the characters XML 1.0 cannot hold (controls, lone surrogates)."""
    return _NOT_XML.sub("", text)


def plain_lines(text: str, role: Role) -> list[str]:
    """The block's text as a reader sees it, line by line (empty lines dropped)."""
    text = xml_safe(text)
    if role == "table":
        rows = html_table_rows(text)
        if rows is not None:
            return [line for row in rows if (line := " ".join(" ".join(c.split()) for c in row if c.strip()))]
    text = _BREAK.sub("\n", text)
    lines = []
    for raw in text.splitlines():
        if _FENCE.match(raw):
            continue
        line = _HEADING.sub("", raw)
        line = _EMPHASIS.sub(r"\2", line)
        line = html.unescape(_TAG.sub(" ", line))
        line = " ".join(xml_safe(line).split())
        if line:
            lines.append(line)
    return lines


def plain_word(word: str) -> str:
    """One engine word as a reader sees it ("" for a bare markdown marker such as `#`)."""
    word = _TAG.sub("", xml_safe(word))
    word = html.unescape(word).strip()
    if re.fullmatch(r"#{1,6}|\*+|_+|`+|\|", word):
        return ""
    return word.replace("**", "").replace("__", "").strip()


def text_width(text: str) -> int:
    """Width of a text in average character widths (East Asian wide characters count two)."""
    if text.isascii() or not _WIDE.search(text):
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


# -- geometry -------------------------------------------------------------------------------

def clamp(box: Box, width: int, height: int) -> Box:
    """A box inside the page, at least one pixel wide and high."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    x1 = min(max(0.0, x1), max(0.0, width - 1.0))
    y1 = min(max(0.0, y1), max(0.0, height - 1.0))
    return x1, y1, min(float(width), max(x2, x1 + 1)), min(float(height), max(y2, y1 + 1))


def union(boxes: Iterable[Box]) -> Box | None:
    found = list(boxes)
    if not found:
        return None
    return (min(b[0] for b in found), min(b[1] for b in found), max(b[2] for b in found),
            max(b[3] for b in found))


def _split_line(words: list[str], parts: int) -> list[list[str]]:
    """Words of one line in `parts` lines of about equal width (each word by its middle)."""
    if parts <= 1 or len(words) <= 1:
        return [words]
    total = text_width(" ".join(words))
    out: list[list[str]] = [[] for _ in range(parts)]
    at = 0
    for word in words:
        middle = at + text_width(word) / 2
        out[min(parts - 1, int(middle / total * parts))].append(word)
        at += text_width(word) + 1
    return [part for part in out if part]


def visual_lines(lines: list[str], box: Box) -> list[str]:
    """The lines a block shows: its text lines, each wrapped into the lines its share of the
    box holds (a one-line paragraph in a five-line box becomes five lines)."""
    width, height = box[2] - box[0], box[3] - box[1]
    chars = sum(text_width(line) for line in lines)
    if not lines or width <= 0 or height <= 0 or chars == 0:
        return lines
    fits = max(1, round(math.sqrt(height * chars / (width * LINE_PITCH_PER_CHAR))))
    if len(lines) >= fits:
        return lines
    out: list[str] = []
    for line in lines:
        share = max(1, round(fits * text_width(line) / chars))
        out += [" ".join(part) for part in _split_line(line.split(), share)]
    return out


def spread(lines: list[str], box: Box, confidence: float | None = None) -> tuple[LineBox, ...]:
    """Lines evenly down `box`, each as wide as its text is long next to the longest line,
    each word across its line in proportion to its length."""
    if not lines:
        return ()
    x1, y1, x2, y2 = box
    pitch = (y2 - y1) / len(lines)
    longest = max(text_width(line) for line in lines) or 1
    placed = []
    for n, line in enumerate(lines):
        top, bottom = y1 + n * pitch, y1 + (n + 1) * pitch
        total = text_width(line) or 1
        span = (x2 - x1) * total / longest
        words = []
        at = 0
        for word in line.split():
            size = text_width(word)
            left = x1 + span * at / total
            words.append(WordBox(word, (left, top, left + span * size / total, bottom), confidence))
            at += size + 1
        placed.append(LineBox((x1, top, x1 + span, bottom), tuple(words)))
    return tuple(placed)


def _same_line(line: list[WordBox], word: WordBox) -> bool:
    """Whether `word` goes on after `line`: it overlaps the line's height by half of the
    smaller of the two, and does not start left of the line's last word."""
    top, bottom = min(w.box[1] for w in line), max(w.box[3] for w in line)
    overlap = min(bottom, word.box[3]) - max(top, word.box[1])
    smaller = min(bottom - top, word.box[3] - word.box[1])
    last = line[-1].box
    return overlap >= smaller / 2 and word.box[0] >= last[0] - (last[3] - last[1])


def _fill_gaps(texts: list[str], boxes: list[Box | None], scores: list[float | None]) -> list[WordBox]:
    """Words without a box placed in the gap between their neighbours (or beside the one
    neighbour they have, at its character width)."""
    out: list[WordBox] = []
    n = 0
    while n < len(texts):
        if boxes[n] is not None:
            out.append(WordBox(texts[n], boxes[n], scores[n]))  # type: ignore[arg-type]
            n += 1
            continue
        end = n
        while end < len(texts) and boxes[end] is None:
            end += 1
        before = boxes[n - 1] if n > 0 else None
        after = boxes[end] if end < len(texts) else None
        run = texts[n:end]
        chars = text_width(" ".join(run))
        ref = before or after
        assert ref is not None  # a block with no box at all is laid out, not filled
        char = (ref[2] - ref[0]) / max(1, text_width(texts[n - 1] if before else texts[end]))
        if before and after and after[0] - before[2] > char and min(before[3], after[3]) > max(before[1], after[1]):
            left, right = before[2] + char / 2, after[0] - char / 2
            top, bottom = min(before[1], after[1]), max(before[3], after[3])
        elif before:
            left, right, top, bottom = before[2] + char, before[2] + char * (chars + 1), before[1], before[3]
        else:
            assert after is not None
            left, right, top, bottom = after[0] - char * (chars + 1), after[0] - char, after[1], after[3]
        at = 0
        for k, text in enumerate(run):
            size = text_width(text)
            x = left + (right - left) * at / max(1, chars)
            out.append(WordBox(text, (x, top, x + (right - left) * size / max(1, chars), bottom), scores[n + k]))
            at += size + 1
        n = end
    return out


def word_lines(words: list[WordBox]) -> tuple[LineBox, ...]:
    """Words in reading order grouped into lines by their boxes."""
    lines: list[list[WordBox]] = []
    for word in words:
        if lines and _same_line(lines[-1], word):
            lines[-1].append(word)
        else:
            lines.append([word])
    return tuple(LineBox(union(w.box for w in line) or line[0].box, tuple(line)) for line in lines)


# -- blocks and pages -----------------------------------------------------------------------

def role_of(block: BlockResult, page_height: int) -> Role:
    if block.label == "page_number":
        return "page_number"
    if block.label == "sub_title":
        return "heading"
    box = union(block.boxes_px)
    center = (box[1] + box[3]) / 2 if box else None
    return _ROLE_OF_TYPE.get(mistral_block_type(block.label, block.text, center, page_height), "paragraph")


def block_layout(block: BlockResult, width: int, height: int) -> BlockBox:
    role = role_of(block, height)
    confidence = block.confidence.average if block.confidence is not None else None
    drawn = union(clamp(b, width, height) for b in block.boxes_px)
    words = [(plain_word(w.text), w) for w in block.words or []]
    words = [(text, w) for text, w in words if text]
    if words and any(w.box_px is not None for _, w in words):
        boxes = [clamp(w.box_px, width, height) if w.box_px is not None else None for _, w in words]
        placed = _fill_gaps([t for t, _ in words], boxes, [w.confidence for _, w in words])
        placed = [WordBox(w.text, clamp(w.box, width, height), w.confidence) for w in placed]
        box = drawn or union(w.box for w in placed) or (0.0, 0.0, float(width), float(height))
        return BlockBox(block.label, role, box, word_lines(placed), confidence, "words")
    box = drawn or (0.0, 0.0, float(width), float(height))
    lines = plain_lines(block.text, role)
    if not lines:
        return BlockBox(block.label, role, box, (), confidence, "none")
    return BlockBox(block.label, role, box, spread(visual_lines(lines, box), box, confidence),
                    confidence, "estimated")


def page_layout(page: PageResult) -> PageLayout:
    """A page's blocks in reading order (the model's), each with its lines and words placed."""
    blocks = tuple(block_layout(b, page.width, page.height) for b in page.blocks)
    confidence = page.confidence.average if page.confidence is not None else None
    return PageLayout(page.index, page.width, page.height, blocks, confidence)


def page_layouts(pages: Sequence[PageResult]) -> Iterable[PageLayout]:
    return (page_layout(p) for p in pages)
