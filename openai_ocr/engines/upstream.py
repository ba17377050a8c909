"""Gateway engine: any OpenAI-compatible server over HTTP, through the openai SDK.

Used to put the OCR routes in front of remote vLLM nodes, or vllm-router over many. The SDK
sends through aiohttp (`openai[aiohttp]`), the cheapest HTTP client per request in Python.
Connection errors and 5xx answers are retried by the openai SDK (`upstream.max_retries`,
exponential backoff) before they become 502/504; a stream is retried only until its first
byte. Closing a stream closes the upstream connection, which makes vLLM abort the generation.
Without a configured model name the gateway serves the upstream's model when it lists
exactly one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
from openai import AsyncOpenAI, AsyncStream, DefaultAioHttpClient
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.engines.base import ChatEngine, EngineStatus
from openai_ocr.errors import EngineTimeout, OCRError, Unavailable, UpstreamError, error_for_status
from openai_ocr.settings import UpstreamSettings

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0
DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
"""Asked of the upstream until it says which model it serves."""
DISCOVERY_RETRY_S = 10.0
"""How often a request may ask the upstream for its model while it has not said."""


def json_bytes(body: dict[str, Any]) -> bytes:
    """The request body as JSON: orjson (a page image's base64 in microseconds, where the
    SDK's `json.dumps` takes most of a millisecond), `json` for what orjson cannot encode."""
    try:
        return orjson.dumps(body)
    except TypeError:  # e.g. an integer past 64 bits
        return json.dumps(body).encode()


def upstream_error(exc: openai.OpenAIError) -> OCRError:
    """Map an SDK error to the status our client should see.

    Client errors the upstream found in the request (400, 404, 413, 422) are passed on, since
    they describe the caller's input; everything else is the upstream's failure: 502, or 504
    for a time-out.
    """
    if isinstance(exc, openai.APITimeoutError):
        return EngineTimeout("the upstream server did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError(f"the upstream server is unreachable ({exc.__cause__ or exc})")
    if isinstance(exc, openai.APIStatusError):
        message = _upstream_message(exc)
        if exc.status_code in (400, 404, 413, 422):
            return error_for_status(exc.status_code, f"upstream rejected the request: {message}")
        return UpstreamError(f"upstream answered {exc.status_code}: {message}")
    return UpstreamError(f"upstream error: {exc}")


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
    return exc.message


class UpstreamEngine(ChatEngine):
    kind = "upstream"

    def __init__(self, config: UpstreamSettings, model: str | None = None) -> None:
        """`model`: the name to send upstream; empty or None: the upstream's only model."""
        if not config.url:
            raise ValueError("the upstream engine needs upstream.url")
        self.config = config
        self.requested_model = model or None
        self.model = model or DEFAULT_MODEL
        self._discovered = self.requested_model is not None
        self._last_discovery = 0.0
        self._client: AsyncOpenAI | None = None
        self._probe: AsyncOpenAI | None = None

    async def start(self) -> None:
        key = self.config.api_key.get_secret_value() or "EMPTY"
        timeout = httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s)
        # aiohttp under the SDK: httpx's own connection pool (httpcore on anyio) cost about
        # 3 ms of CPU per page at 32 requests in flight (docs/benchmarks.md)
        self._client = AsyncOpenAI(base_url=self.config.url, api_key=key, timeout=timeout,
                                   max_retries=self.config.max_retries,
                                   http_client=DefaultAioHttpClient(timeout=timeout))
        self._probe = AsyncOpenAI(base_url=self.config.url, api_key=key,
                                  timeout=HEALTH_TIMEOUT_S, max_retries=0)
        if not self._discovered:
            await self._discover()
        logger.info("gateway mode: forwarding to %s (model %s)", self.config.url, self.model)

    async def close(self) -> None:
        for client in (self._client, self._probe):
            if client is not None:
                await client.close()

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            raise Unavailable("the upstream client is not started")
        return self._client

    def _adopt(self, served: list[str]) -> None:
        """Serve the upstream's model when no name was configured and it lists exactly one."""
        if self.requested_model is None and len(served) == 1:
            if served[0] != self.model:
                logger.info("the upstream serves %s: serving it", served[0])
            self.model = served[0]
            self._discovered = True

    async def _discover(self) -> None:
        """Best effort: an upstream that is down now is asked again later."""
        self._last_discovery = time.monotonic()
        if self._probe is None:
            return
        try:
            page = await self._probe.models.list()
        except openai.OpenAIError as exc:
            logger.warning("could not ask the upstream which model it serves: %s",
                           upstream_error(exc).message)
            return
        self._adopt([m.id for m in page.data])

    async def _ensure_model(self) -> None:
        if not self._discovered and time.monotonic() - self._last_discovery > DISCOVERY_RETRY_S:
            await self._discover()

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        await self._ensure_model()
        body = {**body, "model": body.get("model") or self.model}
        try:
            return await self.client.post("/chat/completions", content=json_bytes({**body, "stream": False}),
                                          cast_to=ChatCompletion)
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from None

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        await self._ensure_model()
        body = {**body, "model": body.get("model") or self.model}
        try:
            chunks = await self.client.post(
                "/chat/completions", content=json_bytes({**body, "stream": True}), cast_to=ChatCompletion,
                stream=True, stream_cls=AsyncStream[ChatCompletionChunk])
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from None
        try:
            async for chunk in chunks:
                yield chunk
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream stream broke off ({exc})") from None
        finally:
            await chunks.close()

    async def list_models(self) -> list[Model]:
        try:
            page = await self.client.models.list()
        except openai.OpenAIError as exc:
            raise upstream_error(exc) from None
        return list(page.data)

    async def status(self) -> EngineStatus:
        if self._probe is None:
            return EngineStatus(ready=False, url=self.config.url, detail="not started")
        try:
            page = await self._probe.models.list()
        except openai.OpenAIError as exc:
            return EngineStatus(ready=False, url=self.config.url, detail=upstream_error(exc).message)
        served = [m.id for m in page.data]
        self._adopt(served)
        if self.model not in served:
            return EngineStatus(ready=False, url=self.config.url,
                                 detail=f"upstream does not serve {self.model!r}; it serves {served}")
        return EngineStatus(ready=True, url=self.config.url, detail="upstream serves the model")
