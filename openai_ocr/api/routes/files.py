"""`/v1/files`: upload, list, read and delete files, in OpenAI's shapes.

`purpose=batch` takes a JSONL batch input; `purpose=user` an image or PDF that requests can
then name by id. Files belong to the API key that uploaded them. The logic is
`openai_ocr.service.files`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse

from openai_ocr.api.dependencies import ApiKeyDep, CallerDep, FilesDep
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.errors import PayloadTooLarge
from openai_ocr.outputs import media_type_of
from openai_ocr.protocol.files import FileDeleted, FileList, FileObject

router = APIRouter(prefix="/v1", route_class=OCRRoute, tags=["Files"], dependencies=[ApiKeyDep],
                   responses={**ERROR_RESPONSES, 404: ERROR_RESPONSES[400] | {
                       "description": "No such file, or another key's"},
                       409: ERROR_RESPONSES[400] | {
                           "description": "The file is the input of a batch that still runs"},
                       507: ERROR_RESPONSES[400] | {"description": "Storage quota used up"}})

CHUNK_BYTES = 1024 * 1024
"""A file's body is sent on this much at a time."""


@router.post("/files", response_model=FileObject, summary="Upload a file")
async def upload_file(file: Annotated[UploadFile, File()],
                      purpose: Annotated[Literal["batch", "user"], Form()],
                      files: FilesDep, caller: CallerDep) -> FileObject:
    limit = files.upload_limit(purpose)
    if file.size is not None and file.size > limit:  # before reading what will be refused
        raise PayloadTooLarge(f"file is larger than {limit} bytes", param="file")
    data = await file.read(limit + 1)
    return await files.upload(caller, purpose, file.filename or "upload", data)


@router.get("/files", response_model=FileList, summary="List your files, newest first")
async def list_files(files: FilesDep, caller: CallerDep, purpose: str | None = None,
                     after: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> FileList:
    data, more = await files.list_page(caller, purpose, after, limit)
    return FileList(data=data, has_more=more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


@router.get("/files/{file_id}", response_model=FileObject, summary="A file's metadata")
async def get_file(file_id: str, files: FilesDep, caller: CallerDep) -> FileObject:
    return await files.get(file_id, caller)


@router.get("/files/{file_id}/content", summary="A file's bytes",
            responses={200: {"content": {"application/octet-stream": {}}}})
async def file_content(file_id: str, files: FilesDep, caller: CallerDep) -> Response:
    """Streamed by chunks read in a thread (starlette runs a plain iterator there)."""
    stored, body = await files.content(file_id, caller)
    kind = ("application/jsonl" if stored.filename.endswith(".jsonl")
            else media_type_of(stored.filename) or "application/octet-stream")  # a batch line's PDF, hOCR, ALTO
    return StreamingResponse(chunks_of(body), media_type=kind, headers={"Content-Length": str(stored.bytes)})


def chunks_of(body: IO[bytes]) -> Iterator[bytes]:
    with body:
        while chunk := body.read(CHUNK_BYTES):
            yield chunk


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file")
async def delete_file(file_id: str, files: FilesDep, caller: CallerDep) -> FileDeleted:
    await files.delete(file_id, caller)
    return FileDeleted(id=file_id, deleted=True)
