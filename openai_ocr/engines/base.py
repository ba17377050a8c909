"""The one small interface every engine implements.

A engine takes an OpenAI chat-completion request body (a JSON-ready dict, vLLM's extra
fields such as `vllm_xargs` and `skip_special_tokens` included) and answers with the openai
SDK's own pydantic types, so the routes above it never care which engine runs.
Failures are raised as `OCRError`s that carry the HTTP status to answer.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

if TYPE_CHECKING:
    from openai_ocr.metrics import Metrics


class EngineStatus(BaseModel):
    """Whether the engine can serve now, and why not."""

    ready: bool
    url: str | None = None
    detail: str | None = None


class ChatEngine(abc.ABC):
    """An engine that answers OpenAI chat-completion requests."""

    #: short name shown in /health and logs: "upstream", "lite", "vllm"
    kind: str
    #: the model id answered in /v1/models and in every response
    model: str
    #: the served checkpoint's `architectures` (config.json) where the engine knows them;
    #: they decide the model family (DeepSeek-OCR or -OCR-2), else the model name does
    architectures: tuple[str, ...] = ()
    #: requests the engine itself works on at once, where it knows (the lite engine's
    #: workers); None = set by `limits.max_in_flight` alone (vLLM and upstreams batch inside)
    capacity: int | None = None

    async def start(self) -> None:
        """Acquire resources (clients, pools, models); called once before serving."""
        return None  # optional hook: most engines need nothing

    async def close(self) -> None:
        """Release what `start` acquired."""
        return None  # optional hook

    def use_metrics(self, metrics: Metrics) -> None:
        """Count into the app's metrics (called before `start`)."""
        return None  # optional hook: only engines that count something of their own need it

    @abc.abstractmethod
    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        """Answer a non-streaming request."""

    @abc.abstractmethod
    def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        """Answer a streaming request chunk by chunk, as the engine produces them.

        Closing the iterator early (client gone) must abort the engine's work.
        """

    @abc.abstractmethod
    async def list_models(self) -> list[Model]:
        """The models this engine serves."""

    @abc.abstractmethod
    async def status(self) -> EngineStatus:
        """Cheap readiness check for /health."""
