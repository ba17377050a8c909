"""`/v1/chat/completions` and `/v1/models` for the modes that are not vLLM itself.

In vllm mode these are vLLM's own routes; here the project serves the same OpenAI schema,
forwarding to the engine with DeepSeek-OCR's sampling defaults filled in.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from openai_ocr.api.dependencies import ApiKeyDep, ServiceDep
from openai_ocr.api.disconnect import cancel_on_disconnect
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.errors import OCRError
from openai_ocr.protocol.openai import ChatCompletionBody, ModelList
from openai_ocr.service.chat_documents import DocumentChat, prepare_chat
from openai_ocr.service.serving import OCRService
from openai_ocr.service.streams import primed

router = APIRouter(prefix="/v1", route_class=OCRRoute, responses=ERROR_RESPONSES, tags=["OpenAI"],
                   dependencies=[ApiKeyDep])


@router.post("/chat/completions", summary="OpenAI chat completion (stream and non-stream)",
             description="Image parts go to the engine as they are. A `file` part holding a "
             "PDF (`file.file_data` as a data URL, or `file.file_id` of an upload) is answered "
             "page by page and joined with the page separator; an extra `pages` field (\"1-3,7\") selects pages.",
             responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat_completions(request: Request, body: ChatCompletionBody, service: ServiceDep) -> Any:
    return await answer_chat(request, service, body)


async def answer_chat(request: Request, service: OCRService, body: ChatCompletionBody) -> Response:
    """The answer to a validated chat request: also what vllm mode's document-chat middleware
    sends for requests holding a file part (vLLM's own route takes images only)."""
    payload, document = await prepare_chat(service, body.model_dump(exclude_unset=True),
                                           getattr(request.state, "caller", None))
    if not body.stream:
        return await complete(request=request, service=service, payload=payload, document=document)
    chunks = await primed(document.stream() if document else service.engine.stream(payload))

    async def sse() -> Any:
        try:
            async for chunk in chunks:
                yield {"data": chunk.model_dump_json(exclude_unset=True)}
        except OCRError as exc:  # headers are sent: report it as an event, as vLLM does
            yield {"data": json.dumps(exc.as_json())}
        yield {"data": "[DONE]"}

    return EventSourceResponse(sse(), sep="\n")


@cancel_on_disconnect
async def complete(request: Request, service: OCRService, payload: dict[str, Any],
                   document: DocumentChat | None) -> Response:
    completion = await (document.complete() if document else service.engine.complete(payload))
    return Response(completion.model_dump_json(exclude_unset=True), media_type="application/json")


@router.get("/models", response_model=ModelList, summary="The served models")
async def list_models(service: ServiceDep) -> ModelList:
    models = await service.engine.list_models()
    return ModelList(data=[m.model_dump(mode="json") for m in models])
