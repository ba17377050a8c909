"""The legacy OCR service: decode inputs, translate to chat requests, shape the answers.

Holds no HTTP types, so the routes stay thin glue and the logic is testable alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from openai.types.chat import ChatCompletionChunk
from pydantic import ValidationError

from openai_ocr import __version__
from openai_ocr.backends.base import ChatBackend
from openai_ocr.documents import ImageInput, decode_base64_payload, load_image
from openai_ocr.errors import OCRError, PayloadTooLarge
from openai_ocr.protocol import (
    BatchItemResult,
    BatchResponse,
    HealthResponse,
    OCROptions,
    OCRRequest,
    OCRResponse,
    StreamEvent,
    UpstreamStatus,
)
from openai_ocr.settings import Settings
from openai_ocr.streams import primed
from openai_ocr.translation import (
    build_chat_request,
    chunk_delta,
    completion_result,
    plan_request,
    usage_of,
)

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    return f"ocr-{uuid.uuid4().hex}"


class OCRService:
    """One per app: the backend plus the settings every legacy route needs."""

    def __init__(self, backend: ChatBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    # -- inputs -----------------------------------------------------------------------
    async def image_from_base64(self, value: str, param: str = "image_base64") -> ImageInput:
        limits = self.settings.limits
        data = decode_base64_payload(value, max_bytes=limits.max_file_bytes, param=param)
        return await self.image_from_bytes(data, param=param)

    async def image_from_bytes(self, data: bytes, param: str = "file") -> ImageInput:
        limits = self.settings.limits
        if len(data) > limits.max_file_bytes:
            raise PayloadTooLarge(f"{param} is larger than {limits.max_file_bytes} bytes", param=param)
        return await asyncio.to_thread(load_image, data, max_pixels=limits.max_image_pixels,
                                       max_bytes=limits.max_file_bytes, param=param)

    # -- one image --------------------------------------------------------------------
    async def recognize(self, image: ImageInput, options: OCROptions,
                        request_id: str | None = None) -> OCRResponse:
        started = time.perf_counter()
        plan = plan_request(options, self.settings.ocr)
        body = build_chat_request(self.backend.model, image, plan, stream=False)
        result = completion_result(await self.backend.complete(body))
        if result.finish_reason == "length":
            logger.warning("output hit max_tokens=%d (likely a repetition loop)", plan.max_tokens)
        return OCRResponse(
            request_id=request_id or new_request_id(), text=result.text, model=result.model,
            finish_reason=result.finish_reason, usage=result.usage, prompt=plan.prompt,
            processing_time=round(time.perf_counter() - started, 4))

    async def open_stream(self, image: ImageInput, options: OCROptions) -> AsyncIterator[StreamEvent]:
        """Start a streamed recognition; raises before returning if the engine refuses it.

        The first chunk is awaited here, so an unreachable engine or a rejected request is
        answered with a proper status code instead of an error inside a 200 stream.
        """
        plan = plan_request(options, self.settings.ocr)
        body = build_chat_request(self.backend.model, image, plan, stream=True)
        chunks = await primed(self.backend.stream(body))
        return self._stream_events(chunks, new_request_id())

    async def _stream_events(self, chunks: AsyncIterator[ChatCompletionChunk],
                             request_id: str) -> AsyncIterator[StreamEvent]:
        finish_reason: str | None = None
        usage = None
        model = self.backend.model
        try:
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = usage_of(chunk.usage)
                text, reason = chunk_delta(chunk)
                finish_reason = reason or finish_reason
                if text:
                    yield StreamEvent(text=text)
        except OCRError as exc:
            yield StreamEvent(error=exc.body().error, request_id=request_id)
            return
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        yield StreamEvent(finish_reason=finish_reason, usage=usage, model=model, request_id=request_id)

    # -- batches ----------------------------------------------------------------------
    async def batch(self, items: list[dict[str, Any]]) -> BatchResponse:
        limit = self.settings.limits.max_batch_items
        if len(items) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} requests; got {len(items)}",
                                  param="requests")
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.settings.limits.batch_concurrency)

        async def run(index: int, item: dict[str, Any]) -> BatchItemResult:
            async with gate:
                return await self._batch_item(index, item)

        results = await asyncio.gather(*(run(i, item) for i, item in enumerate(items)))
        ok = sum(r.status == "success" for r in results)
        return BatchResponse(results=list(results), succeeded=ok, failed=len(results) - ok,
                             total_processing_time=round(time.perf_counter() - started, 4))

    async def _batch_item(self, index: int, item: dict[str, Any]) -> BatchItemResult:
        request_id = new_request_id()
        try:
            request = OCRRequest.model_validate(item)
            image = await self.image_from_base64(request.image_base64)
            answer = await self.recognize(image, request, request_id)
        except ValidationError as exc:
            error = OCRError(422, "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()[:5]))
        except OCRError as exc:
            error = exc
        except Exception:  # noqa: BLE001 - one item's bug must not lose the others' answers
            logger.exception("batch item %d failed", index)
            error = OCRError(500, "internal error while processing this item")
        else:
            return BatchItemResult(index=index, status="success", status_code=200,
                                   **answer.model_dump(exclude={"status"}))
        return BatchItemResult(index=index, status="error", status_code=error.status_code,
                               request_id=request_id, error=error.body().error)

    # -- health -----------------------------------------------------------------------
    async def health(self) -> HealthResponse:
        status = await self.backend.status()
        return HealthResponse(
            status="healthy" if status.ready else "unavailable",
            model=self.backend.model, engine=self.backend.kind, model_loaded=status.ready,
            backend=UpstreamStatus(url=status.url, reachable=status.ready, detail=status.detail),
            version=__version__, timestamp=time.time())
