"""Pydantic schemas of the legacy `/ocr` API (requests and answers).

Field names follow the seed server, so old clients keep working: `image_base64`, `prompt`,
`temperature`, `max_tokens`; answers carry `request_id`, `text`, `processing_time` and
`status` next to the OpenAI-style `model`, `finish_reason` and `usage`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openai_ocr.errors import ErrorDetail
from openai_ocr.prompts import MODES

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


class OCRRequest(OCROptions):
    """`POST /ocr` body."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"image_base64": "iVBORw0KGgoAAAANSUhEUgAA...", "mode": "free_ocr"}]})

    image_base64: str = Field(..., min_length=1, description="The image as base64 or as a "
                              "`data:image/...;base64,` URL.")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class OCRResponse(BaseModel):
    """Answer of `/ocr` and `/ocr/file`, and of each successful batch item."""

    request_id: str
    text: str = Field(description="The model's output, grounding tags included.")
    model: str
    finish_reason: str | None = Field(
        description="`stop` at the end of the page; `length` when `max_tokens` cut it "
        "(with DeepSeek-OCR usually a repetition loop).")
    usage: Usage
    prompt: str = Field(description="The prompt text sent to the model.")
    processing_time: float = Field(description="Seconds spent on this request.")
    status: Literal["success"] = "success"


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
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="One entry per item, in request order.")
    succeeded: int
    failed: int
    total_processing_time: float


class StreamEvent(BaseModel):
    """One `data:` event of `/ocr/stream`. Text travels JSON-encoded, so newlines are safe."""

    text: str = Field("", description="New text since the previous event.")
    finish_reason: str | None = None
    usage: Usage | None = None
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
