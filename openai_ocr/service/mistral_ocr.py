"""The logic of `POST /v1/ocr` (the Mistral OCR shape), shared by the route and batch lines.

A document (`document_url` or `image_url` as `data:` URLs, or an uploaded `file_id`) goes
through the same page pipeline as the legacy routes (JSON pages with blocks); pages are
numbered from 0, as Mistral does. Each page's answer is built from its blocks, in reading
order, the way Mistral's OCR 4 API gives them:

- `markdown`: the blocks' text joined by blank lines (as the legacy routes' markdown), a
  figure as `![](images/P_N.png)`, a table inline or, with `table_format`, as a link
  `[tbl-N.md](tbl-N.md)` to its entry in `tables`; the header/footer blocks left out when
  `extract_header`/`extract_footer` moved them to `header`/`footer`;
- `images`: the figure crops that `image_limit` and `image_min_size` let through;
- `hyperlinks`: a PDF page's link annotations (`openai_ocr.ocr.pdf_links`); an image has none;
- `blocks` (`include_blocks`): every block that has a box, with Mistral's block type
  (`openai_ocr.ocr.block_types`), its box in page pixels and its content;
- `confidence_scores` (`confidence_scores_granularity`): read from the page results where
  the engine reports confidences (`_page_confidence` below says what is read); `null` where
  it does not, never made up. A granularity asks the engine for them (token
  log-probabilities; the lite engine's recogniser scores), `word` also for each block's
  words (their confidences only: Mistral's word scores carry no boxes, so no word boxes are
  read for them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai_ocr.errors import BadRequest, excerpt
from openai_ocr.inputs.documents import Document, decode_base64_payload, is_data_url
from openai_ocr.inputs.page_ranges import PageSpec
from openai_ocr.ocr.assembly import IMAGE_REF
from openai_ocr.ocr.block_types import mistral_block_type
from openai_ocr.ocr.models import BlockResult, ImageCrop, OCROptions, PageResult
from openai_ocr.ocr.pdf_links import page_links
from openai_ocr.ocr.tables import table_as
from openai_ocr.protocol.mistral import (
    AnyMistralBlock,
    DocumentURLChunk,
    FileChunk,
    ImageURLChunk,
    MistralBlock,
    MistralBlockConfidence,
    MistralConfidenceScore,
    MistralDimensions,
    MistralImage,
    MistralImageBlock,
    MistralOCRRequest,
    MistralOCRResponse,
    MistralPage,
    MistralPageConfidence,
    MistralTable,
    MistralTableBlock,
    MistralUsage,
)
from openai_ocr.service.document_limits import current_limits
from openai_ocr.service.serving import OCRService

_NUMBER_RE = re.compile(r"\d+")
_PAGE_PART_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)?\s*)?$")
_PAGE_COUNT_RE = re.compile(r"the document's (\d+) page")


def one_based_pages(pages: list[int] | str | None) -> PageSpec:
    """Mistral's 0-based page selection, 1-based as the page pipeline counts (same form).

    A string is checked here, so its errors speak of the pages as the client numbered them:
    parts `N` or `N-M` (and `N-`: to the end) joined by commas; "" selects every page.
    """
    if pages is None:
        return None
    if isinstance(pages, list):
        return [p + 1 for p in pages] or None
    if not re.fullmatch(r"[\d\s,\-]*", pages):
        raise BadRequest(f"pages: cannot read {excerpt(pages)}; use 0-based pages such as "
                         "\"0,2-4\"", param="pages")
    if not pages.strip():
        return None
    for part in pages.split(","):
        match = _PAGE_PART_RE.match(part)
        if match is None:
            raise BadRequest(f"pages: cannot read {excerpt(part.strip())}; use 0-based pages "
                             "such as \"0,2-4\"", param="pages")
        if match.group(2) is not None and int(match.group(2)) < int(match.group(1)):
            raise BadRequest(f"pages: {excerpt(part.strip())} is not a valid range (it ends "
                             "before it starts)", param="pages")
    return _NUMBER_RE.sub(lambda m: str(int(m.group()) + 1), pages)


def zero_based_error(error: BadRequest, pages: list[int] | str | None) -> BadRequest:
    """The page pipeline's "beyond the document" error (1-based) in the client's 0-based terms."""
    found = _PAGE_COUNT_RE.search(error.message)
    if error.param != "pages" or found is None:
        return error
    count = int(found.group(1))
    return BadRequest(f"pages: {excerpt(pages)} selects a page beyond the document, which has "
                      f"{count} page(s): pages count from 0, the last one is {count - 1}",
                      param="pages")


def document_data_url(document: DocumentURLChunk | ImageURLChunk) -> str:
    if isinstance(document, DocumentURLChunk):
        url = document.document_url
    else:
        url = document.image_url if isinstance(document.image_url, str) else document.image_url.url
    if not is_data_url(url):
        raise BadRequest("only data: URLs are accepted; this server does not fetch remote "
                         "documents", param="document")
    return url


# ------------------------------------------------------------------ confidences, if any

def _get(obj: object, name: str) -> Any:
    """`obj.name` or `obj[name]`; None when there is neither (or no obj)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _score(value: object) -> float | None:
    """A probability in 0..1, or None for anything else (a log-probability included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float


def _words(block: object) -> list[Word]:
    """`block.words`: items with `text` and `confidence` (0..1), in reading order; words
    without a confidence are left out."""
    items = _get(block, "words")
    if not isinstance(items, Sequence) or isinstance(items, str):
        return []
    words = []
    for item in items:
        text, score = _get(item, "text"), _score(_get(item, "confidence"))
        if isinstance(text, str) and text and score is not None:
            words.append(Word(text, score))
    return words


def _locate(words: Iterable[Word], text: str, base: int = 0) -> list[MistralConfidenceScore]:
    """The words found in `text`, in order (each searched after the one before), with their
    offsets plus `base`; a word not found there is left out."""
    located, cursor = [], 0
    for word in words:
        at = text.find(word.text, cursor)
        if at < 0:
            continue
        located.append(MistralConfidenceScore(text=word.text, confidence=word.confidence,
                                              start_index=base + at))
        cursor = at + len(word.text)
    return located


def _average_minimum(scores: Sequence[float]) -> tuple[float | None, float | None]:
    return (sum(scores) / len(scores), min(scores)) if scores else (None, None)


def block_confidence(block: BlockResult) -> MistralBlockConfidence | None:
    """`block.confidence`'s `average`/`minimum` over its content (else its words') and `label`
    (the block type's), or None when the block carries no confidence."""
    confidence = getattr(block, "confidence", None)
    if confidence is None:
        return None
    average, minimum = _score(_get(confidence, "average")), _score(_get(confidence, "minimum"))
    if average is None or minimum is None:
        average, minimum = _average_minimum([w.confidence for w in _words(block)])
    return MistralBlockConfidence(average_content_confidence_score=average,
                                  minimum_content_confidence_score=minimum,
                                  block_type_confidence_score=_score(_get(confidence, "label")))


# ------------------------------------------------------------------ pages

@dataclass
class MistralRun:
    """One request's choices and what it counts across pages (images kept, tables)."""

    body: MistralOCRRequest
    dpi: int
    images_kept: int = 0
    tables: int = 0

    def keeps(self, crop: ImageCrop) -> bool:
        """Whether a figure crop is extracted: big enough, and within `image_limit`."""
        x1, y1, x2, y2 = crop.box_px
        least = self.body.image_min_size or 0
        if x2 - x1 < least or y2 - y1 < least:
            return False
        if self.body.image_limit is not None and self.images_kept >= self.body.image_limit:
            return False
        self.images_kept += 1
        return True

    def table_id(self) -> str:
        number, self.tables = self.tables, self.tables + 1
        return f"tbl-{number}.{'md' if self.body.table_format == 'markdown' else 'html'}"


@dataclass
class _Piece:
    """A paragraph of the page markdown; `block`: the block whose text it is (for words)."""

    text: str
    block: int | None = None


@dataclass
class _PageBuild:
    pieces: list[_Piece] = field(default_factory=list)
    images: list[MistralImage] = field(default_factory=list)
    tables: list[MistralTable] = field(default_factory=list)
    blocks: list[AnyMistralBlock] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    table_of_block: dict[int, int] = field(default_factory=dict)
    """Block index -> index in `tables` of the table it became."""


def pixel_box(boxes: Sequence[tuple[float, float, float, float]], width: int,
              height: int) -> tuple[int, int, int, int] | None:
    """The union of a block's boxes in whole pixels, inside the page; None without a box."""
    if not boxes:
        return None
    xs = [v for b in boxes for v in (b[0], b[2])]
    ys = [v for b in boxes for v in (b[1], b[3])]

    def clamp(value: float, size: int) -> int:
        return max(0, min(size, round(value)))

    return (clamp(min(xs), width), clamp(min(ys), height), clamp(max(xs), width), clamp(max(ys), height))


def mistral_image(crop: ImageCrop, include_base64: bool) -> MistralImage:
    return MistralImage(id=crop.name, top_left_x=round(crop.box_px[0]), top_left_y=round(crop.box_px[1]),
                        bottom_right_x=round(crop.box_px[2]), bottom_right_y=round(crop.box_px[3]),
                        image_base64=f"data:image/png;base64,{crop.image_base64}" if include_base64 else None)


def _build(page: PageResult, run: MistralRun) -> _PageBuild:
    body, out = run.body, _PageBuild()
    crops = {crop.name: crop for crop in page.images or []}
    granularity = body.confidence_scores_granularity
    figures = 0
    for index, block in enumerate(page.blocks):
        box = pixel_box(block.boxes_px, page.width, page.height)
        kind = mistral_block_type(block.label, block.text, None if box is None else (box[1] + box[3]) / 2,
                                  page.height)
        text = block.text
        confidence = block_confidence(block) if granularity == "block" else None
        if kind == "image":  # DeepSeek-OCR's `image` blocks, the ones cropped
            name = IMAGE_REF.format(page=page.index, index=figures)
            figures += 1
            crop = crops.get(name)
            if crop is not None and run.keeps(crop):
                out.images.append(mistral_image(crop, bool(body.include_image_base64)))
                out.pieces.append(_Piece(f"![]({name})"))
                if text:
                    out.pieces.append(_Piece(text, index))
                if box is not None:
                    out.blocks.append(MistralImageBlock(
                        top_left_x=box[0], top_left_y=box[1], bottom_right_x=box[2], bottom_right_y=box[3],
                        content=text, image_id=name, confidence_scores=confidence))
                continue
            if not text:  # a figure not extracted: only text read inside it stays, as text
                continue
            kind = "text"
        if kind == "table":
            table_id = None
            if body.table_format is not None and text.strip():
                table_id = run.table_id()
                text = table_as(text, body.table_format)
                out.table_of_block[index] = len(out.tables)
                out.tables.append(MistralTable(id=table_id, content=text, format=body.table_format))
                out.pieces.append(_Piece(f"[{table_id}]({table_id})"))
            elif text:
                out.pieces.append(_Piece(text, index))
            if box is not None:
                out.blocks.append(MistralTableBlock(
                    top_left_x=box[0], top_left_y=box[1], bottom_right_x=box[2], bottom_right_y=box[3],
                    content=text, table_id=table_id, confidence_scores=confidence))
            continue
        if kind in ("header", "footer") and (body.extract_header if kind == "header" else body.extract_footer):
            if text:
                (out.header if kind == "header" else out.footer).append(text)
        elif text:
            out.pieces.append(_Piece(text, index))
        if box is not None:
            out.blocks.append(MistralBlock(
                type=kind, top_left_x=box[0], top_left_y=box[1], bottom_right_x=box[2], bottom_right_y=box[3],
                content=text, confidence_scores=confidence))
    return out


def _page_confidence(page: PageResult, built: _PageBuild, run: MistralRun) -> MistralPageConfidence | None:
    """The page's scores: `page.confidence`'s `average`/`minimum` (for `word`, and where those
    are missing, the blocks' words'), with the words located in the markdown for `word`."""
    granularity = run.body.confidence_scores_granularity
    if granularity is None:
        return None
    confidence = getattr(page, "confidence", None)
    block_words = {i: _words(b) for i, b in enumerate(page.blocks)}
    all_words = [w.confidence for words in block_words.values() for w in words]
    average, minimum = _score(_get(confidence, "average")), _score(_get(confidence, "minimum"))
    if granularity == "word" or average is None or minimum is None:
        average, minimum = _average_minimum(all_words) if all_words else (average, minimum)
    if average is None or minimum is None:
        return None
    located: list[MistralConfidenceScore] | None = None
    if granularity == "word":
        located = []
        offset = 0
        for piece in built.pieces:
            if piece.block is not None:
                located += _locate(block_words[piece.block], piece.text, offset)
            offset += len(piece.text) + 2
        for block, table in built.table_of_block.items():
            entry = built.tables[table]
            entry.word_confidence_scores = _locate(block_words[block], entry.content)
    return MistralPageConfidence(average_page_confidence_score=average, minimum_page_confidence_score=minimum,
                                 word_confidence_scores=located)


def mistral_page(page: PageResult, run: MistralRun, hyperlinks: list[str] | None = None) -> MistralPage:
    built = _build(page, run)
    markdown = "\n\n".join(piece.text for piece in built.pieces)
    scores = _page_confidence(page, built, run)
    if scores is None:  # the engine reported no confidence for this page: none for its blocks
        for block in built.blocks:
            block.confidence_scores = None
    return MistralPage(
        index=page.index - 1, markdown=markdown, images=built.images,
        dimensions=MistralDimensions(dpi=run.dpi, height=page.height, width=page.width),
        tables=built.tables, hyperlinks=hyperlinks or [],
        header="\n\n".join(built.header) if built.header else None,
        footer="\n\n".join(built.footer) if built.footer else None,
        confidence_scores=scores, quality=page.quality,
        blocks=built.blocks if run.body.include_blocks is not False else None)


async def _open_document(service: OCRService, body: MistralOCRRequest, owner: str | None) -> Document:
    """The request's document: an uploaded file (shared with the requests reading it at the
    same time) or a data URL; page numbers in errors as the request gave them (from 0)."""
    pages = one_based_pages(body.pages)
    try:
        if isinstance(body.document, FileChunk):
            return await service.inputs.open_stored(body.document.file_id, owner, pages=pages,
                                                    param="document", document_param="document")
        data = decode_base64_payload(document_data_url(body.document),
                                     max_bytes=current_limits(service.settings).max_bytes, param="document")
        return await service.inputs.open_bytes(data, pages=pages, param="document")
    except BadRequest as exc:
        raise zero_based_error(exc, body.pages) from None


async def mistral_ocr(service: OCRService, body: MistralOCRRequest,
                      owner: str | None = None) -> MistralOCRResponse:
    await service.models.check(body.model)
    granularity = body.confidence_scores_granularity
    options = OCROptions(output="json", include_images=True, resolution=body.resolution,
                         base_size=body.base_size, image_size=body.image_size,
                         crop_mode=body.crop_mode, confidence=granularity is not None)
    plan = service.recognizer.plan(options)
    if granularity == "word":
        plan = dataclasses.replace(plan, words=True)
    opened = await _open_document(service, body, owner)
    links: dict[int, list[str]] = {}
    with opened as document:
        dpi = service.settings.documents.dpi if document.kind == "pdf" else 72
        reading = None if document.kind != "pdf" else asyncio.ensure_future(  # while the pages are read
            service.inputs.pool.run(page_links, document.source, document.pages, deadline=document.deadline))
        try:
            answer = await service.recognizer.recognize(document, options, plan)
            if reading is not None:
                links = await reading
        finally:
            if reading is not None and not reading.done():
                reading.cancel()
            elif reading is not None and not reading.cancelled():
                reading.exception()  # retrieved: an error of it after the pages' error is not logged
    run = MistralRun(body=body, dpi=dpi)
    return MistralOCRResponse(
        pages=[mistral_page(p, run, links.get(p.index, [])) for p in answer.pages or []],
        model=answer.model,
        usage_info=MistralUsage(pages_processed=answer.page_count, doc_size_bytes=opened.input_bytes),
        resolution=answer.resolution)
