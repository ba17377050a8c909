"""Pydantic schemas of the legacy `/ocr` API (requests and answers).

Field names follow the seed server, so old clients keep working: `image_base64`, `prompt`,
`temperature`, `max_tokens`; answers carry `request_id`, `text`, `processing_time` and
`status` next to the OpenAI-style `model`, `finish_reason` and `usage`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openai_ocr.errors import ErrorDetail
from openai_ocr.ocr.models import OCROptions, PageQuality, PageResult, Usage
from openai_ocr.protocol.strict import few_unknown_keys


class OCRRequest(OCROptions):
    """`POST /ocr` body."""

    # Unknown fields are refused (a misspelt option would otherwise be silently ignored).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"image_base64": "iVBORw0KGgoAAAANSUhEUgAA...", "mode": "free_ocr"}]})

    image_base64: str | None = Field(None, description="The image (or a PDF) as base64 or "
                                     "as a `data:...;base64,` URL.")
    document_base64: str | None = Field(None, description="A PDF or multi-frame TIFF as base64 "
                                        "or as a `data:application/pdf;base64,` URL.")
    file_id: str | None = Field(None, description="An image or PDF uploaded to `POST /v1/files` "
                                "(purpose `user`), by its id.")

    @model_validator(mode="before")
    @classmethod
    def _few_unknown(cls, data: Any) -> Any:
        return few_unknown_keys(data, cls.model_fields)

    @model_validator(mode="after")
    def _one_input(self) -> OCRRequest:
        given = [name for name in ("image_base64", "document_base64", "file_id") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of image_base64, document_base64 or file_id")
        return self

    @property
    def payload(self) -> tuple[str, str]:
        """(field name, base64 value) of the input."""
        if self.image_base64:
            return "image_base64", self.image_base64
        return "document_base64", self.document_base64 or ""


class ResultFile(BaseModel):
    """An archival file a batch line made, kept in the Files API (purpose `batch_output`)."""

    id: str = Field(description="Its id: download it with `GET /v1/files/{id}/content`.")
    filename: str = Field(description="NAME.ocr.pdf, NAME.hocr or NAME.alto.xml.")
    bytes: int
    media_type: str = Field(description="application/pdf, application/xhtml+xml or application/xml.")
    format: Literal["pdf", "hocr", "alto"]
    pdfa: str | None = Field(None, description="The PDF/A conformance claimed (`2b` for PDFs made "
                             "from images); null for a PDF input (its pages kept as they are).")


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
                                           "`json`, `include_images` or `include_page_images` "
                                           "is set.")
    warnings: list[str] = Field([], description="E.g. pages whose output hit max_tokens.")
    resolution: str | None = Field(None, description="The resolution mode used (`tiny` ... "
                                   "`gundam`); it decides the image tokens in `usage.prompt_tokens`. "
                                   "`auto`: each page's own is its `quality.resolution`.")
    output_file: ResultFile | None = Field(None, description="Batch lines with `output` pdf, hocr or alto: "
                                    "the file made (`text` is then empty).")


class BatchRequest(BaseModel):
    """`POST /ocr/batch` body. Items are validated one by one, so a bad item fails alone."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"requests": [
        {"image_base64": "iVBORw0KGgo...", "mode": "free_ocr"},
        {"image_base64": "iVBORw0KGgo...", "prompt": "<image>\nParse the figure."}]}]})

    requests: list[dict[str, Any]] = Field(
        ..., min_length=1, description="Up to `limits.max_batch_items` (100) objects, each "
        "shaped like the `POST /ocr` body (OCRRequest).")

    @model_validator(mode="before")
    @classmethod
    def _few_unknown(cls, data: Any) -> Any:
        return few_unknown_keys(data, cls.model_fields)


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
    resolution: str | None = None
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
    A `page_reset` event withdraws the text its page streamed so far: its answer held a
    repetition loop (the stream stops as soon as one shows) or was cut at max_tokens, and the
    text that follows it is the answer kept after trying again (`page_end`'s `quality`).
    Concatenating every event's `text`, each page's from its last `page_reset` on, gives the
    non-streamed `text` of output `text`.
    With `output=json` each `page_end` event also carries the page's `result` (blocks with
    pixel boxes, markdown; figure crops and the page image when asked for), so one streamed
    call gives what `/ocr/file` gives.
    """

    type: Literal["page", "text", "page_reset", "page_end", "done", "error"] = "text"
    text: str = Field("", description="New text since the previous event.")
    page: int | None = None
    page_count: int | None = Field(None, description="On `page` events: how many pages the "
                                   "request reads.")
    width: int | None = None
    height: int | None = None
    result: PageResult | None = Field(None, description="On `page_end` events with "
                                      "`output=json`: the page, as in `/ocr/file`'s `pages`.")
    finish_reason: str | None = None
    usage: Usage | None = None
    warning: str | None = None
    quality: PageQuality | None = Field(None, description="On `page_end` events: loops found, "
                                        "tries made, which engine and mode gave the text.")
    reason: str | None = Field(None, description="On `page_reset` events: why the page is read "
                               "again (`repetition_loop`, `truncated`).")
    model: str | None = None
    request_id: str | None = None
    error: ErrorDetail | None = None


class EngineReachability(BaseModel):
    url: str | None = None
    reachable: bool
    detail: str | None = None


class StorageHealth(BaseModel):
    ok: bool
    detail: str | None = Field(None, description="Why files and batches cannot be served "
                               "(a damaged or lost database), when they cannot.")


class HealthResponse(BaseModel):
    status: Literal["healthy", "unavailable"]
    model: str
    engine: str
    model_loaded: bool
    engine_status: EngineReachability = Field(description="Reachability of the engine or upstream.")
    storage: StorageHealth | None = Field(None, description="The store of files and batches "
                                          "(absent when they are off); `/ready` is 503 while it "
                                          "is not ok.")
    version: str
    timestamp: float
