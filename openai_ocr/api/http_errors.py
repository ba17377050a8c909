"""A route class that turns every failure of a project route into a JSON error answer.

The handling lives on the routes, not on the app, so the compat routes behave the same
when the vLLM endpoint plugin mounts them on vLLM's own app (whose handlers stay vLLM's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi import params as params_module
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from openai_ocr.errors import (
    BadRequest,
    ErrorBody,
    InternalError,
    OCRError,
    UnprocessableEntity,
    UnsupportedMediaType,
    error_field,
    error_for_status,
    excerpt,
    validation_message,
)
from openai_ocr.inputs.json_bounds import check_json_bounds
from openai_ocr.runtime import runtime_of
from openai_ocr.settings import LimitSettings

logger = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad input (not an image, invalid base64, unknown mode, ...)",
        401: "Missing or invalid API key",
        404: "Unknown model (`model_not_found`) or route",
        413: "Input over a configured limit",
        415: "Wrong content type (a file sent to a JSON route, or JSON to /ocr/file)",
        422: "Request does not match the schema",
        502: "The engine or upstream failed",
        429: "Too many requests in flight or over the rate limit (see Retry-After)",
        503: "The model is not ready",
        504: "The engine or upstream timed out",
    }.items()
}
"""OpenAPI documentation of the error answers shared by the project's routes."""


def error_response(error: OCRError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.as_json(), status_code=error.status_code,
                        headers={**error.headers, **(headers or {})})


def _is_form(content_type: str) -> bool:
    return content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip()
    return kind == "application/json" or kind.endswith("+json")


def _json_position(doc: Any, pos: int) -> str:
    """`line L column C` of a character offset in the body that failed to parse."""
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else str(doc or "")
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def request_error(exc: RequestValidationError, request: Request, *, form_route: bool = False,
                  known: Collection[str] = ()) -> OCRError:
    """The short error for a request FastAPI could not validate. Never echoes the input.

    Wrong content types name the route that takes what was sent (a file to `/ocr/file`,
    base64 JSON to `/ocr`); malformed JSON says where; unknown fields suggest the closest
    known one; `param` names the first offending field.
    """
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    content_type = request.headers.get("content-type", "").lower()
    path = request.url.path
    if first.get("type") == "json_invalid":
        where = _json_position(getattr(exc, "body", ""), loc[-1] if loc and isinstance(loc[-1], int) else 0)
        reason = str((first.get("ctx") or {}).get("error", "invalid JSON"))
        return BadRequest(f"the body is not valid JSON ({reason} at {where})")
    if form_route and content_type and not _is_form(content_type):
        return UnsupportedMediaType(
            f"{path} takes multipart/form-data with the document in a `file` field (curl -F "
            "file=@page.png); to send base64 JSON, use POST /ocr")
    sent_raw = (content_type and not _is_json(content_type)) or isinstance(first.get("input"), bytes)
    if not form_route and sent_raw and loc == ("body",):
        hint = ("images go in `image_url` parts as data: URLs" if path.startswith("/v1/")
                else "send base64 in `image_base64`")
        return UnsupportedMediaType(f"{path} takes a JSON body (Content-Type: application/json); "
                                    f"{hint}, or upload the file as multipart to POST /ocr/file")
    if loc == ("body",) and isinstance(first.get("input"), list):
        return UnprocessableEntity("the body must be a JSON object, not an array"
                                   + (' (a batch is {"requests": [...]})' if path.endswith("/batch") else ""))
    return UnprocessableEntity(validation_message(errors, known=known), param=error_field(first) or None)


def _short_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's `detail` list, kept for clients that read it, without the inputs."""
    return [{"type": e.get("type"), "loc": [excerpt(p, quote=False) for p in e.get("loc", ())],
             "msg": excerpt(e.get("msg"), 200, quote=False)}
            for e in exc.errors()[:20]]


def validation_error(exc: RequestValidationError, request: Request, *, form_route: bool = False,
                     known: Collection[str] = ()) -> JSONResponse:
    error = request_error(exc, request, form_route=form_route, known=known)
    body = error.as_json()
    if isinstance(error, UnprocessableEntity):
        body["detail"] = _short_errors(exc)
    return JSONResponse(body, status_code=error.status_code)


