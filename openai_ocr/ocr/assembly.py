"""Per-page engine answers assembled into one OCR answer: text, markdown or JSON pages.

Pure apart from the figure crops and page images, which decode the page image (call
`assemble` in a thread when `include_images` or `include_page_images` is set).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from PIL import Image

from openai_ocr.inputs.documents import ImageInput
from openai_ocr.ocr.confidence import ScoredBlock, score_page
from openai_ocr.ocr.grounding import Block, parse_blocks, to_markdown
from openai_ocr.ocr.models import BlockResult, ImageCrop, OutputFormat, PageQuality, PageResult, Usage
from openai_ocr.ocr.translation import CompletionResult

R = TypeVar("R", bound=str)

PAGE_SPLIT = "\n\n<--- Page Split --->\n\n"
"""Between pages, as the official DeepSeek-OCR PDF tool writes it."""


@dataclass(frozen=True)
class PageOutcome:
    number: int
    image: ImageInput
    result: CompletionResult
    #: loops found, tries made (None where the answer was not judged)
    quality: PageQuality | None = None


@dataclass(frozen=True)
class Assembled:
    """Consecutive pages of one answer (all of them, or one: `merge_assembled` joins parts)."""

    text: str
    pages: list[PageResult] | None
    warnings: list[str]
    usage: Usage
    finish_reason: str | None
    model: str
    page_count: int


def length_warning(number: int, max_tokens: int | None = None) -> str:
    limit = f"max_tokens={max_tokens}" if max_tokens else "max_tokens"
    return (f"page {number}: output stopped at {limit} (finish_reason=length); it is "
            "truncated, most likely by a repetition loop")


def page_warning(outcome: PageOutcome, max_tokens: int | None = None) -> str | None:
    """What a client should know about a page's text: a loop cut out, or a cut answer."""
    quality = outcome.quality
    if quality is not None and quality.loop_chars_removed:
        return (f"page {outcome.number}: a repetition loop ({quality.loop_chars_removed} "
                f"characters) was cut out of the text after {quality.attempts} "
                f"tr{'y' if quality.attempts == 1 else 'ies'}")
    if outcome.result.finish_reason == "length":
        return length_warning(outcome.number, max_tokens)
    return None


IMAGE_REF = "images/{page}_{index}.png"
"""Name of a figure crop, and its reference in the page's markdown: the two must agree."""


def page_markdown(number: int, blocks: list[Block]) -> str:
    return to_markdown(blocks, image_ref=IMAGE_REF.format(page=number, index="{index}"))


def crop_figures(outcome: PageOutcome, blocks: list[Block]) -> list[ImageCrop]:
    """PNG crops of the page's `image` blocks (the union of each block's boxes)."""
    figures = [b for b in blocks if b.label == "image" and b.boxes]
    if not figures:
        return []
    width, height = outcome.image.width, outcome.image.height
    crops: list[ImageCrop] = []
    with Image.open(io.BytesIO(outcome.image.data)) as page:
        page.load()
        for index, block in enumerate(b for b in blocks if b.label == "image"):
            if not block.boxes:
                continue
            boxes = block.boxes_px(width, height)
            box = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                   max(b[2] for b in boxes), max(b[3] for b in boxes))
            left, top = max(0, int(box[0])), max(0, int(box[1]))
            right, bottom = min(width, int(round(box[2]))), min(height, int(round(box[3])))
            if right <= left or bottom <= top:
                continue
            out = io.BytesIO()
            page.crop((left, top, right, bottom)).save(out, format="PNG")
            crops.append(ImageCrop(name=IMAGE_REF.format(page=outcome.number, index=index), box_px=box,
                                   image_base64=base64.b64encode(out.getvalue()).decode("ascii")))
    return crops


def page_png_base64(image: ImageInput) -> str:
    """The page as base64 PNG (PDF pages already are PNG; other formats are converted)."""
    data = image.data
    if image.mime != "image/png":
        out = io.BytesIO()
        with Image.open(io.BytesIO(data)) as page:
            page.save(out, format="PNG")
        data = out.getvalue()
    return base64.b64encode(data).decode("ascii")


