"""FastAPI dependencies shared by the project's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from openai_ocr.errors import BackendUnavailable
from openai_ocr.serving import OCRService

STATE_KEY = "openai_ocr"


def get_service(request: Request) -> OCRService:
    """The OCRService bound to this app (by create_app, or by the vLLM plugin's init_state)."""
    service = getattr(request.app.state, STATE_KEY, None)
    if service is None:
        raise BackendUnavailable("the OCR service is not ready yet")
    return service


ServiceDep = Annotated[OCRService, Depends(get_service)]
