"""The HTTP answer to a validated chat request: JSON, or Server-Sent Events when it streams.

Shared by our `/v1/chat/completions` route (gateway and lite modes) and, in vllm mode, by the
middleware that answers the chat requests holding a file part (vLLM's route takes images only).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from openai_ocr.api.disconnect import cancel_on_disconnect
from openai_ocr.errors import OCRError
from openai_ocr.protocol.openai import ChatCompletionBody
from openai_ocr.service.chat_documents import DocumentChat, plain_complete, plain_stream, prepare_chat
from openai_ocr.service.concurrency import primed
from openai_ocr.service.serving import OCRService


async def answer_chat(request: Request, service: OCRService, body: ChatCompletionBody) -> Response:
    payload, document = await prepare_chat(service, body.model_dump(exclude_unset=True),
                                           getattr(request.state, "caller", None))
    if not body.stream:
        return await complete(request=request, service=service, payload=payload, document=document)
    chunks = await primed(document.stream() if document else plain_stream(service, payload))

    async def sse() -> Any:
        try:
            async for chunk in chunks:
                yield {"data": chunk.model_dump_json(exclude_unset=True)}
        except OCRError as exc:  # headers are sent: report it as an event, as vLLM does
            yield {"data": orjson.dumps(exc.as_json()).decode()}
        yield {"data": "[DONE]"}

    return EventSourceResponse(sse(), sep="\n")


@cancel_on_disconnect
async def complete(request: Request, service: OCRService, payload: dict[str, Any],
                   document: DocumentChat | None) -> Response:
    completion = await (document.complete() if document else plain_complete(service, payload))
    return Response(completion.model_dump_json(exclude_unset=True), media_type="application/json")
