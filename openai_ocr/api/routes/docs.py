"""/openapi.json, /docs and /redoc behind the API key, for servers with `auth.protect_docs`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from openai_ocr.api.dependencies import ApiKeyDep
from openai_ocr.api.http_errors import OCRRoute


def protected_docs_router(app: FastAPI) -> APIRouter:
    """/openapi.json, /docs and /redoc behind the API key (auth.protect_docs)."""
    router = APIRouter(dependencies=[ApiKeyDep], include_in_schema=False, route_class=OCRRoute)

    @router.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="openai-ocr")

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="openai-ocr")

    return router
