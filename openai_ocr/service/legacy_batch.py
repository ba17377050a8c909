"""`POST /ocr/batch`: up to `limits.max_batch_items` `/ocr` bodies, run concurrently, answered
in order; each item is validated and answered alone, so one bad item never fails the others."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from openai_ocr.errors import (
    BadRequest,
    InternalError,
    OCRError,
    PayloadTooLarge,
    UnprocessableEntity,
    validation_message,
)
from openai_ocr.outputs import is_archival
from openai_ocr.protocol.ocr import BatchItemResult, BatchResponse, OCRRequest
from openai_ocr.service.recognition import Recognizer, new_request_id

logger = logging.getLogger(__name__)


async def legacy_batch(recognizer: Recognizer, items: list[dict[str, Any]],
                       owner: str | None = None) -> BatchResponse:
    limits = recognizer.settings.limits
    if len(items) > limits.max_batch_items:
        raise PayloadTooLarge(f"a batch holds at most {limits.max_batch_items} requests; got "
                              f"{len(items)}", param="requests")
    started = time.perf_counter()
    gate = asyncio.Semaphore(limits.batch_concurrency)

    async def run(index: int, item: dict[str, Any]) -> BatchItemResult:
        async with gate:
            return await _item(recognizer, index, item, owner)

    results = await asyncio.gather(*(run(i, item) for i, item in enumerate(items)))
    ok = sum(r.status == "success" for r in results)
    return BatchResponse(results=list(results), succeeded=ok, failed=len(results) - ok,
                         total_processing_time=round(time.perf_counter() - started, 4))


async def _item(recognizer: Recognizer, index: int, item: dict[str, Any],
                owner: str | None) -> BatchItemResult:
    request_id = new_request_id()
    try:
        request = OCRRequest.model_validate(item)
        if is_archival(request.output):
            raise BadRequest(f"output={request.output} is answered as a file, which a batch item's JSON "
                             "cannot carry: send it to /ocr, or as a line of the Batch API", param="output")
        answer = await recognizer.read_request(request, owner, request_id)
    except ValidationError as exc:
        error: OCRError = UnprocessableEntity(validation_message(exc.errors(), whole="item",
                                                                  known=OCRRequest.model_fields))
    except OCRError as exc:
        error = exc
    except Exception:  # noqa: BLE001 - one item's bug must not lose the others' answers
        logger.exception("batch item %d failed", index)
        error = InternalError("internal error while processing this item")
    else:
        return BatchItemResult(index=index, status="success", status_code=200,
                               **answer.model_dump(exclude={"status"}))
    return BatchItemResult(index=index, status="error", status_code=error.status_code,
                           request_id=request_id, error=error.body().error)