def page_result(outcome: PageOutcome, include_images: bool, max_tokens: int | None,
                include_page_image: bool = False, words: bool = False) -> PageResult:
    """The page's blocks and markdown; with the engine's token scores or words, the
    confidence of each block and of the page, and the blocks' `words` (`words`: asked for)."""
    result = outcome.result
    blocks = parse_blocks(result.text)
    width, height = outcome.image.width, outcome.image.height
    scored = [ScoredBlock(None, None)] * len(blocks)
    confidence = None
    if result.tokens is not None or result.words is not None:
        page = score_page(result.text, blocks, width, height, tokens=result.tokens, found=result.words,
                          words=words)
        scored, confidence = page.blocks, page.confidence
    return PageResult(
        index=outcome.number, width=width, height=height, text=result.text,
        markdown=page_markdown(outcome.number, blocks),
        blocks=[BlockResult(label=b.label, boxes_px=b.boxes_px(width, height), text=b.text,
                            confidence=s.confidence, words=s.words)
                for b, s in zip(blocks, scored, strict=True)],
        finish_reason=result.finish_reason, usage=result.usage, confidence=confidence,
        warning=page_warning(outcome, max_tokens), quality=outcome.quality,
        images=crop_figures(outcome, blocks) if include_images else None,
        image_base64=page_png_base64(outcome.image) if include_page_image else None)


def sum_usage(usages: list[Usage]) -> Usage:
    return Usage(prompt_tokens=sum(u.prompt_tokens for u in usages),
                 completion_tokens=sum(u.completion_tokens for u in usages),
                 total_tokens=sum(u.total_tokens for u in usages),
                 image_tokens=sum(u.image_tokens for u in usages),
                 attempts=sum(u.attempts for u in usages),
                 engine_ms=round(sum(u.engine_ms for u in usages), 1))


def overall_finish_reason(reasons: Sequence[R | None]) -> R | Literal["length"] | None:
    """`length` if any page was cut, else the first page's reason."""
    if "length" in reasons:
        return "length"
    return next((r for r in reasons if r), None)


def assemble(outcomes: list[PageOutcome], output: OutputFormat, include_images: bool,
             max_tokens: int | None = None, include_page_images: bool = False,
             words: bool = False) -> Assembled:
    pages = None
    if output == "json" or include_images or include_page_images:
        pages = [page_result(o, include_images, max_tokens, include_page_images, words) for o in outcomes]
    if output != "markdown":
        texts = [o.result.text for o in outcomes]
    elif pages is not None:  # each page already parsed once
        texts = [p.markdown for p in pages]
    else:
        texts = [page_markdown(o.number, parse_blocks(o.result.text)) for o in outcomes]
    reasons = [o.result.finish_reason for o in outcomes]
    return Assembled(
        text=PAGE_SPLIT.join(texts), pages=pages,
        warnings=[w for o in outcomes if (w := page_warning(o, max_tokens)) is not None],
        usage=sum_usage([o.result.usage for o in outcomes]),
        finish_reason=overall_finish_reason(reasons), model=outcomes[0].result.model,
        page_count=len(outcomes))


def merge_assembled(parts: Sequence[Assembled]) -> Assembled:
    """Parts in page order as one answer, the same as assembling all their pages at once: a
    page assembled as soon as it is read, or a long document's page ranges put back together.
    A warning every part gives (not about one page) is kept once."""
    if len(parts) == 1:
        return parts[0]
    pages = [p for part in parts for p in part.pages or []]
    return Assembled(
        text=PAGE_SPLIT.join(part.text for part in parts),
        pages=pages if any(part.pages is not None for part in parts) else None,
        warnings=list(dict.fromkeys(w for part in parts for w in part.warnings)),
        usage=sum_usage([part.usage for part in parts]),
        finish_reason=overall_finish_reason([part.finish_reason for part in parts]),
        model=parts[0].model, page_count=sum(part.page_count for part in parts))
