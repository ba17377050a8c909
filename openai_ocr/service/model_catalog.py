"""Which model names this server answers to, and which DeepSeek-OCR family it serves."""

from __future__ import annotations

import logging
import time

from openai_ocr.engines.base import ChatEngine
from openai_ocr.errors import ModelNotFound, OCRError
from openai_ocr.ocr.resolution import Family, family_of

logger = logging.getLogger(__name__)

SERVED_MODELS_TTL_S = 30.0


class ModelCatalog:
    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine
        self._served: tuple[float, list[str]] = (0.0, [])

    async def served(self) -> list[str]:
        """The names `/v1/models` lists (cached briefly: an upstream answers it over HTTP)."""
        fetched, names = self._served
        if not names or time.monotonic() - fetched > SERVED_MODELS_TTL_S:
            names = [m.id for m in await self.engine.list_models()]
            self._served = (time.monotonic(), names)
        return names

    async def check(self, requested: str | None) -> None:
        """404 `model_not_found` for a model this server does not serve, as OpenAI and vLLM do.

        A request without a model gets the served one.
        """
        if requested is None or requested == self.engine.model:
            return
        try:
            served = await self.served()
        except OCRError:  # an upstream without a model list judges the name itself
            logger.warning("cannot list the served models; %r is passed on unchecked", requested)
            return
        if requested not in served:
            raise ModelNotFound(requested, served or [self.engine.model])

    @property
    def family(self) -> Family:
        """DeepSeek-OCR or -OCR-2: decides the accepted prompts and resolution modes."""
        return family_of(self.engine.model, self.engine.architectures)
