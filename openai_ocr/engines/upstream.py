"""Gateway engine: any OpenAI-compatible server over HTTP, through one aiohttp session.

Used to put the OCR routes in front of remote vLLM nodes, or vllm-router over many. The calls
go straight through aiohttp: the openai SDK over httpx cost about 1 ms of CPU more per page
(docs/benchmarks.md, "Gateway cost per page"), and its aiohttp transport reported a node
that closed the connection as a time-out. Failed connections and 5xx answers are retried
(`upstream.max_retries`, exponential backoff with jitter, tenacity) before they become
502/504; a stream is retried only until its first byte, a read time-out never (the node may
still be working on the page). Closing a stream closes the upstream connection, which makes
vLLM abort the generation. Inside a traced request each HTTP try is a client span whose W3C
`traceparent` goes with the call, so a vLLM node exporting its own traces joins the request's
trace. Without a configured model name the gateway serves the
upstream's model when it lists exactly one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import orjson
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from openai_ocr import telemetry
from openai_ocr.engines.base import ChatEngine, EngineStatus
from openai_ocr.errors import EngineTimeout, OCRError, Unavailable, UpstreamError, error_for_status, excerpt
from openai_ocr.settings import UpstreamSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_TIMEOUT_S = 5.0
DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
"""Asked of the upstream until it says which model it serves."""
DISCOVERY_RETRY_S = 10.0
"""How often a request may ask the upstream for its model while it has not said."""
UPSTREAM_MESSAGE_CHARS = 300
"""The most of an upstream's error message passed on (it may repeat the request)."""


def json_bytes(body: dict[str, Any]) -> bytes:
    """The request body as JSON: orjson (a page image's base64 in microseconds, where
    `json.dumps` takes most of a millisecond), `json` for what orjson cannot encode."""
    try:
        return orjson.dumps(body)
    except TypeError:  # e.g. an integer past 64 bits
        return json.dumps(body).encode()


def status_error(status: int, body: object, fallback: str) -> OCRError:
    """The error for an upstream's non-2xx answer.

    Client errors the upstream found in the request (400, 404, 413, 422) are passed on, since
    they describe the caller's input; everything else is the upstream's failure: 502.
    """
    message = excerpt(_message_of(body) or fallback, UPSTREAM_MESSAGE_CHARS, quote=False)
    if status in (400, 404, 413, 422):
        return error_for_status(status, f"upstream rejected the request: {message}")
    return UpstreamError(f"upstream answered {status}: {message}")


