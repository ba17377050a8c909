"""Parse DeepSeek-OCR grounding output into blocks with pixel boxes, and into clean markdown.

The model writes `<|ref|>LABEL<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>` and then the
block's text, with coordinates on a 0..999 grid (pixel = value / 999 * size). Output can be
cut anywhere by `max_tokens`, so every part is optional: a missing closing tag ends at the
line's end, an unfinished box is dropped, and text outside any tag is kept as a `text` block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

GRID = 999
"""DeepSeek-OCR's coordinate grid: 0..999 on both axes (pixel = value / 999 * size)."""

_REF_OPEN = "<|ref|>"
_TAG_RE = re.compile(r"<\|/?(?:ref|det|grounding)\|>")
_BOX_RE = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,"
                     r"\s*(-?\d+(?:\.\d+)?)\s*\]")
_HEADER_RE = re.compile(
    r"<\|ref\|>(?P<label>[^<\n]*?)\s*(?:<\|/ref\|>|(?=<\|det\|>)|$)"
    r"\s*(?:<\|det\|>(?P<det>.*?)(?:<\|/det\|>|(?=\n)|$))?", re.S)

Box = tuple[float, float, float, float]


@dataclass
class Block:
    label: str
    text: str
    boxes: list[Box] = field(default_factory=list)
    """Boxes on the model's 0..999 grid."""
    span: tuple[int, int] = field(default=(0, 0), compare=False)
    """Where the block's text (before cleaning) is in the parsed output: `[start, end)`."""
    label_span: tuple[int, int] = field(default=(0, 0), compare=False)
    """Where its label is in the parsed output (empty for text outside any tag)."""

    def boxes_px(self, width: int, height: int) -> list[Box]:
        return [scale_box(b, width, height) for b in self.boxes]


def scale_box(box: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (x1 / GRID * width, y1 / GRID * height, x2 / GRID * width, y2 / GRID * height)


def _boxes(det: str | None) -> list[Box]:
    if not det:
        return []
    boxes: list[Box] = []
    for match in _BOX_RE.finditer(det):
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        boxes.append((x1, y1, x2, y2))
    return boxes


def parse_blocks(output: str) -> list[Block]:
    """Split model output into blocks, in order. Never raises on malformed input."""
    blocks: list[Block] = []
    starts = [m.start() for m in re.finditer(re.escape(_REF_OPEN), output)]
    leading = output[: starts[0]] if starts else output
    if leading.strip():
        blocks.append(Block(label="text", text=_clean_text(leading), span=(0, len(leading))))
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(output)
        segment = output[start:end]
        header = _HEADER_RE.match(segment)
        if header is None:  # cannot happen with the optional groups; kept for safety
            blocks.append(Block(label="text", text=_clean_text(segment), span=(start, end)))
            continue
        label = header.group("label").strip() or "text"
        blocks.append(Block(label=label, text=_clean_text(segment[header.end():]),
                            boxes=_boxes(header.group("det")), span=(start + header.end(), end),
                            label_span=(start + header.start("label"), start + header.end("label"))))
    return blocks


def _clean_text(text: str) -> str:
    return _TAG_RE.sub("", text).strip("\n").rstrip()


def clean_offsets(output: str, start: int, end: int) -> tuple[str, list[int]]:
    """A block's clean text from `output[start:end]` (as `parse_blocks` cleans it) and, for
    each of its characters, its offset in `output`."""
    kept: list[int] = []
    at = start
    for tag in _TAG_RE.finditer(output, start, end):
        kept.extend(range(at, tag.start()))
        at = tag.end()
    kept.extend(range(at, end))
    joined = "".join(output[i] for i in kept)
    text = joined.strip("\n").rstrip()
    lead = len(joined) - len(joined.lstrip("\n"))
    return text, kept[lead:lead + len(text)]


def to_markdown(blocks: list[Block], image_ref: str = "images/{index}.jpg") -> str:
    """Clean markdown: tags removed, `image` blocks as `![](...)` references, tables kept."""
    parts: list[str] = []
    images = 0
    for block in blocks:
        if block.label == "image":
            parts.append(f"![]({image_ref.format(index=images)})")
            images += 1
            if block.text:
                parts.append(block.text)
        elif block.text:
            parts.append(block.text)
    return "\n\n".join(parts)
