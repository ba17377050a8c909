"""/docs (Swagger UI) and /redoc with their JS and CSS served by this server, not a CDN.

The assets ship in the `fastapi-offline` wheel, so the pages work on a machine with no
internet. With `auth.protect_docs`, /openapi.json, /docs and /redoc need the API key (the
static assets stay public: they hold nothing about this server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from openai_ocr.api.dependencies import ApiKeyDep
from openai_ocr.api.http_errors import OCRRoute

ASSETS_URL = "/docs-assets"


def assets_dir() -> Path:
    """The Swagger UI and ReDoc bundles inside the installed `fastapi-offline` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def mount_docs(app: FastAPI, *, protected: bool) -> None:
    """/docs, /redoc (and, when protected, /openapi.json) with same-origin assets."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    router = APIRouter(dependencies=[ApiKeyDep] if protected else [], include_in_schema=False,
                       route_class=OCRRoute)
    openapi_url = "/openapi.json"

    if protected:
        @router.get(openapi_url)
        async def openapi() -> dict[str, Any]:
            return app.openapi()

    @router.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png")

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)

    app.include_router(router)
