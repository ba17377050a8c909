"""`GET /v1/usage`: what an API key used (pages, images, tokens, engine time), by UTC day,
route and model; an admin key (`auth.admin_keys`) sees every key's. The counting is
`openai_ocr.service.usage`."""

from __future__ import annotations

from fastapi import APIRouter

from openai_ocr.api.dependencies import AdminDep, ApiKeyDep, CallerDep, RuntimeDep
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.errors import Forbidden
from openai_ocr.protocol.usage import UsageReport
from openai_ocr.service.usage import report_range

router = APIRouter(prefix="/v1", route_class=OCRRoute, tags=["Usage"], dependencies=[ApiKeyDep],
                   responses={**ERROR_RESPONSES,
                              403: ERROR_RESPONSES[400] | {"description": "Another key's usage, "
                                                           "asked with a key that is not an admin key"},
                              404: ERROR_RESPONSES[400] | {"description": "No store on this server "
                                                           "(batches.enabled = false)"}})


@router.get("/usage", response_model=UsageReport, summary="Usage of your API key, by day",
            description="Requests, pages, page images, tokens and engine seconds by UTC day, "
            "route and model, with totals. `start` and `end` (YYYY-MM-DD, both included, at most "
            "366 days) default to the last 30 days. An admin key sees every key (`key_id` picks "
            "one); another key sees its own.")
async def usage(runtime: RuntimeDep, caller: CallerDep, admin: AdminDep, start: str | None = None,
                end: str | None = None, key_id: str | None = None) -> UsageReport:
    first, last = report_range(start, end)
    if not admin:
        if key_id is not None and key_id != caller:
            raise Forbidden("only an admin key (auth.admin_keys) sees another key's usage",
                            param="key_id")
        key_id = caller
    answer = await runtime.service.usage.report(first, last, key_id)
    answer.key_name = runtime.keys.name_of(key_id)
    for bucket in answer.data:  # names are labels, looked up now: a renamed key shows its new name
        bucket.key_name = runtime.keys.name_of(bucket.key_id)
    return answer
