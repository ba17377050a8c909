"""Pydantic schemas of the legacy `/ocr` API (requests and answers).

Field names follow the seed server, so old clients keep working: `image_base64`, `prompt`,
`temperature`, `max_tokens`; answers carry `request_id`, `text`, `processing_time` and
`status` next to the OpenAI-style `model`, `finish_reason` and `usage`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openai_ocr.errors import ErrorDetail
from openai_ocr.prompts import MODES

OutputFormat = Literal["text", "markdown", "json"]
ModeName = Literal["markdown", "ocr", "free_ocr", "figure", "describe", "locate"]
assert set(ModeName.__args__) == set(MODES)  # type: ignore[attr-defined]


class OCROptions(BaseModel):
    """Per-request options shared by every legacy route (JSON body or multipart form)."""

    prompt: str | None = Field(
        None, description="Raw DeepSeek-OCR prompt. A leading `<image>` placeholder is "
        "accepted and removed (the image is sent as its own content part). Wins over `mode`.",
        examples=["<image>\nFree OCR."])
    mode: ModeName | None = Field(
        None, description="Named official prompt: " + "; ".join(
            f"`{k}`: {v}" for k, v in {
                "markdown": "document to markdown with grounding (default)",
                "ocr": "OCR with grounding boxes", "free_ocr": "plain text",
                "figure": "parse a figure", "describe": "describe the image",
                "locate": "boxes of the text given in `ref`"}.items()))
    ref: str | None = Field(None, description="Text to find, for mode `locate`.", max_length=1000)
    temperature: float | None = Field(None, ge=0.0, le=2.0,
                                      description="Sampling temperature; 0 (greedy) by default.")
    max_tokens: int | None = Field(None, ge=1, description="Output token limit; 8192 by default, "
                                   "at most the server's `ocr.max_tokens_cap`.")
    ngram_size: int | None = Field(None, ge=1, le=1000,
                                   description="Override of the n-gram repetition guard's n.")
    window_size: int | None = Field(None, ge=1, le=10000,
                                    description="Override of the n-gram guard's window.")
    pages: str | None = Field(None, max_length=1000, description="Pages of a PDF or multi-frame "
                              "TIFF, 1-based: \"1-3,7\", \"5-\"; all pages by default.",
                              examples=["1-3,7"])
    output: OutputFormat = Field("text", description="`text`: the raw model output (pages "
                                 "joined by the page separator); `markdown`: clean markdown; "
                                 "`json`: also `pages` with blocks and pixel boxes.")
    include_images: bool = Field(False, description="Return figure crops (`image` blocks) as "
                                 "base64 PNG in `pages[].images`.")
    dpi: int | None = Field(None, ge=36, le=600, description="PDF render resolution "
                            "(default from config, 144).")


class OCRRequest(OCROptions):
    """`POST /ocr` body."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"image_base64": "iVBORw0KGgoAAAANSUhEUgAA...", "mode": "free_ocr"}]})

    image_base64: str | None = Field(None, description="The image (or a PDF) as base64 or "
                                     "as a `data:...;base64,` URL.")
    document_base64: str | None = Field(None, description="A PDF or multi-frame TIFF as base64 "
                                        "or as a `data:application/pdf;base64,` URL.")

    @model_validator(mode="after")
    def _one_input(self) -> OCRRequest:
        given = [name for name in ("image_base64", "document_base64") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of image_base64 or document_base64")
        return self

    @property
    def payload(self) -> tuple[str, str]:
        """(field name, base64 value) of the input."""
        if self.image_base64:
            return "image_base64", self.image_base64
        return "document_base64", self.document_base64 or ""


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class BlockResult(BaseModel):
    label: str = Field(description="DeepSeek-OCR's block label: title, text, table, image, ...")
    boxes_px: list[tuple[float, float, float, float]] = Field(
        description="[x1, y1, x2, y2] in page pixels (grid value / 999 * page size).")
    text: str


class ImageCrop(BaseModel):
    name: str = Field(description="The reference used in the markdown, e.g. images/1_0.png.")
    box_px: tuple[float, float, float, float]
    image_base64: str = Field(description="The crop as base64 PNG.")


class PageResult(BaseModel):
    index: int = Field(description="Page number in the document, 1-based.")
    width: int
    height: int
    text: str = Field(description="Raw model output for this page.")
    markdown: str
    blocks: list[BlockResult]
    finish_reason: str | None
    usage: Usage
    warning: str | None = Field(None, description="Set when the page hit max_tokens.")
    images: list[ImageCrop] | None = None


class OCRResponse(BaseModel):
    """Answer of `/ocr` and `/ocr/file`, and of each successful batch item."""

    request_id: str
    text: str = Field(description="The output in the requested format (`text`: raw model "
                      "output with grounding tags; `markdown`: cleaned); pages joined by "
                      "the page separator.")
    model: str
    finish_reason: str | None = Field(
        description="`stop` at the end of the page; `length` when `max_tokens` cut it "
        "(with DeepSeek-OCR usually a repetition loop).")
    usage: Usage
    prompt: str = Field(description="The prompt text sent to the model.")
    processing_time: float = Field(description="Seconds spent on this request.")
    status: Literal["success"] = "success"
    page_count: int = Field(1, description="Pages processed.")
    pages: list[PageResult] | None = Field(None, description="Per page, when `output` is "
                                           "`json` or `include_images` is set.")
    warnings: list[str] = Field([], description="E.g. pages whose output hit max_tokens.")


class BatchRequest(BaseModel):
    """`POST /ocr/batch` body. Items are validated one by one, so a bad item fails alone."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"requests": [
        {"image_base64": "iVBORw0KGgo...", "mode": "free_ocr"},
        {"image_base64": "iVBORw0KGgo...", "prompt": "<image>\nParse the figure."}]}]})

    requests: list[dict[str, Any]] = Field(
        ..., min_length=1, description="Up to `limits.max_batch_items` (100) objects, each "
        "shaped like the `POST /ocr` body (OCRRequest).")


class BatchItemResult(BaseModel):
    """One batch item: the OCR answer fields on success, `error` on failure."""

    index: int
    status: Literal["success", "error"]
    status_code: int = Field(description="The HTTP status this item would have had alone.")
    request_id: str
    text: str = ""
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    prompt: str | None = None
    processing_time: float = 0.0
    page_count: int | None = None
    pages: list[PageResult] | None = None
    warnings: list[str] = []
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="One entry per item, in request order.")
    succeeded: int
    failed: int
    total_processing_time: float


class StreamEvent(BaseModel):
    """One `data:` event of `/ocr/stream`. Text travels JSON-encoded, so newlines are safe.

    Order: for each page a `page` event, `text` events, a `page_end` event (a text event
    with the page separator between pages); then one `done` event, or an `error` event.
    Concatenating every event's `text` gives the non-streamed `text` of output `text`.
    """

    type: Literal["page", "text", "page_end", "done", "error"] = "text"
    text: str = Field("", description="New text since the previous event.")
    page: int | None = None
    width: int | None = None
    height: int | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    warning: str | None = None
    model: str | None = None
    request_id: str | None = None
    error: ErrorDetail | None = None


class UpstreamStatus(BaseModel):
    url: str | None = None
    reachable: bool
    detail: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "unavailable"]
    model: str
    engine: str
    model_loaded: bool
    backend: UpstreamStatus = Field(description="Reachability of the engine or upstream.")
    version: str
    timestamp: float
