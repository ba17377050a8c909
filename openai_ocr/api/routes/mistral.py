"""`POST /v1/ocr`: the Mistral OCR API shape, so LiteLLM, Haystack and the `mistralai` SDK
can use this server as their OCR provider. The logic is `openai_ocr.service.mistral_ocr`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from openai_ocr.api.dependencies import ApiKeyDep, QuotaDep, ServiceDep
from openai_ocr.api.disconnect import cancel_on_disconnect
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.protocol.mistral import MistralOCRRequest, MistralOCRResponse
from openai_ocr.service.mistral_ocr import mistral_ocr as run_mistral_ocr

router = APIRouter(prefix="/v1", route_class=OCRRoute, responses=ERROR_RESPONSES,
                   tags=["Mistral OCR"], dependencies=[ApiKeyDep, QuotaDep])


@router.post("/ocr", response_model=MistralOCRResponse, summary="OCR in the Mistral OCR API shape")
@cancel_on_disconnect
async def mistral_ocr(request: Request, body: MistralOCRRequest,
                      service: ServiceDep) -> MistralOCRResponse:
    return await run_mistral_ocr(service, body, getattr(request.state, "caller", None))
