"""FastAPI dependencies shared by the project's routers: the runtime's parts, API keys, rate limit."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from starlette.datastructures import Headers

from openai_ocr.api.ratelimit import RateLimiter, retry_after
from openai_ocr.errors import TooManyRequests, Unauthorized, Unavailable
from openai_ocr.runtime import Runtime, runtime_of
from openai_ocr.service.batches import BatchService
from openai_ocr.service.files import FileService
from openai_ocr.service.serving import OCRService

LIMITER_KEY = "openai_ocr_rate_limiter"

# These dependencies are `async` although they await nothing: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request that cost more than their work.


async def get_runtime(request: Request) -> Runtime:
    """The Runtime bound to this app (by create_app, or by the vLLM plugin's init_state)."""
    runtime = runtime_of(request.app.state)
    if runtime is None:
        raise Unavailable("the OCR service is not ready yet")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_service(runtime: RuntimeDep) -> OCRService:
    return runtime.service


ServiceDep = Annotated[OCRService, Depends(get_service)]


def presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer ...` or `X-API-Key` (the route dependency and the
    keys-before-body middleware read it the same way)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def key_is_valid(given: str, keys: list[str]) -> bool:
    """Constant-time comparison against every key (no early exit on a match)."""
    match = False
    for key in keys:
        match |= hmac.compare_digest(given.encode(), key.encode())
    return match


def key_id(key: str) -> str:
    """A short, non-reversible id of a key, for logs and rate-limit buckets."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def authenticated_caller(headers: Headers, api_keys: list[SecretStr]) -> str:
    """Who presents these headers: the key's id, or "anonymous" with keys off; 401 unless a
    configured key is presented (the route dependency, the keys-before-body middleware and
    vllm mode's document chat all check keys here)."""
    if not api_keys:
        return "anonymous"
    given = presented_key(headers)
    if given is None or not key_is_valid(given, [k.get_secret_value() for k in api_keys]):
        raise Unauthorized()
    return key_id(given)


async def require_api_key(request: Request, runtime: RuntimeDep) -> None:
    """401 unless a configured key is presented; then the per-key rate limit (429).

    The key-checking middleware has usually identified the caller already (before the body
    was read); it is not checked twice."""
    caller = getattr(request.state, "caller", None) or authenticated_caller(
        request.headers, runtime.settings.auth.api_keys)
    request.state.caller = caller
    per_minute = runtime.settings.limits.rate_limit_per_minute
    if per_minute:
        limiter = getattr(request.app.state, LIMITER_KEY, None)
        if limiter is None or limiter.per_minute != per_minute:
            limiter = RateLimiter(per_minute)
            setattr(request.app.state, LIMITER_KEY, limiter)
        wait = limiter.acquire(caller)
        if wait:
            raise TooManyRequests(f"rate limit of {per_minute} requests per minute reached",
                            retry_after(wait))


ApiKeyDep = Depends(require_api_key)


NO_BATCHES = "files and batches are not enabled on this server (batches.enabled)"


async def get_files(runtime: RuntimeDep) -> FileService:
    """The Files API of this app (503 when batches, and so stored files, are off, or while
    the store is damaged: the answer names the problem)."""
    if runtime.files is None:
        raise Unavailable(NO_BATCHES)
    if runtime.store is not None and runtime.store.problem:
        raise Unavailable(runtime.store.problem)
    return runtime.files


async def get_batches(runtime: RuntimeDep) -> BatchService:
    """The Batch API of this app (503 when batches are off, or while the store is damaged)."""
    if runtime.batches is None:
        raise Unavailable(NO_BATCHES)
    if runtime.store is not None and runtime.store.problem:
        raise Unavailable(runtime.store.problem)
    return runtime.batches


async def caller_of(request: Request, _: None = ApiKeyDep) -> str:
    """Who owns what this request creates: the key id with API keys on, else "anonymous"."""
    return getattr(request.state, "caller", None) or "anonymous"


async def admin_caller(request: Request, runtime: RuntimeDep, _: None = ApiKeyDep) -> bool:
    """Whether the request presents one of `auth.admin_keys` (who sees every key's usage)."""
    admins = [k.get_secret_value() for k in runtime.settings.auth.admin_keys]
    given = presented_key(request.headers)
    return bool(admins) and given is not None and key_is_valid(given, admins)


FilesDep = Annotated[FileService, Depends(get_files)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
CallerDep = Annotated[str, Depends(caller_of)]
AdminDep = Annotated[bool, Depends(admin_caller)]
