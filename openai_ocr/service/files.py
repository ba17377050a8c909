"""The OpenAI Files API over the store: limits by purpose, inputs checked at upload, ownership.

Files belong to the key that uploaded them; every other key gets 404 (the store's lookups
take the owner). The input file of a batch that still runs cannot be deleted (409). A stored
document may hold more pages than one request may read (`limits.max_pages`): requests select
theirs with `pages`.
"""

from __future__ import annotations

import asyncio
from typing import IO

from openai_ocr.errors import PayloadTooLarge
from openai_ocr.protocol.files import FileObject, FilePurpose
from openai_ocr.service.document_limits import (
    DocumentLimits,
    batch_line_limits,
    interactive_limits,
    limits_scope,
)
from openai_ocr.service.intake import DocumentIntake
from openai_ocr.settings import Settings
from openai_ocr.storage.base import StateStore
from openai_ocr.storage.store import StoredFile


def file_object(stored: StoredFile) -> FileObject:
    return FileObject(id=stored.id, bytes=stored.bytes, created_at=stored.created_at,
                      filename=stored.filename, purpose=stored.purpose,  # type: ignore[arg-type]
                      expires_at=stored.expires_at)


class FileService:
    def __init__(self, settings: Settings, store: StateStore, inputs: DocumentIntake) -> None:
        self.settings = settings
        self.store = store
        self.inputs = inputs

    def readable(self) -> DocumentLimits:
        """What a stored document may be: what a batch line may read where batches run (a
        request reads a few pages of it with `pages`), else what a request may read."""
        if self.settings.batches.enabled:
            return batch_line_limits(self.settings, 0)
        return interactive_limits(self.settings)

    def upload_limit(self, purpose: FilePurpose) -> int:
        """Batch inputs are bounded by the batch limits, documents by `readable`."""
        limit = self.settings.batches.max_input_bytes if purpose == "batch" else self.readable().max_bytes
        return min(limit, self.settings.storage.max_upload_bytes)

    async def upload(self, owner: str, purpose: FilePurpose, filename: str, data: bytes) -> FileObject:
        limit = self.upload_limit(purpose)
        if len(data) > limit:
            raise PayloadTooLarge(f"file is larger than {limit} bytes", param="file")
        if purpose == "user":  # refuse what no request could use, now rather than later
            # one page probed: `limits.max_pages` bounds the pages a request reads, not the pages
            # a stored document may hold (requests pick theirs with `pages`)
            with limits_scope(self.readable()):
                (await self.inputs.open_bytes(data, pages=[1], param="file")).close()
        return file_object(await asyncio.to_thread(self.store.add_file, owner, purpose, filename, data))

    async def list_page(self, owner: str, purpose: str | None, after: str | None,
                   limit: int) -> tuple[list[FileObject], bool]:
        found, more = await asyncio.to_thread(self.store.list_files, owner, purpose, after, limit)
        return [file_object(f) for f in found], more

    async def get(self, file_id: str, owner: str) -> FileObject:
        return file_object(await asyncio.to_thread(self.store.get_file, file_id, owner))

    async def content(self, file_id: str, owner: str) -> tuple[FileObject, IO[bytes]]:
        """The file and its body as a stream (the caller closes it): a batch's output file may
        be far larger than anything the server should hold in memory."""
        stored = await asyncio.to_thread(self.store.get_file, file_id, owner)
        return file_object(stored), await asyncio.to_thread(self.store.open_file, file_id, owner)

    async def delete(self, file_id: str, owner: str) -> None:
        """404 for anybody else's file, 409 for the input of a batch that still runs."""
        await asyncio.to_thread(self.store.delete_file, file_id, owner)
