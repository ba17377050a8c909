"""The OCR service: one engine and the collaborators every route family builds on.

Holds no HTTP types, so the routes stay thin glue and the logic is testable alone. Each job
has its own collaborator: `models` (names and family), `inputs` (bytes to Documents, the
decoder processes and pixel budget), `recognizer` (whole answers), `streamer` (page events).
"""

from __future__ import annotations

import copy

from openai_ocr.engines.base import ChatEngine
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.service.intake import DocumentIntake
from openai_ocr.service.model_catalog import ModelCatalog
from openai_ocr.service.recognition import Recognizer
from openai_ocr.service.streaming import PageStreamer
from openai_ocr.service.usage import UsageRecorder
from openai_ocr.settings import Settings
from openai_ocr.storage.base import StateStore


class OCRService:
    """One per app (plus the batch runner's twin on its share of the engine)."""

    def __init__(self, engine: ChatEngine, settings: Settings, store: StateStore | None = None,
                 metrics: Metrics | None = None, fallback: ChatEngine | None = None,
                 words: ChatEngine | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or default_metrics()
        #: the engine of the recovery ladder's last step (`lite`), where installed
        self.fallback = fallback
        #: the lite engine that finds word boxes for another engine's answers, where installed
        self.words = words
        self.models = ModelCatalog(engine)
        self.inputs = DocumentIntake(settings, store)
        #: usage per API key: counted where requests end, written to the store in the background
        self.usage = UsageRecorder(store, self.metrics)
        self._bind(engine)

    def _bind(self, engine: ChatEngine) -> None:
        self.engine = engine
        self.recognizer = Recognizer(engine, self.settings, self.inputs, self.models, self.metrics,
                                     self.fallback, self.words)
        self.streamer = PageStreamer(self.recognizer)

    def with_engine(self, engine: ChatEngine) -> OCRService:
        """The same service on another engine (the batch runner's share of the gate), sharing
        the decoder processes, the server-wide pixel budget, the store and the model names."""
        twin = copy.copy(self)
        twin._bind(engine)
        return twin

    async def start(self) -> None:
        await self.inputs.start()
        self.usage.start()

    def close(self) -> None:
        self.inputs.close()
