"""Errors that carry their HTTP status, and the JSON body every error answer uses.

The body follows the OpenAI error shape, `{"error": {"message", "type", "code"}}`, so the
openai SDK and the legacy clients both get a readable message.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int | str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the project's routes has this body."""

    error: ErrorDetail


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def validation_message(errors: list[dict[str, Any]], whole: str = "request") -> str:
    """A readable line from pydantic errors: `field.path: message; ...` (the first five).

    `whole` names the thing when an error concerns no single field.
    """
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "form"))
        parts.append(f"{where or whole}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or f"invalid {whole}"


class OCRError(Exception):
    """An error with the HTTP status the client should see."""

    def __init__(self, status_code: int, message: str, *, param: str | None = None,
                 error_type: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.error_type = error_type or _TYPE_BY_STATUS.get(status_code, "server_error")
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        return ErrorBody(error=ErrorDetail(message=self.message, type=self.error_type,
                                           code=self.status_code, param=self.param))

    def as_json(self) -> dict[str, Any]:
        return self.body().model_dump()


class BadRequest(OCRError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(400, message, param=param)


class PayloadTooLarge(OCRError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(413, message, param=param)


class Unavailable(OCRError):
    def __init__(self, message: str) -> None:
        super().__init__(503, message)


class Unauthorized(OCRError):
    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(401, message, headers={"WWW-Authenticate": "Bearer"})


class Saturated(OCRError):
    """Too much work in flight: come back later (429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(429, message, headers={"Retry-After": str(retry_after_s)})