def _message_of(body: object) -> str | None:
    """The message of an OpenAI/vLLM error body (`{"error": {"message"}}`) or FastAPI's
    `{"detail": "..."}`."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
    return None


def retried_status(status: int) -> bool:
    """The answers worth another try (the openai SDK's choice): time-out, conflict, rate
    limit and server errors."""
    return status in (408, 409, 429) or status >= 500


class UpstreamAnswer(Exception):
    """A non-2xx answer of the upstream: tried again where `retried_status`, then mapped by
    `status_error`."""

    def __init__(self, status: int, data: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.data = data


def _worth_retrying(exc: BaseException) -> bool:
    # a read time-out is not retried: the node took the page and may still be working on it
    return (isinstance(exc, UpstreamAnswer) and retried_status(exc.status)) or (
        isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, aiohttp.SocketTimeoutError))


def _json_or_none(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


CallFailure = UpstreamAnswer | aiohttp.ClientError | TimeoutError
"""What a call to the upstream raises: a non-2xx answer, a connection or payload error, a
time-out."""


def answer_error(exc: CallFailure) -> OCRError:
    """Map what the last try of a call raised to the status our client should see."""
    if isinstance(exc, UpstreamAnswer):
        return status_error(exc.status, _json_or_none(exc.data),
                            exc.data[:300].decode("utf-8", "replace") or "no message")
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return EngineTimeout("the upstream server did not answer in time")
    return UpstreamError(f"the upstream server is unreachable ({exc})")


async def body_of(answer: aiohttp.ClientResponse) -> bytes:
    """The answer's whole body; UpstreamAnswer for a non-2xx one."""
    data = await answer.read()
    if answer.status >= 300:
        raise UpstreamAnswer(answer.status, data)
    return data


async def sse_chunks(content: aiohttp.StreamReader) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of an OpenAI SSE stream (`data: {...}` lines up to `data: [DONE]`); an
    `error` event (vLLM's way to fail a started stream) raises."""
    async for line in content:
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        event = _json_or_none(data)
        if not isinstance(event, dict):
            raise UpstreamError("the upstream sent a stream event that is not JSON")
        if event.get("error") is not None:
            raise UpstreamError(f"the upstream failed mid-stream: {_message_of(event) or event['error']}")
        yield ChatCompletionChunk.construct(**event)


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
        self._session: aiohttp.ClientSession | None = None
        base = config.url.rstrip("/")
        self._chat_url, self._models_url = f"{base}/chat/completions", f"{base}/models"
        key = config.api_key.get_secret_value()
        self._headers = {"content-type": "application/json",
                         **({"authorization": f"Bearer {key}"} if key else {})}

    async def start(self) -> None:
        # no connection limit of its own: the engine gate bounds the calls in flight; SSE
        # lines up to 1 MiB (aiohttp's default buffer refuses lines past 64 KiB)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), read_bufsize=2**20,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_s,
                                          sock_read=self.config.timeout_s))
        if not self._discovered:
            await self._discover()
        logger.info("gateway mode: forwarding to %s (model %s)", self.config.url, self.model)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise Unavailable("the upstream client is not started")
        return self._session

    async def _tried(self, attempt: Callable[..., Awaitable[T]], *args: Any, tries: int | None = None) -> T:
        """`attempt(*args)` until it succeeds or the tries run out (`max_retries + 1` unless
        given); what the last try raised, mapped to the status our client should see.
        (`attempt` must be a coroutine function, not a lambda: tenacity awaits only those.)"""
        retrying = AsyncRetrying(stop=stop_after_attempt(tries or self.config.max_retries + 1),
                                 wait=wait_random_exponential(multiplier=0.5, max=8.0),
                                 retry=retry_if_exception(_worth_retrying), reraise=True)
        try:
            return await retrying(attempt, *args)
        except (UpstreamAnswer, aiohttp.ClientError, TimeoutError) as exc:
            raise answer_error(exc) from None

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
        try:
            served = await self._models(tries=1, timeout_s=HEALTH_TIMEOUT_S)
        except OCRError as exc:
            logger.warning("could not ask the upstream which model it serves: %s", exc.message)
            return
        self._adopt([m.id for m in served])

    async def _ensure_model(self) -> None:
        if not self._discovered and time.monotonic() - self._last_discovery > DISCOVERY_RETRY_S:
            await self._discover()

    def _payload(self, body: dict[str, Any], *, stream: bool) -> bytes:
        return json_bytes({**body, "model": body.get("model") or self.model, "stream": stream})

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        await self._ensure_model()
        data = await self._tried(self._post_chat, self._payload(body, stream=False))
        completion = _json_or_none(data)
        if not isinstance(completion, dict):
            raise UpstreamError("the upstream's answer is not a JSON chat completion")
        # as the openai SDK builds it: not validated, so fields vLLM adds or omits pass as they are
        return ChatCompletion.construct(**completion)

    async def _post_chat(self, payload: bytes) -> bytes:
        with self._client_span() as call:
            async with self.session.post(self._chat_url, data=payload,
                                         headers=telemetry.with_traceparent(self._headers)) as answer:
                call.set_attribute("http.response.status_code", answer.status)
                return await body_of(answer)

    def _client_span(self) -> Any:
        """The span of one HTTP try of a chat call (a no-op outside a traced request)."""
        where = urlsplit(self._chat_url)  # no credentials a URL may hold
        return telemetry.span("POST /chat/completions", {
            "http.request.method": "POST", "server.address": where.hostname, "server.port": where.port,
            "url.path": where.path}, kind=SpanKind.CLIENT)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        await self._ensure_model()
        answer = await self._tried(self._open_stream, self._payload(body, stream=True))
        try:
            async for chunk in sse_chunks(answer.content):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = answer_error(exc)
            if isinstance(error, EngineTimeout):
                raise error from None
            raise UpstreamError(f"the upstream stream broke off ({exc})") from None
        finally:
            if answer.content.at_eof():
                answer.release()  # the whole answer was read: the connection is reused
            else:
                answer.close()  # left early: closing the connection makes vLLM abort

    async def _open_stream(self, payload: bytes) -> aiohttp.ClientResponse:
        with self._client_span() as call:  # until the answer's head: the stream is the caller's
            answer = await self.session.post(self._chat_url, data=payload,
                                              headers=telemetry.with_traceparent(self._headers))
            call.set_attribute("http.response.status_code", answer.status)
        if answer.status >= 300:
            async with answer:  # read whole and released
                await body_of(answer)
        return answer

    async def _models(self, tries: int | None = None, timeout_s: float | None = None) -> list[Model]:
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else self.session.timeout

        async def fetch() -> bytes:
            async with self.session.get(self._models_url, headers=self._headers, timeout=timeout) as answer:
                return await body_of(answer)

        data = await self._tried(fetch, tries=tries)
        listing = _json_or_none(data)
        entries = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(entries, list):
            raise UpstreamError("the upstream's model list is not an OpenAI model list")
        return [Model.construct(**entry) for entry in entries if isinstance(entry, dict) and "id" in entry]

    async def list_models(self) -> list[Model]:
        return await self._models()

    async def status(self) -> EngineStatus:
        if self._session is None:
            return EngineStatus(ready=False, url=self.config.url, detail="not started")
        try:
            served = [m.id for m in await self._models(tries=1, timeout_s=HEALTH_TIMEOUT_S)]
        except OCRError as exc:
            return EngineStatus(ready=False, url=self.config.url, detail=exc.message)
        self._adopt(served)
        if self.model not in served:
            return EngineStatus(ready=False, url=self.config.url,
                                 detail=f"upstream does not serve {self.model!r}; it serves {served}")
        return EngineStatus(ready=True, url=self.config.url, detail="upstream serves the model")
