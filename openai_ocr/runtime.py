"""What an app serves with, built and started in one place: the engine behind its gate, the OCR
service, the store with the Files API, and the batch runner.

Every mode builds one: `server.create_app` (gateway, lite, and the module-level app of
uvicorn/gunicorn) and the vLLM endpoint plugin (vllm mode, on vLLM's engine client). The
routes reach its parts through the dependencies of `openai_ocr.api.dependencies`.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from openai_ocr.engines.base import ChatEngine
from openai_ocr.engines.gated import gated
from openai_ocr.engines.on_use import StartedOnUse
from openai_ocr.metrics import Metrics
from openai_ocr.service.batches import BatchService
from openai_ocr.service.files import FileService
from openai_ocr.service.keys import KeyRing
from openai_ocr.service.quotas import Quotas
from openai_ocr.service.serving import OCRService
from openai_ocr.settings import Settings
from openai_ocr.storage.base import StateStore, make_store
from openai_ocr.telemetry import Telemetry

logger = logging.getLogger(__name__)

STATE_KEY = "openai_ocr"
"""The attribute of an app's `state` that holds its Runtime."""


class Runtime:
    """Built without I/O; `start` opens the store, starts the engine, the decoder processes
    and the batch runner (which resumes what a previous run left); `stop` undoes it.

    A damaged store does not stop the start: the server serves interactive OCR, `/ready`
    answers 503 naming the problem, and so do the Files and Batch routes (the store logs the
    file at fault); the batch runner waits until a restart finds the store sound.
    """

    def __init__(self, settings: Settings, engine: ChatEngine, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        #: the app's tracer provider (spans exported over OTLP), idle when tracing is off
        self.telemetry = Telemetry(settings.telemetry)
        engine.use_metrics(metrics)
        self.engine = gated(engine, settings, metrics)
        #: the recovery ladder's last step, where the lite extra is installed
        self.fallback = recovery_engine(settings, engine, metrics)
        #: the lite engine finding word boxes for another engine (the fallback's instance where
        #: there is one), where the lite extra is installed
        self.word_reader = self.fallback or lite_helper(engine, settings, metrics)
        #: uploads and batches; None (and no Files/Batch API) with `batches.enabled` off
        #: SQLite plus a folder, or PostgreSQL plus a folder or S3 (`[storage] database_url`)
        self.store: StateStore | None = make_store(settings.storage) if settings.batches.enabled else None
        self.service = OCRService(self.engine, settings, self.store, metrics, self.fallback, self.word_reader)
        #: the accepted keys (`auth.api_keys` and `auth.keys_file`, read here: a bad file stops
        #: the start) and their quotas
        self.keys = KeyRing.from_settings(settings)
        self.quotas = Quotas(self.keys, settings.quotas, self.service.usage)
        self.files: FileService | None = None
        self.batches: BatchService | None = None
        if self.store is not None:
            self.files = FileService(settings, self.store, self.service.inputs)
            self.batches = BatchService(self.service, self.store, metrics, quotas=self.quotas)

    def bind(self, state: Any) -> None:
        """Make this runtime the one an app's routes use."""
        setattr(state, STATE_KEY, self)

    async def start(self) -> None:
        self.telemetry.start()
        if self.store is not None:
            self.store.open()  # a damaged database sets `store.problem` (logged) and serves 503s
        await self.engine.start()
        await self.service.start()
        logger.info("serving %s with the %s engine", self.engine.model, self.engine.kind)
        if self.batches is not None:
            await self.batches.start()

    async def stop(self) -> None:
        self.service.close()
        if self.batches is not None:
            await self.batches.close()
        await self.service.usage.close()  # what is buffered goes to the store before it closes
        if self.store is not None:
            self.store.close()
        await self.engine.close()
        if self.word_reader is not None:  # the fallback too, where there is one
            await self.word_reader.close()
        self.telemetry.stop()  # the spans still queued are exported


def recovery_engine(settings: Settings, engine: ChatEngine, metrics: Metrics) -> ChatEngine | None:
    """The lite engine for the ladder's `lite` step, started when a page first needs it; None
    where the ladder has no such step, the lite engine serves already, or it is not installed."""
    if "lite" not in settings.ocr.recovery.ladder:
        return None
    return lite_helper(engine, settings, metrics)


def lite_helper(engine: ChatEngine, settings: Settings, metrics: Metrics) -> ChatEngine | None:
    """The lite engine beside another one, started when a page first needs it; None where
    the lite engine serves already or is not installed."""
    if engine.kind == "lite" or importlib.util.find_spec("rapidocr") is None:
        return None
    from openai_ocr.engines.lite.engine import LiteEngine

    return StartedOnUse(LiteEngine(settings, metrics))


def runtime_of(state: Any) -> Runtime | None:
    """The Runtime bound to an app's state (None until the app has one)."""
    runtime = getattr(state, STATE_KEY, None)
    return runtime if isinstance(runtime, Runtime) else None
