"""A route class that turns every failure of a project route into a JSON error answer.

The handling lives on the routes, not on the app, so the compat routes behave the same
when the vLLM endpoint plugin mounts them on vLLM's own app (whose handlers stay vLLM's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from openai_ocr.errors import (
    BadRequest,
    ErrorBody,
    InternalError,
    OCRError,
    UnprocessableEntity,
    error_for_status,
    validation_message,
)

logger = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad input (not an image, invalid base64, unknown mode, ...)",
        401: "Missing or invalid API key",
        413: "Input over a configured limit",
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


_ECHOED = ("input", "ctx", "url")
"""Parts of pydantic's error details that repeat the client's input: never sent back."""


def validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder([{k: v for k, v in e.items() if k not in _ECHOED} for e in exc.errors()])
    err = UnprocessableEntity(validation_message(errors))
    body = err.as_json()
    body["detail"] = errors  # FastAPI's usual field, kept for clients that read it
    return JSONResponse(body, status_code=422)


_NON_FINITE = (b"NaN", b"Infinity")


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"the JSON body holds {name}, which JSON does not allow; send a number")


async def refuse_non_finite_json(request: Request) -> None:
    """400 for `NaN`/`Infinity` in a JSON body (Python's parser accepts them; JSON does not).

    A byte search first, so ordinary bodies are not parsed twice; the body is cached for the
    route's own parsing.
    """
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    if any(token in body for token in _NON_FINITE):
        try:
            json.loads(body, parse_constant=_refuse_constant)
        except ValueError:
            return  # not valid JSON at all: the route's parser answers that (422)


class OCRRoute(APIRoute):
    """APIRoute whose errors are always `{"error": {...}}` JSON with the right status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                await refuse_non_finite_json(request)
                return await handler(request)
            except OCRError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return validation_error(exc)
            except HTTPException as exc:
                err = error_for_status(exc.status_code, str(exc.detail))
                return error_response(err, headers=dict(exc.headers or {}))
            except Exception:  # noqa: BLE001 - never a traceback to the client
                logger.exception("unhandled error in %s %s", request.method, request.url.path)
                return error_response(InternalError("internal server error"))

        return guarded
