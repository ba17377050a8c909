"""What an app serves with, built and started in one place: the engine behind its gate, the OCR
service, the store with the Files API, and the batch runner.

Every mode builds one: `server.create_app` (gateway, lite, and the module-level app of
uvicorn/gunicorn) and the vLLM endpoint plugin (vllm mode, on vLLM's engine client). The
routes reach its parts through the dependencies of `openai_ocr.api.dependencies`.
"""

from __future__ import annotations

import logging
from typing import Any

from openai_ocr.engines.base import ChatEngine
from openai_ocr.engines.gated import gated
from openai_ocr.metrics import Metrics
from openai_ocr.service.batches import BatchService
from openai_ocr.service.files import FileService
from openai_ocr.service.serving import OCRService
from openai_ocr.settings import Settings
from openai_ocr.storage.store import Store

logger = logging.getLogger(__name__)

STATE_KEY = "openai_ocr"
"""The attribute of an app's `state` that holds its Runtime."""


class Runtime:
    """Built without I/O; `start` opens the store, starts the engine, the decoder processes
    and the batch runner (which resumes what a previous run left); `stop` undoes it."""

    def __init__(self, settings: Settings, engine: ChatEngine, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        engine.use_metrics(metrics)
        self.engine = gated(engine, settings, metrics)
        #: uploads and batches; None (and no Files/Batch API) with `batches.enabled` off
        self.store = Store(settings.storage) if settings.batches.enabled else None
        self.service = OCRService(self.engine, settings, self.store)
        self.files: FileService | None = None
        self.batches: BatchService | None = None
        if self.store is not None:
            self.files = FileService(settings, self.store, self.service.inputs)
            self.batches = BatchService(self.service, self.store, metrics)

    def bind(self, state: Any) -> None:
        """Make this runtime the one an app's routes use."""
        setattr(state, STATE_KEY, self)

    async def start(self) -> None:
        if self.store is not None:
            self.store.open()
        await self.engine.start()
        await self.service.start()
        logger.info("serving %s with the %s engine", self.engine.model, self.engine.kind)
        if self.batches is not None:
            await self.batches.start()

    async def stop(self) -> None:
        self.service.close()
        if self.batches is not None:
            await self.batches.close()
        if self.store is not None:
            self.store.close()
        await self.engine.close()


def runtime_of(state: Any) -> Runtime | None:
    """The Runtime bound to an app's state (None until the app has one)."""
    runtime = getattr(state, STATE_KEY, None)
    return runtime if isinstance(runtime, Runtime) else None
