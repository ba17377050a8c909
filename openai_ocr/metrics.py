"""Prometheus metrics of the project's own routes and engine calls.

Kept in prometheus_client's default registry, so in vllm mode they appear on vLLM's own
`/metrics` next to vLLM's metrics. With several uvicorn workers each process counts its own.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

REQUESTS = Counter("openai_ocr_requests_total", "HTTP requests by route, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("openai_ocr_request_duration_seconds", "HTTP request latency by route",
                    ["route"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
IN_FLIGHT = Gauge("openai_ocr_engine_in_flight", "Engine requests running now")
QUEUED = Gauge("openai_ocr_engine_queue_length", "Engine requests waiting for a slot")
PAGES = Counter("openai_ocr_pages_total", "Pages (engine requests) completed")
LENGTH_STOPS = Counter("openai_ocr_finish_length_total",
                       "Engine answers cut by max_tokens (finish_reason=length)")
REJECTED = Counter("openai_ocr_engine_rejected_total", "Engine requests refused by backpressure")
TIMEOUTS = Counter("openai_ocr_engine_timeouts_total", "Engine requests over the request timeout")
LITE_LINES = Counter("openai_ocr_lite_lines_total",
                     "Text lines the lite engine read, by the reader whose answer was kept "
                     "(ppocr in tesseract mode: lines Tesseract was unsure of)", ["reader"])


def lite_lines(reader: str) -> float:
    """The count so far for one reader (0 before the first line): for benchmarks and tests."""
    return REGISTRY.get_sample_value("openai_ocr_lite_lines_total", {"reader": reader}) or 0.0
BATCHES = Gauge("openai_ocr_batches", "Batches in the store by status", ["status"])
BATCH_LINES = Counter("openai_ocr_batch_lines_total", "Batch lines finished, by result",
                      ["result"])
BATCH_QUEUE = Gauge("openai_ocr_batch_queue_lines", "Batch lines waiting to run")
