"""`/health` and `/ready`: whether the engine (or upstream) can serve now, and why not."""

from __future__ import annotations

import time

from openai_ocr import __version__
from openai_ocr.engines.base import ChatEngine
from openai_ocr.protocol.ocr import EngineReachability, HealthResponse


async def health_report(engine: ChatEngine) -> HealthResponse:
    status = await engine.status()
    return HealthResponse(
        status="healthy" if status.ready else "unavailable",
        model=engine.model, engine=engine.kind, model_loaded=status.ready,
        engine_status=EngineReachability(url=status.url, reachable=status.ready, detail=status.detail),
        version=__version__, timestamp=time.time())
