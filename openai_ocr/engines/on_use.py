"""An engine started when a request first needs it.

The recovery ladder's last step is the embedded lite engine, even where another engine
serves (vLLM, an upstream): its models cost memory and a start-up only once a page's
answers have failed every other try.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.engines.base import ChatEngine, EngineStatus


class StartedOnUse(ChatEngine):
    def __init__(self, inner: ChatEngine) -> None:
        self.inner = inner
        self.kind = inner.kind
        self._started = False
        self._lock = asyncio.Lock()

    @property
    def model(self) -> str:  # type: ignore[override]  # follows the inner engine
        return self.inner.model

    async def _start(self) -> None:
        async with self._lock:
            if not self._started:
                await self.inner.start()
                self._started = True

    async def close(self) -> None:
        if self._started:
            await self.inner.close()
            self._started = False

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        await self._start()
        return await self.inner.complete(body)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        await self._start()
        chunks = self.inner.stream(body)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # every engine's stream() is an async generator

    async def list_models(self) -> list[Model]:
        return await self.inner.list_models()

    async def status(self) -> EngineStatus:
        if not self._started:
            return EngineStatus(ready=True, detail="starts when first needed")
        return await self.inner.status()
