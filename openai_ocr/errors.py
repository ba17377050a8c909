"""The error vocabulary: one class per HTTP answer, and the JSON body every error answer uses.

The body follows the OpenAI error shape, `{"error": {"message", "type", "code", "param"}}`, so
the openai SDK and the legacy clients both get a readable message. Raise the named classes;
`error_for_status` maps a status from elsewhere (an upstream, vLLM) onto them.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int | str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the project's routes has this body."""

    error: ErrorDetail


_LOCATIONS = ("body", "query", "form")

EXCERPT_CHARS = 64
"""The most characters of a client's input an error message repeats."""


def excerpt(value: object, limit: int = EXCERPT_CHARS, *, quote: bool = True) -> str:
    """A short, escaped excerpt of request input for an error message.

    At most `limit` characters of `value`, control and non-ASCII characters escaped as
    Python escapes them; a longer value is cut and says how long it was. Quoted as `repr`
    quotes (`'abc'`, what `{value!r}` gave), or bare with `quote=False` (field names, paths).
    Every message that includes request input goes through here, so an error body stays
    short whatever was sent.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    shown = ascii(text[:limit])
    if not quote:
        shown = shown[1:-1]
    return f"{shown}... ({len(text)} characters)" if cut else shown


def error_field(error: Mapping[str, Any]) -> str:
    """The dotted field path of one pydantic error, without FastAPI's `body`/`query` prefix
    (each part an excerpt: a dict key in the path is the client's text)."""
    return ".".join(excerpt(p, quote=False) for p in error.get("loc", ()) if p not in _LOCATIONS)


def _one_message(error: Mapping[str, Any], known: Collection[str]) -> str:
    """A pydantic error's text; an unknown field names the closest known one (a typo's fix)."""
    if error.get("type") == "extra_forbidden":
        name = str(error.get("loc", ("",))[-1])
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(sorted(known))}"
        return f"unknown field; {hint}" if known else "unknown field"
    return str(error.get("msg", "invalid"))


def validation_message(errors: Sequence[Mapping[str, Any]], whole: str = "request",
                       known: Collection[str] = ()) -> str:
    """A readable line from pydantic errors: `field.path: message; ...` (the first five).

    `whole` names the thing when an error concerns no single field; `known` lists the
    accepted field names, so an unknown field's message can suggest the closest one.
    Inputs are never echoed: a message stays short whatever was sent.
    """
    parts = [f"{error_field(err) or whole}: {_one_message(err, known)}" for err in errors[:5]]
    return "; ".join(parts) or f"invalid {whole}"


class OCRError(Exception):
    """An error with the HTTP status the client should see. Raise a subclass, not this."""

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    error_type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.status_code = int(self.status)

    def body(self) -> ErrorBody:
        return ErrorBody(error=ErrorDetail(message=self.message, type=self.error_type,
                                           code=self.status_code, param=self.param))

    def as_json(self) -> dict[str, Any]:
        return self.body().model_dump()


class BadRequest(OCRError):
    status = HTTPStatus.BAD_REQUEST
    error_type = "invalid_request_error"


class Unauthorized(OCRError):
    status = HTTPStatus.UNAUTHORIZED
    error_type = "authentication_error"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(OCRError):
    status = HTTPStatus.FORBIDDEN
    error_type = "permission_error"


class NotFound(OCRError):
    status = HTTPStatus.NOT_FOUND
    error_type = "not_found_error"


class ModelNotFound(OCRError):
    """A `model` the server does not serve: 404 `model_not_found`, as OpenAI and vLLM answer."""

    status = HTTPStatus.NOT_FOUND
    error_type = "invalid_request_error"

    def __init__(self, model: str, served: list[str]) -> None:
        super().__init__(f"the model {excerpt(model)} does not exist; this server serves: "
                         f"{', '.join(served)}", param="model")

    def body(self) -> ErrorBody:
        body = super().body()
        body.error.code = "model_not_found"
        return body


class MethodNotAllowed(OCRError):
    status = HTTPStatus.METHOD_NOT_ALLOWED
    error_type = "invalid_request_error"


class Conflict(OCRError):
    """The request conflicts with the state of what it names (409), e.g. deleting the input
    file of a batch that still runs."""

    status = HTTPStatus.CONFLICT
    error_type = "invalid_request_error"


class PayloadTooLarge(OCRError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    error_type = "request_too_large"


class UnsupportedMediaType(OCRError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    error_type = "invalid_request_error"


class RequestTimeout(OCRError):
    """The request's body did not arrive in time (408; the connection is closed)."""

    status = HTTPStatus.REQUEST_TIMEOUT
    error_type = "request_timeout"


class UnprocessableEntity(OCRError):
    """The request does not match the schema (FastAPI's 422)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    error_type = "invalid_request_error"


class TooManyRequests(OCRError):
    """Too much work in flight or over the rate limit: come back later (Retry-After)."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    error_type = "rate_limit_error"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class QuotaExceeded(TooManyRequests):
    """An API key's quota (pages per day or month, requests at once) is used up: 429 with
    `Retry-After` at the window's end, typed as OpenAI types its own quota answers."""

    error_type = "insufficient_quota"


class InternalError(OCRError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    error_type = "server_error"


class UpstreamError(OCRError):
    """The engine or the upstream failed (502)."""

    status = HTTPStatus.BAD_GATEWAY
    error_type = "upstream_error"


class Unavailable(OCRError):
    """The model or a resource is not ready (503)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    error_type = "service_unavailable"


class EngineTimeout(OCRError):
    """The engine or the upstream did not answer within the request's time (504)."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    error_type = "upstream_timeout"


class InsufficientStorage(OCRError):
    """The server's storage quota is used up (507)."""

    status = HTTPStatus.INSUFFICIENT_STORAGE
    error_type = "insufficient_storage"


ERROR_CLASSES: dict[int, type[OCRError]] = {
    int(cls.status): cls for cls in (
        BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, PayloadTooLarge,
        UnsupportedMediaType, RequestTimeout, UnprocessableEntity, TooManyRequests, InternalError,
        UpstreamError, Unavailable, EngineTimeout, InsufficientStorage)
}


def error_for_status(status: int, message: str, *, param: str | None = None,
                     headers: dict[str, str] | None = None) -> OCRError:
    """The named error for a status reported by someone else (an upstream, vLLM, a server).

    A status without a class of its own keeps its number, typed as a client error (4xx) or
    a server error (5xx).
    """
    cls = ERROR_CLASSES.get(status) or (BadRequest if 400 <= status < 500 else InternalError)
    if cls is TooManyRequests:
        error: OCRError = TooManyRequests(message, int((headers or {}).get("Retry-After", "1")))
    elif cls is Unauthorized:
        error = Unauthorized(message)
    else:
        error = cls(message, param=param, headers=headers)
    error.status_code = status if 400 <= status <= 599 else int(cls.status)
    return error
