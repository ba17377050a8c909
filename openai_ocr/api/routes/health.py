"""Open monitoring routes (no API key: probes and scrapers work without credentials)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from openai_ocr.api.dependencies import RuntimeDep
from openai_ocr.api.http_errors import OCRRoute
from openai_ocr.protocol.ocr import HealthResponse, StorageHealth
from openai_ocr.runtime import Runtime
from openai_ocr.service.health import health_report

router = APIRouter(route_class=OCRRoute, tags=["Monitoring"])
metrics_router = APIRouter(tags=["Monitoring"])
"""Our own app only: in vllm mode vLLM serves /metrics (our series included)."""


@router.get("/health", response_model=HealthResponse,
                   summary="Server status, engine/upstream reachability and model name",
                   responses={503: {"model": HealthResponse, "description": "The model is not ready"}})
async def health(runtime: RuntimeDep) -> JSONResponse:
    """200 while the engine serves (the store's state is reported, not judged: interactive
    OCR works without it)."""
    report = await _report(runtime)
    return JSONResponse(report.model_dump(), status_code=200 if report.model_loaded else 503)


@router.get("/ready", response_model=HealthResponse,
                   summary="Readiness probe: 200 when requests can be served, else 503",
                   responses={503: {"model": HealthResponse, "description": "Not ready: the "
                                    "engine, or the store of files and batches (`storage.detail`)"}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    report = await _report(runtime)
    ok = report.model_loaded and (report.storage is None or report.storage.ok)
    if not ok:
        report.status = "unavailable"
    return JSONResponse(report.model_dump(), status_code=200 if ok else 503)


async def _report(runtime: Runtime) -> HealthResponse:
    report = await health_report(runtime.service.engine)
    if runtime.store is not None:
        problem = runtime.store.problem
        report.storage = StorageHealth(ok=problem is None, detail=problem)
    return report


@router.get("/live", summary="Liveness probe: 200 while the process serves HTTP")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@metrics_router.get("/metrics", summary="Prometheus metrics", include_in_schema=True,
                    response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    """This app's registry (the global one unless the app was built with its own; every worker
    process's samples in multiprocess mode)."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
