"""FastAPI dependencies shared by the project's routers: the runtime's parts, API keys, rate limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers

from openai_ocr.api.ratelimit import RateLimiter, retry_after
from openai_ocr.errors import TooManyRequests, Unauthorized, Unavailable
from openai_ocr.runtime import Runtime, runtime_of
from openai_ocr.service.batches import BatchService
from openai_ocr.service.files import FileService
from openai_ocr.service.keys import KeyRing
from openai_ocr.service.keys import key_id as key_id
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


def authenticated_caller(headers: Headers, keys: KeyRing) -> str:
    """Who presents these headers: the key's id (first 12 hex of its SHA-256, whether it is
    named in the keys file or not), or "anonymous" with keys off; 401 unless an accepted key
    is presented (the route dependency, the keys-before-body middleware and vllm mode's
    document chat all check keys here)."""
    if not keys.enabled:
        return "anonymous"
    given = presented_key(headers)
    found = keys.find(given) if given is not None else None
    if found is None:
        raise Unauthorized()
    return found.id


async def require_api_key(request: Request, runtime: RuntimeDep) -> None:
    """401 unless a configured key is presented; then the per-key rate limit (429).

    The key-checking middleware has usually identified the caller already (before the body
    was read); it is not checked twice."""
    caller = getattr(request.state, "caller", None) or authenticated_caller(
        request.headers, runtime.keys)
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
    """Whether the request presents an admin key (`auth.admin_keys`, or `admin = true` in the
    keys file): who sees every key's usage."""
    key = runtime.keys.by_id(getattr(request.state, "caller", None))
    return key is not None and key.admin


async def within_quota(request: Request, runtime: RuntimeDep,
                       _: None = ApiKeyDep) -> AsyncIterator[None]:
    """The caller's quotas (`openai_ocr.service.quotas`), before the request reads anything:
    429 with `Retry-After` when a pages quota of the day or month is used up, or when the key
    has `max_concurrent` requests in flight; the request holds its slot until its answer
    (a stream included) has been sent."""
    async with runtime.quotas.admitted(getattr(request.state, "caller", None) or "anonymous"):
        yield


QuotaDep = Depends(within_quota)
"""On the OCR routes (not on the Files, Batch, usage or monitoring routes)."""


FilesDep = Annotated[FileService, Depends(get_files)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
CallerDep = Annotated[str, Depends(caller_of)]
AdminDep = Annotated[bool, Depends(admin_caller)]
