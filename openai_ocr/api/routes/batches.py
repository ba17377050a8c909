"""`/v1/batches`: the OpenAI Batch API (create, retrieve, list, cancel).

Lines run in the background, durably (see `openai_ocr.service.batches`); batches belong to
the API key that created them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openai_ocr.api.dependencies import ApiKeyDep, BatchesDep, CallerDep
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.protocol.batches import Batch, BatchList, CreateBatchBody

router = APIRouter(prefix="/v1", route_class=OCRRoute, tags=["Batches"], dependencies=[ApiKeyDep],
                   responses={**ERROR_RESPONSES, 404: ERROR_RESPONSES[400] | {
                       "description": "No such batch or file, or another key's"},
                       507: ERROR_RESPONSES[400] | {"description": "Storage quota used up"}})


@router.post("/batches", response_model=Batch, summary="Create a batch from an uploaded JSONL file",
             description="The input is validated at once: a batch with invalid lines (bad JSON, "
             "wrong url, duplicate `custom_id`, a body the endpoint would refuse) is answered "
             "with status `failed` and line-numbered `errors`.")
async def create_batch(body: CreateBatchBody, batches: BatchesDep, caller: CallerDep) -> Batch:
    return await batches.create(body, caller)


@router.get("/batches/{batch_id}", response_model=Batch, summary="A batch and its request counts")
async def get_batch(batch_id: str, batches: BatchesDep, caller: CallerDep) -> Batch:
    return await batches.get(batch_id, caller)


@router.get("/batches", response_model=BatchList, summary="Your batches, newest first")
async def list_batches(batches: BatchesDep, caller: CallerDep, after: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> BatchList:
    data, more = await batches.list(caller, after, limit)
    return BatchList(data=data, has_more=more, first_id=data[0].id if data else None,
                     last_id=data[-1].id if data else None)


@router.post("/batches/{batch_id}/cancel", response_model=Batch, summary="Cancel a batch",
             description="Lines already running finish; the batch ends `cancelled` with the "
             "results so far in its output file.")
async def cancel_batch(batch_id: str, batches: BatchesDep, caller: CallerDep) -> Batch:
    return await batches.cancel(batch_id, caller)
