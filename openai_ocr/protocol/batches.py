"""Schemas of `/v1/batches` and of the batch files' JSONL lines, in OpenAI's shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openai_ocr.protocol.strict import few_unknown_keys

BatchEndpoint = Literal["/v1/chat/completions", "/v1/ocr", "/ocr"]
BatchStatus = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired",
                      "cancelling", "cancelled"]


class CreateBatchBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "input_file_id": "file-abc123", "endpoint": "/v1/chat/completions",
        "completion_window": "24h", "metadata": {"corpus": "invoices-2024"}}]})

    input_file_id: str = Field(description="A file uploaded with purpose `batch`: one JSONL "
                               "request per line (`custom_id`, `method` POST, `url`, `body`).")
    endpoint: BatchEndpoint
    completion_window: str = Field("24h", pattern=r"^\d+(\.\d+)?[hm]$",
                                   description="Hours (\"24h\") or minutes (\"90m\") to finish in.")
    metadata: dict[str, str] | None = Field(None, max_length=16)


class BatchLineError(BaseModel):
    """One problem found while validating the input file (`line` is 1-based)."""

    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchLineError]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class Batch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None = None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class BatchInputLine(BaseModel):
    """One line of a batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: BatchEndpoint
    body: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _few_unknown(cls, data: Any) -> Any:
        return few_unknown_keys(data, cls.model_fields)


class BatchLineResponse(BaseModel):
    status_code: int
    request_id: str
    body: dict[str, Any]


class BatchOutputLine(BaseModel):
    """One line of a batch's output or error file (OpenAI's format)."""

    id: str
    custom_id: str
    response: BatchLineResponse | None
    error: BatchLineError | None = Field(None, description="Why a request did not run (e.g. "
                                         "`batch_expired`); None when it ran.")
