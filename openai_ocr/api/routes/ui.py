"""The web playground: `/` and `/playground` serve the page, `/ui/*` its static files.

Mounted in every mode (ours and vLLM's app). `GET /` negotiates: browsers (who prefer
`text/html`) get the page, API clients keep the JSON summary. The files ship inside the
package (`openai_ocr/ui`); nothing is fetched from another host, and the page's
Content-Security-Policy forbids it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from openai_ocr import __version__
from openai_ocr.api.dependencies import RuntimeDep, require_api_key
from openai_ocr.api.http_errors import OCRRoute
from openai_ocr.errors import NotFound, excerpt
from openai_ocr.runtime import Runtime

router = APIRouter(route_class=OCRRoute, include_in_schema=False)

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'")
"""Same-origin only: the page reaches its own server and nothing else."""


@cache
def asset(name: str) -> bytes | None:
    """A file of the packaged `openai_ocr/ui` folder, or None (no sub-folders, no dot-files)."""
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(tuple(MEDIA_TYPES)):
        return None
    path = resources.files("openai_ocr").joinpath("ui", name)
    return path.read_bytes() if path.is_file() else None


def prefers_html(accept: str) -> bool:
    """True when the Accept header ranks text/html above application/json (browsers do)."""
    quality: dict[str, float] = {}
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[kind.lower()] = max(q, quality.get(kind.lower(), 0.0))
    html = quality.get("text/html", 0.0)
    return html > 0 and html >= quality.get("application/json", 0.0)


async def _check_access(request: Request, runtime: Runtime) -> None:
    """404 when the playground is off; the API key when the docs are protected."""
    if not runtime.settings.ui.enabled:
        raise NotFound("the playground is disabled on this server (ui.enabled)")
    if runtime.settings.auth.protect_docs and runtime.keys.enabled:
        await require_api_key(request, runtime)


def _page() -> HTMLResponse:
    html = asset("index.html")
    if html is None:  # a broken install: the package data is missing
        raise NotFound("the playground files are not installed")
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


@router.get("/", response_model=None)
async def root(request: Request, runtime: RuntimeDep) -> Response | dict[str, str]:
    """The page for browsers; the server summary for everyone else."""
    if runtime.settings.ui.enabled and prefers_html(request.headers.get("accept", "")):
        await _check_access(request, runtime)
        return _page()
    summary = {"name": "openai-ocr", "version": __version__, "model": runtime.engine.model,
               "engine": runtime.engine.kind, "docs": "/docs", "openai_base_url": "/v1"}
    if runtime.settings.ui.enabled:
        summary["playground"] = "/playground"
    return summary


@router.get("/playground")
async def playground(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    await _check_access(request, runtime)
    return _page()


@router.get("/ui/{name}")
async def ui_file(name: str, request: Request, runtime: RuntimeDep) -> Response:
    await _check_access(request, runtime)
    data = asset(name)
    if data is None:
        raise NotFound(f"no file {excerpt(name)} in the playground")
    media = MEDIA_TYPES[name[name.rindex("."):]]
    return Response(data, media_type=media, headers={"Cache-Control": "no-cache",
                                                     "X-Content-Type-Options": "nosniff"})
