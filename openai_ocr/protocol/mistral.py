"""Schemas of `POST /v1/ocr`, the Mistral OCR API shape (OCR 4: blocks, separate tables,
headers and footers, confidence scores), field for field as the `mistralai` SDK's
`OCRRequest` / `OCRResponse` models have them."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from openai_ocr.ocr.block_types import MistralBlockType
from openai_ocr.ocr.models import PageQuality
from openai_ocr.ocr.tables import TableFormat

ConfidenceGranularity = Literal["page", "block", "word"]


class DocumentURLChunk(BaseModel):
    type: Literal["document_url"] = "document_url"
    document_url: str = Field(description="A `data:application/pdf;base64,...` URL.")
    document_name: str | None = None


class ImageURL(BaseModel):
    url: str


class ImageURLChunk(BaseModel):
    type: Literal["image_url"] = "image_url"
    image_url: str | ImageURL = Field(description="A `data:image/...;base64,...` URL.")


class FileChunk(BaseModel):
    type: Literal["file"] = "file"
    file_id: str = Field(description="An image or PDF uploaded to `POST /v1/files`.")


class MistralOCRRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "deepseek-ai/DeepSeek-OCR",
        "document": {"type": "document_url", "document_url": "data:application/pdf;base64,JVBERi0x..."},
        "pages": [0, 1], "include_image_base64": True, "include_blocks": True,
        "table_format": "html", "extract_header": True, "extract_footer": True}]})

    model: str | None = None
    document: Annotated[DocumentURLChunk | ImageURLChunk | FileChunk, Field(discriminator="type")]
    pages: (Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=10_000)]
            | Annotated[str, Field(max_length=1000)] | None) = Field(
        None, description="0-based pages: a list, or a string such as \"0,2-4\".")
    include_image_base64: bool | None = False
    image_limit: int | None = Field(None, ge=0, description="At most this many images are "
                                    "extracted, counted over the document in reading order; "
                                    "the others are left out of `images`, the markdown and "
                                    "`blocks` (text the model read inside one stays).")
    image_min_size: int | None = Field(None, ge=0, description="Images narrower or lower than "
                                       "this many pixels of the page image are not extracted.")
    table_format: TableFormat | None = Field(None, description="`null`: tables inline in the "
                                             "page markdown, as the model wrote them (HTML); "
                                             "`markdown` / `html`: tables in the page's `tables` "
                                             "in that form, the markdown holding a link "
                                             "`[tbl-N.md](tbl-N.md)` (`.html`) where each was.")
    extract_header: bool | None = Field(False, description="Page headers (and a page number in "
                                        "the top half) go to the page's `header`, out of the "
                                        "markdown.")
    extract_footer: bool | None = Field(False, description="Page footers (and a page number in "
                                        "the bottom half) go to the page's `footer`, out of the "
                                        "markdown.")
    include_blocks: bool | None = Field(True, description="Each page's `blocks`: the layout "
                                        "blocks in reading order with Mistral's block types and "
                                        "pixel boxes (the default, as Mistral's API schema has "
                                        "it).")
    confidence_scores_granularity: ConfidenceGranularity | None = Field(
        None, description="`page`, `block` or `word`: confidence scores at that level (and the "
        "page's), where the engine reports them; `null` fields where it does not.")
    resolution: str | None = Field(None, max_length=100, description="Extra field: the vision "
                                   "resolution mode (tiny, small, base, large, gundam), or auto (per page).")
    base_size: int | None = Field(None, description="Extra field: raw global-view size of a mode.")
    image_size: int | None = Field(None, description="Extra field: raw tile size of a mode.")
    crop_mode: bool | None = Field(None, description="Extra field: raw tiling switch of a mode.")


class MistralImage(BaseModel):
    id: str
    top_left_x: int | None
    top_left_y: int | None
    bottom_right_x: int | None
    bottom_right_y: int | None
    image_base64: str | None = None


class MistralDimensions(BaseModel):
    dpi: int
    height: int
    width: int


class MistralConfidenceScore(BaseModel):
    text: str = Field(description="A word as it appears in the markdown (or the table).")
    confidence: float = Field(description="0-1.")
    start_index: int = Field(description="Where the word starts in the page markdown (in the "
                             "table's `content` for a table's words).")


class MistralPageConfidence(BaseModel):
    average_page_confidence_score: float
    minimum_page_confidence_score: float
    word_confidence_scores: list[MistralConfidenceScore] | None = Field(
        None, description="With granularity `word`.")


class MistralBlockConfidence(BaseModel):
    average_content_confidence_score: float | None = None
    minimum_content_confidence_score: float | None = None
    block_type_confidence_score: float | None = None


class MistralTable(BaseModel):
    id: str = Field(description="`tbl-N.md` or `tbl-N.html`, N counted over the document; the "
                    "page markdown links it as `[id](id)`.")
    content: str
    format: TableFormat
    word_confidence_scores: list[MistralConfidenceScore] | None = None


class _BlockBase(BaseModel):
    top_left_x: int
    top_left_y: int
    bottom_right_x: int
    bottom_right_y: int
    content: str = Field(description="The block's text (markdown; a table as the table format "
                         "gives it).")
    confidence_scores: MistralBlockConfidence | None = None


class MistralBlock(_BlockBase):
    type: Literal["text", "title", "list", "equation", "caption", "code", "references",
                  "aside_text", "header", "footer", "signature"]


class MistralImageBlock(_BlockBase):
    type: Literal["image"] = "image"
    image_id: str = Field(description="The entry of the page's `images`.")


class MistralTableBlock(_BlockBase):
    type: Literal["table"] = "table"
    table_id: str | None = Field(None, description="The entry of the page's `tables`, with a "
                                 "`table_format`.")


AnyMistralBlock = Annotated[MistralBlock | MistralImageBlock | MistralTableBlock,
                            Field(discriminator="type")]
assert {t for cls in (MistralBlock, MistralImageBlock, MistralTableBlock)
        for t in get_args(cls.model_fields["type"].annotation)} == set(get_args(MistralBlockType))


class MistralPage(BaseModel):
    index: int = Field(description="0-based page index.")
    markdown: str
    images: list[MistralImage]
    dimensions: MistralDimensions | None
    tables: list[MistralTable] = Field(default_factory=list)
    hyperlinks: list[str] = Field(default_factory=list, description="Link targets (URIs) of the "
                                  "page's PDF link annotations; none for images.")
    header: str | None = None
    footer: str | None = None
    confidence_scores: MistralPageConfidence | None = None
    blocks: list[AnyMistralBlock] | None = None
    quality: PageQuality | None = Field(None, description="Extra field: loops found, tries made, "
                                        "which engine and mode gave the text.")


class MistralUsage(BaseModel):
    pages_processed: int
    doc_size_bytes: int | None = None


class MistralOCRResponse(BaseModel):
    pages: list[MistralPage]
    model: str
    usage_info: MistralUsage
    resolution: str | None = Field(None, description="Extra field: the resolution mode used "
                                   "(`auto`: each page's is in its `quality`).")
