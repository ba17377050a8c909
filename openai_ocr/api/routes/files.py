"""`/v1/files`: upload, list, read and delete files, in OpenAI's shapes.

`purpose=batch` takes a JSONL batch input; `purpose=user` an image or PDF that requests can
then name by id. Files belong to the API key that uploaded them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from openai_ocr.api.dependencies import ApiKeyDep, BatchesDep, CallerDep, ServiceDep
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.errors import PayloadTooLarge
from openai_ocr.ocr.models import OCROptions
from openai_ocr.protocol.files import FileDeleted, FileList, FileObject
from openai_ocr.storage.store import StoredFile

router = APIRouter(prefix="/v1", route_class=OCRRoute, tags=["Files"], dependencies=[ApiKeyDep],
                   responses={**ERROR_RESPONSES, 404: ERROR_RESPONSES[400] | {
                       "description": "No such file, or another key's"},
                       507: ERROR_RESPONSES[400] | {"description": "Storage quota used up"}})


def file_object(stored: StoredFile) -> FileObject:
    return FileObject(id=stored.id, bytes=stored.bytes, created_at=stored.created_at,
                      filename=stored.filename, purpose=stored.purpose,  # type: ignore[arg-type]
                      expires_at=stored.expires_at)


@router.post("/files", response_model=FileObject, summary="Upload a file")
async def upload_file(file: Annotated[UploadFile, File()],
                      purpose: Annotated[Literal["batch", "user"], Form()],
                      service: ServiceDep, batches: BatchesDep, caller: CallerDep) -> FileObject:
    settings = service.settings
    limit = (min(settings.batches.max_input_bytes, settings.storage.max_upload_bytes)
             if purpose == "batch" else settings.limits.max_file_bytes)
    if file.size is not None and file.size > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes", param="file")
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes", param="file")
    if purpose == "user":  # refuse what no request could use, now rather than later
        (await service.open_bytes(data, OCROptions(), param="file")).close()
    stored = await asyncio.to_thread(batches.store.add_file, caller, purpose,
                                     file.filename or "upload", data)
    return file_object(stored)


@router.get("/files", response_model=FileList, summary="List your files, newest first")
async def list_files(batches: BatchesDep, caller: CallerDep, purpose: str | None = None,
                     after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> FileList:
    found, more = await asyncio.to_thread(batches.store.list_files, caller, purpose, after, limit)
    data = [file_object(f) for f in found]
    return FileList(data=data, has_more=more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


@router.get("/files/{file_id}", response_model=FileObject, summary="A file's metadata")
async def get_file(file_id: str, batches: BatchesDep, caller: CallerDep) -> FileObject:
    return file_object(await asyncio.to_thread(batches.store.get_file, file_id, caller))


@router.get("/files/{file_id}/content", summary="A file's bytes",
            responses={200: {"content": {"application/octet-stream": {}}}})
async def file_content(file_id: str, batches: BatchesDep, caller: CallerDep) -> Response:
    stored = await asyncio.to_thread(batches.store.get_file, file_id, caller)
    data = await asyncio.to_thread(batches.store.read_file, file_id, caller)
    kind = "application/jsonl" if stored.filename.endswith(".jsonl") else "application/octet-stream"
    return Response(data, media_type=kind)


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file")
async def delete_file(file_id: str, batches: BatchesDep, caller: CallerDep) -> FileDeleted:
    await asyncio.to_thread(batches.store.delete_file, file_id, caller)
    return FileDeleted(id=file_id, deleted=True)
