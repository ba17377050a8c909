"""DeepSeek-OCR's grounding labels as the block types of Mistral's OCR API (`include_blocks`).

Mistral's set is closed: text, title, list, table, image, equation, caption, code,
references, aside_text, header, footer, signature (what the `mistralai` SDK parses). DeepSeek-
OCR (and the lite engine, which writes the same labels) has a few more and some of these
under other names; each maps to the nearest one:

- `title`, `sub_title` -> `title` (the markdown keeps `#`/`##`; Mistral has one title type);
- `image_caption`, `table_caption`, `figure_title`, `table_title`, the footnotes of a figure
  or table -> `caption`;
- `page_number` -> `header` or `footer`, by which half of the page it sits in (Mistral has
  no page-number type; a page number is part of the running header or footer);
- any other label -> `text`;
- a `text` block whose lines all are list items (`- `, `* `, `1. `; two or more when
  numbered, so a numbered heading read as text stays text) -> `list`; one that is a single
  fenced code block -> `code`.

Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

MistralBlockType = Literal["text", "title", "list", "table", "image", "equation", "caption", "code",
                           "references", "aside_text", "header", "footer", "signature"]

DEEPSEEK_LABELS: dict[str, MistralBlockType] = {
    "title": "title", "sub_title": "title",
    "text": "text",
    "table": "table",
    "image": "image",
    "image_caption": "caption", "table_caption": "caption", "figure_title": "caption",
    "table_title": "caption", "image_footnote": "caption", "table_footnote": "caption",
    "equation": "equation", "formula": "equation",
    "header": "header", "footer": "footer",
    "reference": "references", "references": "references",
    "list": "list", "code": "code", "aside_text": "aside_text", "signature": "signature",
}
"""Fixed mappings; `page_number` and the refinements of `text` depend on the block."""

_BULLET_RE = re.compile(r"^\s*[-*+\u2022]\s+\S")
_NUMBERED_RE = re.compile(r"^\s*\d{1,3}[.)]\s+\S")
_FENCED_RE = re.compile(r"^```[^\n]*\n.*\n```$", re.S)


def _is_list(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    if all(_BULLET_RE.match(line) for line in lines):
        return True
    return len(lines) >= 2 and all(_BULLET_RE.match(line) or _NUMBERED_RE.match(line) for line in lines)


def mistral_block_type(label: str, text: str, center_y: float | None, page_height: int) -> MistralBlockType:
    """The Mistral block type of a DeepSeek-OCR block; `center_y`: its box's vertical middle
    in pixels (None without a box), for `page_number`."""
    if label == "page_number":
        return "header" if center_y is not None and center_y < page_height / 2 else "footer"
    kind = DEEPSEEK_LABELS.get(label, "text")
    if kind == "text":
        stripped = text.strip()
        if _FENCED_RE.match(stripped):
            return "code"
        if _is_list(stripped):
            return "list"
    return kind
