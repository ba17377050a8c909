"""In-process vLLM engine: the compat routes call vLLM's own chat handler, no HTTP hop.

Built by the endpoint plugin (`openai_ocr.vllm_plugin.plugin`) inside vLLM's API server, from the app
state vLLM fills in `init_app_state`: `openai_serving_chat` (an `OpenAIServingChat`),
`openai_serving_models` and `engine_client`. A request body becomes vLLM's own
`ChatCompletionRequest`, so vLLM validates it, renders the chat template, and schedules it
exactly as for its `/v1/chat/completions` route.

vLLM is imported lazily (inside methods), so this module imports without vLLM installed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from types import SimpleNamespace
from typing import Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from openai_ocr.engines.base import ChatEngine, EngineStatus
from openai_ocr.errors import BadRequest, InternalError, OCRError, Unavailable, error_for_status, validation_message
from openai_ocr.telemetry import with_traceparent

logger = logging.getLogger(__name__)

_DONE = "[DONE]"


def _error_from_vllm(error: Any) -> OCRError:
    """An `ErrorResponse` (or its dict) -> OCRError with vLLM's status and message."""
    if hasattr(error, "model_dump"):
        error = error.model_dump()
    info = error.get("error", error) if isinstance(error, dict) else {}
    status = info.get("code") if isinstance(info, dict) else None
    message = info.get("message") if isinstance(info, dict) else None
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    param = info.get("param") if isinstance(info, dict) else None
    return error_for_status(status, str(message or "the vLLM engine reported an error"),
                            param=param if isinstance(param, str) else None)


def _engine_is_dead(exc: Exception) -> bool:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # pragma: no cover - other vLLM layouts
        return False
    return isinstance(exc, EngineDeadError)


def _error_from_exception(exc: Exception) -> OCRError:
    """Map an exception raised by vLLM's handler the way vLLM's own exception handlers do."""
    if _engine_is_dead(exc):
        return Unavailable("the vLLM engine is not running")
    try:
        from vllm.entrypoints.serve.exception_handling.error_response import (
            create_error_response,
        )
    except ImportError:  # pragma: no cover - other vLLM layouts
        return InternalError(f"vLLM error: {type(exc).__name__}: {exc}")
    return _error_from_vllm(create_error_response(exc))


