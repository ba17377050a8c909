#!/usr/bin/env python
"""The Batch API against the interactive routes, in one run: pages/s, and interactive latency
while a batch runs.

1. Gateway: `openai-ocr serve --upstream-url` (a child process) in front of a fake engine in
   this process that works on `--capacity` requests at once, `--delay` s each (a GPU's
   ceiling). The same `--pages` pages go through `/ocr` (as many concurrent clients as the
   gate has slots) and as one batch of `/ocr` lines; pages/s of each.
2. Fairness: interactive `/ocr` p50/p95 latency alone, then while a large batch runs, with
   `batches.engine_share` = `--share` and, as the baseline, 1.0 (no reserved slots).
3. Lite: `openai-ocr serve --engine lite` on `--lite-pages` real PDF pages, interactive and
   as a batch (skipped with --lite-pages 0).

Only 127.0.0.1 is contacted; every server stops at the end.

    python scripts/bench_batches.py [--pages 1000] [--lite-pages 50] [--share 0.5]

`--pages 0` runs only the lite part, `--lite-pages 0` only the gateway parts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.helpers import (  # noqa: E402
    b64,
    free_port,
    png_bytes,
    running_server,
    wait_for_process_server,  # noqa: E402
)

SYSTEM_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
"""Real pages for the lite part (Debian's shared-mime-info package; what bench_lite.py reads)."""


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "openai_ocr.cli.main", "serve", "--host",
                                 "127.0.0.1", "--port", str(port), *args], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, proc, timeout_s=600, output=log.read_text)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def interactive(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[float]:
    """Each body POSTed to /ocr, `concurrency` at a time; the latencies (all must succeed)."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(body: dict[str, Any]) -> float:
            async with gate:
                started = time.perf_counter()
                answer = await client.post(f"{url}/ocr", json=body)
                answer.raise_for_status()
                return time.perf_counter() - started

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def submit_batch(url: str, bodies: list[dict[str, Any]]) -> str:
    lines = "".join(json.dumps({"custom_id": f"p{i}", "method": "POST", "url": "/ocr", "body": b})
                    + "\n" for i, b in enumerate(bodies))
    upload = httpx.post(f"{url}/v1/files", data={"purpose": "batch"}, timeout=600,
                        files={"file": ("in.jsonl", lines.encode(), "application/jsonl")})
    upload.raise_for_status()
    batch = httpx.post(f"{url}/v1/batches", timeout=600, json={
        "input_file_id": upload.json()["id"], "endpoint": "/ocr", "completion_window": "24h"})
    batch.raise_for_status()
    return str(batch.json()["id"])


POLLER = httpx.Client(timeout=60)
"""One client for the status polls: `httpx.get` builds a client (and its SSL context) per
call, about 40 ms of CPU, which at 20 polls a second took most of a core from the server
being measured."""


POLL_S = 0.25
"""How often the benchmark asks for the batch's status: finer than the CLI's 1 s, so the time
to `completed` is measured within a quarter of a second, without the polls themselves
taking the server's time (20 a second took 0.1-0.2 s of CPU a page from the lite engine)."""


def batch_state(url: str, batch_id: str) -> dict[str, Any]:
    return POLLER.get(f"{url}/v1/batches/{batch_id}").json()


def run_batch(url: str, bodies: list[dict[str, Any]]) -> float:
    """Seconds from upload to `completed` (every line must succeed)."""
    started = time.perf_counter()
    batch_id = submit_batch(url, bodies)
    while (state := batch_state(url, batch_id))["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    counts = state["request_counts"]
    assert state["status"] == "completed" and counts["completed"] == len(bodies), state
    return elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def latency_row(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {pct(values, 50) * 1000:.0f} | {pct(values, 95) * 1000:.0f} |"


def gateway_part(opts: argparse.Namespace, work: Path) -> None:
    fake = FakeUpstream()
    fake.delay_s, fake.capacity = opts.delay, opts.capacity
    pages = [{"image_base64": b64(png_bytes(text=f"page {i}")), "mode": "free_ocr"}
             for i in range(opts.pages)]
    with running_server(fake.app) as upstream:
        def gateway(share: float) -> Any:
            return server(["--upstream-url", f"{upstream}/v1"], {
                "OPENAI_OCR_STORAGE__DIR": str(work / f"store-{share}"),
                "OPENAI_OCR_LIMITS__MAX_IN_FLIGHT": str(opts.slots),
                "OPENAI_OCR_BATCHES__ENGINE_SHARE": str(share),
                "OPENAI_OCR_BATCHES__POLL_INTERVAL_S": "0.05"}, work / "gateway.log")

        with gateway(opts.share) as url:
            asyncio.run(interactive(url, pages[:20], opts.slots))  # warm-up
            lanes = max(1, int(opts.slots * opts.share))
            live: dict[int, float] = {}
            for clients in sorted({lanes, opts.slots}):
                started = time.perf_counter()
                asyncio.run(interactive(url, pages, clients))
                live[clients] = time.perf_counter() - started
            batched = run_batch(url, pages)
        print(f"\n### Gateway, fake engine ({opts.capacity} at once, {opts.delay * 1000:.0f} ms each; "
              f"ceiling {opts.capacity / opts.delay:.0f} pages/s), gate of {opts.slots} slots, "
              f"batch share {opts.share}\n")
        print("| path | pages | seconds | pages/s |\n|---|---|---|---|")
        for clients, seconds in live.items():
            print(f"| interactive /ocr, {clients} concurrent clients | {opts.pages} | {seconds:.1f} | "
                  f"{opts.pages / seconds:.1f} |")
        print(f"| one batch of /ocr lines, {lanes} engine slots (upload included) | {opts.pages} | "
              f"{batched:.1f} | {opts.pages / batched:.1f} |")
        print(f"\nbatch / interactive pages/s at the same concurrency ({lanes}): "
              f"{live[lanes] / batched:.2f}; against {opts.slots} clients: {live[opts.slots] / batched:.2f}")

        rows = []
        for share in (opts.share, 1.0):
            with gateway(share) as url:
                probe = pages[: opts.probes]
                alone = asyncio.run(interactive(url, probe, opts.probe_concurrency))
                batch_id = submit_batch(url, pages * max(1, opts.background_pages // len(pages)))
                while batch_state(url, batch_id)["request_counts"]["completed"] < opts.slots:
                    time.sleep(0.05)
                busy = asyncio.run(interactive(url, probe, opts.probe_concurrency))
                still = batch_state(url, batch_id)["status"] == "in_progress"
                httpx.post(f"{url}/v1/batches/{batch_id}/cancel", timeout=60)
                if share == opts.share:
                    rows.append(latency_row("interactive alone", alone))
                rows.append(latency_row(f"interactive while a batch runs (engine_share {share})"
                                        + ("" if still else " [batch ended early]"), busy))
        print(f"\n### Interactive /ocr latency ({opts.probes} requests, {opts.probe_concurrency} "
              "concurrent)\n")
        print("| condition | requests | p50 ms | p95 ms |\n|---|---|---|---|")
        print("\n".join(rows))


def pdf_pages(count: int) -> list[dict[str, Any]]:
    document = pdfium.PdfDocument(SYSTEM_PDF.read_bytes())
    bodies = []
    for i in range(count):
        image = document[i % len(document)].render(scale=150 / 72).to_pil()
        out = io.BytesIO()
        image.save(out, format="PNG")
        bodies.append({"image_base64": base64.b64encode(out.getvalue()).decode()})
    return bodies


def lite_part(opts: argparse.Namespace, work: Path) -> None:
    pages = pdf_pages(opts.lite_pages)
    with server(["--engine", "lite"], {"OPENAI_OCR_STORAGE__DIR": str(work / "store-lite"),
                                       "OPENAI_OCR_BATCHES__ENGINE_SHARE": str(opts.share),
                                       "OPENAI_OCR_BATCHES__POLL_INTERVAL_S": "0.05"},
                work / "lite.log") as url:
        asyncio.run(interactive(url, pages[:2], 1))  # warm-up: models loaded
        started = time.perf_counter()
        asyncio.run(interactive(url, pages, 2))
        live = time.perf_counter() - started
        batched = run_batch(url, pages)
    print(f"\n### Lite engine, {opts.lite_pages} pages of {SYSTEM_PDF.name} at 150 dpi, "
          f"batch share {opts.share}\n")
    print("| path | pages | seconds | pages/s |\n|---|---|---|---|")
    print(f"| interactive /ocr, 2 concurrent clients | {len(pages)} | {live:.1f} | {len(pages) / live:.2f} |")
    print(f"| one batch of /ocr lines | {len(pages)} | {batched:.1f} | {len(pages) / batched:.2f} |")
    print(f"\nbatch / interactive pages/s: {live / batched:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.05, help="fake engine seconds per page")
    parser.add_argument("--capacity", type=int, default=4, help="fake engine pages at once")
    parser.add_argument("--slots", type=int, default=8, help="limits.max_in_flight")
    parser.add_argument("--share", type=float, default=0.5, help="batches.engine_share")
    parser.add_argument("--probes", type=int, default=100, help="interactive requests timed")
    parser.add_argument("--probe-concurrency", type=int, default=2)
    parser.add_argument("--background-pages", type=int, default=5000)
    parser.add_argument("--lite-pages", type=int, default=50)
    opts = parser.parse_args()
    print(f"# bench_batches {' '.join(sys.argv[1:])} | {os.cpu_count()} CPUs | load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as tmp:
        if opts.pages:
            gateway_part(opts, Path(tmp))
        if opts.lite_pages:
            lite_part(opts, Path(tmp))
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