def http_error(exc: StarletteHTTPException, request: Request) -> JSONResponse:
    """Starlette's and FastAPI's HTTP errors (404, 405, body parsing) in the error shape."""
    if isinstance(exc.__cause__, OCRError):  # raised while FastAPI parsed the body
        return error_response(exc.__cause__)
    status = exc.status_code
    if status == 404 and exc.detail == "Not Found":
        message = (f"no route {excerpt(request.method, quote=False)} "
                   f"{excerpt(request.url.path, quote=False)}; the routes are listed at /docs")
    elif status == 405:
        message = (f"{excerpt(request.method, quote=False)} is not allowed on "
                   f"{excerpt(request.url.path, quote=False)}")
    elif status == 400 and "boundary" in str(exc.detail).lower():
        message = ("multipart/form-data without a boundary: let the client build the body "
                   "(curl -F file=@page.png, or files= in an HTTP library)")
    elif isinstance(exc.__cause__, UnicodeDecodeError):
        message = "the body is not UTF-8 encoded JSON"
    else:
        message = excerpt(exc.detail, 200, quote=False)
    error = error_for_status(status, message)
    return error_response(error, headers=dict(exc.headers or {}))


def _known_fields(route: APIRoute) -> tuple[bool, set[str]]:
    """Whether a route reads a form, and the body field names it accepts (for typo hints)."""
    field = route.body_field
    if field is None:
        return False, set()
    form = isinstance(field.field_info, params_module.Form)
    annotation = field.field_info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return form, set(annotation.model_fields)
    return form, {field.name}


_NON_FINITE = (b"NaN", b"Infinity")


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"the JSON body holds {name}, which JSON does not allow; send a number")


def json_limits(app: Any) -> tuple[int, int]:
    """(max_json_items, max_json_depth) of the app's runtime; the defaults before one is bound."""
    runtime = runtime_of(getattr(app, "state", None))
    limits = runtime.settings.limits if runtime is not None else LimitSettings()
    return limits.max_json_items, limits.max_json_depth


class ORJSONRequest(Request):
    """A request whose JSON body is parsed with orjson (what FastAPI's body parsing calls).

    The body's members, items and nesting are counted from its bytes first
    (`limits.max_json_items`, `max_json_depth`: 413 past them), so no body costs more to
    parse than the limits allow. orjson is several times faster than `json` on bodies holding
    page images, and refuses `NaN`/`Infinity` as JSON does. A body it refuses goes to
    Python's parser, so the 422 for broken JSON names line and column as before, and
    non-finite numbers, which Python's parser would accept, are a 400 (raised through
    FastAPI's "error parsing the body").
    """

    async def json(self) -> Any:
        body = await self.body()
        check_json_bounds(body, *json_limits(self.scope.get("app")))
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        if any(token in body for token in _NON_FINITE):
            return json.loads(body, parse_constant=_refuse_constant)
        return json.loads(body)


class OCRRoute(APIRoute):
    """APIRoute whose errors are always `{"error": {...}}` JSON with the right status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        form_route, known = _known_fields(self)

        async def guarded(request: Request) -> Response:
            request = ORJSONRequest(request.scope, request.receive)
            try:
                return await handler(request)
            except OCRError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return validation_error(exc, request, form_route=form_route, known=known)
            except StarletteHTTPException as exc:
                return http_error(exc, request)
            except Exception:  # noqa: BLE001 - never a traceback to the client
                logger.exception("unhandled error in %s %s", request.method, request.url.path)
                return error_response(InternalError("internal server error"))

        return guarded


def install_error_handlers(app: FastAPI, *, validation: bool = True) -> None:
    """The error shape for what no project route handles: unknown routes (404), wrong
    methods (405), and (with `validation`) validation errors of routes that are not OCRRoutes.

    On vLLM's app only the HTTP errors are taken over: its `/v1` routes keep vLLM's own
    validation answers.
    """

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return http_error(exc, request)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc, request)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return error_response(InternalError("internal server error"))

    app.add_exception_handler(StarletteHTTPException, on_http)
    if validation:
        app.add_exception_handler(RequestValidationError, on_validation)
        app.add_exception_handler(Exception, on_crash)
