"""`/v1/chat/completions` and `/v1/models` for the modes that are not vLLM itself.

In vllm mode these are vLLM's own routes; here the project serves the same OpenAI schema,
forwarding to the engine with DeepSeek-OCR's sampling defaults filled in.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from openai_ocr.api.chat_answer import answer_chat
from openai_ocr.api.dependencies import ApiKeyDep, QuotaDep, ServiceDep
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.protocol.openai import ChatCompletionBody, ModelList

router = APIRouter(prefix="/v1", route_class=OCRRoute, responses=ERROR_RESPONSES, tags=["OpenAI"],
                   dependencies=[ApiKeyDep])


@router.post("/chat/completions", summary="OpenAI chat completion (stream and non-stream)",
             dependencies=[QuotaDep],
             description="Image parts go to the engine as they are. A `file` part holding a "
             "PDF (`file.file_data` as a data URL, or `file.file_id` of an upload) is answered "
             "page by page and joined with the page separator; an extra `pages` field (\"1-3,7\") selects pages.",
             responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat_completions(request: Request, body: ChatCompletionBody, service: ServiceDep) -> Any:
    return await answer_chat(request, service, body)


@router.get("/models", response_model=ModelList, summary="The served models")
async def list_models(service: ServiceDep) -> ModelList:
    models = await service.engine.list_models()
    return ModelList(data=[m.model_dump(mode="json") for m in models])
