"""`/v1/chat/completions` and `/v1/models` for the modes that are not vLLM itself.

In vllm mode these are vLLM's own routes; here the project serves the same OpenAI schema,
forwarding to the backend with DeepSeek-OCR's sampling defaults filled in.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from openai_ocr.chat_documents import DocumentChat, file_part_location
from openai_ocr.dependencies import ApiKeyDep, ServiceDep
from openai_ocr.disconnect import cancel_on_disconnect
from openai_ocr.errors import OCRError
from openai_ocr.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.serving import OCRService
from openai_ocr.streams import primed
from openai_ocr.translation import apply_chat_defaults

router = APIRouter(prefix="/v1", route_class=OCRRoute, responses=ERROR_RESPONSES, tags=["OpenAI"],
                   dependencies=[ApiKeyDep])


class ChatCompletionBody(BaseModel):
    """An OpenAI chat-completion request. Unlisted fields (vLLM's extras too) pass through."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "model": "deepseek-ai/DeepSeek-OCR",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo..."}},
            {"type": "text", "text": "Free OCR."}]}]}]})

    model: str | None = Field(None, description="Defaults to the served model.")
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class ModelList(BaseModel):
    object: str = "list"
    data: list[dict[str, Any]]


@router.post("/chat/completions", summary="OpenAI chat completion (stream and non-stream)",
             description="Image parts go to the engine as they are. A `file` part holding a "
             "PDF (`file.file_data` as a data URL) is answered page by page and joined with "
             "the page separator; an extra `pages` field (\"1-3,7\") selects pages.",
             responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat_completions(request: Request, body: ChatCompletionBody, service: ServiceDep) -> Any:
    payload = apply_chat_defaults(body.model_dump(exclude_unset=True), service.settings.ocr,
                                  service.backend.model)
    await service.check_chat_images(payload)
    where = file_part_location(payload)
    document = DocumentChat(service, payload, where) if where is not None else None
    if not body.stream:
        return await complete(request=request, service=service, payload=payload, document=document)
    chunks = await primed(document.stream() if document else service.backend.stream(payload))

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
                   document: DocumentChat | None) -> JSONResponse:
    completion = await (document.complete() if document else service.backend.complete(payload))
    return JSONResponse(completion.model_dump(exclude_unset=True, mode="json"))


@router.get("/models", response_model=ModelList, summary="The served models")
async def list_models(service: ServiceDep) -> ModelList:
    models = await service.backend.list_models()
    return ModelList(data=[m.model_dump(mode="json") for m in models])
