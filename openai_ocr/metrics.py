"""Prometheus metrics of the project's own routes and engine calls.

Each app holds one `Metrics`: its collectors on one registry. The default is prometheus_client's
global registry, so in vllm mode our series appear on vLLM's own `/metrics` next to vLLM's; an
app built with its own registry (tests, several apps in one process) counts apart.

Several worker processes (`openai-ocr serve --workers N`, `uvicorn ... --workers N`, gunicorn)
count together when `PROMETHEUS_MULTIPROC_DIR` names an empty folder they share (set before
they start: `serve` sets it itself): prometheus_client's multiprocess mode, in which each
process writes its samples there and `/metrics` sums every process's.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The project's collectors, registered on `registry` (names are the public interface)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("openai_ocr_requests_total", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("openai_ocr_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        # Across worker processes: requests in flight add up; the batch gauges are counts of
        # the shared store, the same in every process that publishes them.
        self.in_flight = Gauge("openai_ocr_engine_in_flight", "Engine requests running now",
                               registry=registry, multiprocess_mode="livesum")
        self.queued = Gauge("openai_ocr_engine_queue_length", "Engine requests waiting for a slot",
                            registry=registry, multiprocess_mode="livesum")
        self.pages = Counter("openai_ocr_pages_total", "Pages (engine requests) completed",
                             registry=registry)
        self.length_stops = Counter("openai_ocr_finish_length_total",
                                    "Engine answers cut by max_tokens (finish_reason=length)",
                                    registry=registry)
        self.loops = Counter("openai_ocr_repetition_loops_total",
                             "Pages whose first answer held a repetition loop", registry=registry)
        self.recovered = Counter("openai_ocr_loops_recovered_total",
                                 "Pages whose loop or cut answer a later try replaced, by the "
                                 "recovery step that did", ["step"], registry=registry)
        self.retries = Counter("openai_ocr_page_retries_total",
                               "Pages read again after a loop or a cut answer, by recovery step",
                               ["step"], registry=registry)
        self.rejected = Counter("openai_ocr_engine_rejected_total",
                                "Engine requests refused by backpressure", registry=registry)
        self.timeouts = Counter("openai_ocr_engine_timeouts_total",
                                "Engine requests over the request timeout", registry=registry)
        self.lite_lines = Counter("openai_ocr_lite_lines_total",
                                  "Text lines the lite engine read, by the reader whose answer was kept "
                                  "(ppocr in tesseract mode: lines Tesseract was unsure of)", ["reader"],
                                  registry=registry)
        self.batches = Gauge("openai_ocr_batches", "Batches in the store by status", ["status"],
                             registry=registry, multiprocess_mode="livemax")
        self.batch_lines = Counter("openai_ocr_batch_lines_total", "Batch lines finished, by result",
                                   ["result"], registry=registry)
        self.batch_queue = Gauge("openai_ocr_batch_queue_lines", "Batch lines waiting to run",
                                 registry=registry, multiprocess_mode="livemax")
        # Usage per API key: `key_id` is the key's short hash ("anonymous" without keys), never
        # the key; a bounded label (the configured keys). Counters sum across worker processes.
        self.key_requests = Counter("openai_ocr_key_requests_total", "OCR requests answered, by "
                                    "API key id and route (a batch line counts under /v1/batches)",
                                    ["key_id", "route"], registry=registry)
        self.key_pages = Counter("openai_ocr_key_pages_total", "Pages read, by API key id and route",
                                 ["key_id", "route"], registry=registry)
        self.key_images = Counter("openai_ocr_key_images_total", "Page images sent to the engine, by "
                                  "API key id and route", ["key_id", "route"], registry=registry)
        self.key_tokens = Counter("openai_ocr_key_tokens_total", "Tokens by API key id and kind "
                                  "(prompt, completion, image: the vision tokens, part of prompt)",
                                  ["key_id", "kind"], registry=registry)
        self.key_engine_seconds = Counter("openai_ocr_key_engine_seconds_total", "Seconds of engine "
                                          "calls, by API key id", ["key_id"], registry=registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample's value so far (0 before the first count): for benchmarks and tests."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def count_key_usage(self, key_id: str, route: str, requests: int, pages: int, images: int,
                        prompt_tokens: int, completion_tokens: int, image_tokens: int,
                        engine_seconds: float) -> None:
        """One request's usage in the per-key counters."""
        self.key_requests.labels(key_id, route).inc(requests)
        self.key_pages.labels(key_id, route).inc(pages)
        self.key_images.labels(key_id, route).inc(images)
        for kind, tokens in (("prompt", prompt_tokens), ("completion", completion_tokens),
                             ("image", image_tokens)):
            self.key_tokens.labels(key_id, kind).inc(tokens)
        self.key_engine_seconds.labels(key_id).inc(engine_seconds)

    def lite_line_count(self, reader: str) -> float:
        return self.value("openai_ocr_lite_lines_total", {"reader": reader})

    def exposition(self) -> bytes:
        """What `/metrics` serves: this registry's samples, or, for the process-wide registry
        in multiprocess mode, the samples of every worker process summed."""
        if self.registry is REGISTRY and os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
            return generate_latest(merged)
        return generate_latest(self.registry)


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The collectors on prometheus_client's global registry (made once per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics(REGISTRY)
        return _default


def metrics_for(registry: CollectorRegistry | None) -> Metrics:
    """`Metrics` on `registry`, or the process-wide default when None."""
    return default_metrics() if registry is None or registry is REGISTRY else Metrics(registry)