class VLLMEngine(ChatEngine):
    """Answers chat completions with the vLLM server this code runs inside."""

    kind = "vllm"

    def __init__(self, serving_chat: Any, serving_models: Any = None,
                 engine_client: Any = None, model: str | None = None) -> None:
        if serving_chat is None:
            raise ValueError("vLLM's chat handler is missing: the model does not serve "
                             "chat completions (is it a generative model?)")
        self.serving_chat = serving_chat
        self.serving_models = serving_models if serving_models is not None else getattr(
            serving_chat, "models", None)
        self.engine_client = engine_client if engine_client is not None else getattr(
            serving_chat, "engine_client", None)
        self.model = model or self._served_names()[0]
        hf_config = getattr(getattr(self.engine_client, "model_config", None), "hf_config", None)
        self.architectures = tuple(getattr(hf_config, "architectures", None) or ())

    @classmethod
    def from_app_state(cls, state: Any, engine_client: Any = None) -> VLLMEngine:
        """From vLLM's FastAPI `app.state` (after vLLM's `init_app_state`)."""
        return cls(getattr(state, "openai_serving_chat", None),
                   getattr(state, "openai_serving_models", None),
                   engine_client if engine_client is not None
                   else getattr(state, "engine_client", None))

    def _served_names(self) -> list[str]:
        paths = getattr(self.serving_models, "base_model_paths", None) or []
        names = [p.name for p in paths]
        if not names:
            raise ValueError("vLLM serves no base model")
        return names

    # -- requests -----------------------------------------------------------------------
    def _request(self, body: dict[str, Any], *, stream: bool) -> Any:
        from vllm.entrypoints.openai.chat_completion.protocol import (
            ChatCompletionRequest,
        )

        payload = {**body, "stream": stream}
        payload.setdefault("model", self.model)
        if stream:
            # vLLM takes the engine request id from this field ("chatcmpl-<request_id>"), so
            # we know what to abort when the consumer goes away.
            payload.setdefault("request_id", uuid.uuid4().hex)
        try:
            return ChatCompletionRequest(**payload)
        except ValidationError as exc:
            raise BadRequest("invalid chat completion request: "
                           + validation_message(exc.errors())) from None

    async def _call(self, request: Any) -> Any:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        try:
            result = await self.serving_chat.create_chat_completion(request, _trace_carrier())
        except OCRError:
            raise
        except Exception as exc:
            logger.debug("vLLM chat handler raised", exc_info=True)
            raise _error_from_exception(exc) from None
        if isinstance(result, ErrorResponse):
            raise _error_from_vllm(result)
        return result

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        request = self._request(body, stream=False)
        result = await self._call(request)
        if isinstance(result, AsyncGenerator):  # pragma: no cover - defensive
            await result.aclose()
            raise InternalError("vLLM answered a non-streaming request with a stream")
        return ChatCompletion.model_validate(result.model_dump())

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        request = self._request(body, stream=True)
        generator = await self._call(request)
        if not isinstance(generator, AsyncGenerator):  # pragma: no cover - defensive
            raise InternalError("vLLM answered a streaming request without a stream")
        finished = False
        try:
            async for event in generator:
                for data in _sse_data(event):
                    if data == _DONE:
                        finished = True
                        return
                    payload = json.loads(data)
                    if isinstance(payload, dict) and "error" in payload:
                        finished = True
                        raise _error_from_vllm(payload)
                    yield ChatCompletionChunk.model_validate(payload)
            finished = True
        finally:
            # Closing vLLM's generator closes the engine's output stream, whose clean-up
            # aborts the request (AsyncLLM.generate catches GeneratorExit); the explicit
            # abort makes that immediate even before the first token arrived.
            await generator.aclose()
            if not finished:
                await self._abort(f"chatcmpl-{request.request_id}")

    async def _abort(self, request_id: str) -> None:
        if self.engine_client is None:
            return
        try:
            await self.engine_client.abort(request_id)
            logger.info("aborted %s: the client went away", request_id)
        except Exception:  # the request may be gone already
            logger.debug("abort of %s failed", request_id, exc_info=True)

    # -- models and health --------------------------------------------------------------
    async def list_models(self) -> list[Model]:
        if self.serving_models is not None:
            listing = await self.serving_models.show_available_models()
            return [Model.model_validate(card.model_dump()) for card in listing.data]
        return [Model(id=self.model, object="model", created=0, owned_by="vllm")]

    async def status(self) -> EngineStatus:
        client = self.engine_client
        if client is None:
            return EngineStatus(ready=False, detail="no vLLM engine client")
        if getattr(client, "errored", False):
            return EngineStatus(ready=False, detail="the vLLM engine has died")
        try:
            await client.check_health()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return EngineStatus(ready=False, detail=f"vLLM engine unhealthy: {exc}")
        return EngineStatus(ready=True, detail=f"vLLM in-process engine serves {self.model}")


class _TraceCarrier:
    """What vLLM's chat handler reads of an HTTP request, holding only the trace context of
    the current span (our `engine call`): vLLM's own `llm_request` span, where vLLM exports
    traces (`--otlp-traces-endpoint`), becomes its child. No request id, priority or
    data-parallel rank header: those stay vLLM's defaults, as without a request."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.state = SimpleNamespace()  # vLLM leaves its request metadata there


def _trace_carrier() -> _TraceCarrier | None:
    """The carrier inside a traced request; None otherwise (vLLM's handler accepts no
    request at all)."""
    headers = with_traceparent({})
    return _TraceCarrier(headers) if headers else None


def _sse_data(event: str) -> list[str]:
    """The `data:` payloads of one or more SSE events as vLLM's handler yields them."""
    out = []
    for line in event.splitlines():
        if line.startswith("data:"):
            out.append(line[5:].strip())
    return out
