"""Schemas of `/v1/files`, in OpenAI's shapes (the openai SDK parses them as its own types)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FilePurpose = Literal["batch", "user", "batch_output"]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose = Field(description="`batch`: a JSONL batch input; `user`: an image or "
                                 "PDF to reference by id; `batch_output`: a batch's results.")
    status: Literal["processed"] = "processed"
    expires_at: int | None = Field(None, description="When retention deletes the file (Unix time).")
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
