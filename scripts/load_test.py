"""Bounded load on loopback: many concurrent and disconnecting clients against the gateway.

Starts a slow fake OpenAI-compatible upstream (in this process) and `openai-ocr serve
--upstream-url` (a child process, so its memory is measured alone), sends a fixed number of
requests, and prints status counts, latency percentiles and the server's memory before,
at peak and after the load. Only 127.0.0.1 is contacted; the run stops by itself.

    python scripts/load_test.py --requests 500 --concurrency 500 --upstream-delay 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.helpers import b64, free_port, png_bytes, running_server, wait_for_process_server  # noqa: E402

log = logging.getLogger("load_test")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample_memory(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib(pid))
        time.sleep(0.05)


async def one(client: httpx.AsyncClient, url: str, kind: str, payload: dict) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        if kind == "disconnect":  # a client that gives up after 100 ms
            await client.post(f"{url}/ocr", json=payload, timeout=0.1)
        elif kind == "stream":
            async with client.stream("POST", f"{url}/v1/chat/completions", timeout=120, json={
                    "stream": True, "messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                             + payload["image_base64"]}},
                        {"type": "text", "text": "Free OCR."}]}]}) as response:
                async for _ in response.aiter_lines():
                    pass
                return str(response.status_code), time.perf_counter() - started
        else:
            response = await client.post(f"{url}/ocr", json=payload, timeout=120)
            return str(response.status_code), time.perf_counter() - started
    except httpx.TimeoutException:
        return "client-gave-up", time.perf_counter() - started
    except httpx.TransportError as exc:
        return f"transport:{type(exc).__name__}", time.perf_counter() - started
    return "client-gave-up", time.perf_counter() - started


async def load(url: str, total: int, concurrency: int) -> list[tuple[str, str, float]]:
    payload = {"image_base64": b64(png_bytes(400, 300)), "mode": "free_ocr"}
    kinds = ["plain", "plain", "stream", "disconnect"]
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def run(i: int) -> tuple[str, str, float]:
        nonlocal done
        kind = kinds[i % len(kinds)]
        async with gate:
            status, seconds = await one(client, url, kind, payload)
        done += 1
        if done % max(1, total // 10) == 0:
            log.info("%d/%d requests done", done, total)
        return kind, status, seconds

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        return await asyncio.gather(*(run(i) for i in range(total)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--upstream-delay", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="load rounds; memory after each "
                        "shows whether it keeps growing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    fake = FakeUpstream()
    fake.delay_s = args.upstream_delay
    fake.chunk_delay_s = args.upstream_delay / 10
    with running_server(fake.app) as upstream:
        port = free_port()
        env_limits = {"OPENAI_OCR_LIMITS__MAX_IN_FLIGHT": str(args.max_in_flight),
                      "OPENAI_OCR_LIMITS__MAX_QUEUE": str(args.max_queue),
                      "OPENAI_OCR_UPSTREAM__MAX_RETRIES": "0"}
        import os

        server = subprocess.Popen(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url", f"{upstream}/v1",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, **env_limits})
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_process_server(url, server)
            base = rss_mib(server.pid)
            # warm-up so imports and first-use allocations are not counted as growth
            asyncio.run(load(url, 20, 20))
            warm = rss_mib(server.pid)
            stop, peak = threading.Event(), [warm]
            sampler = threading.Thread(target=sample_memory, args=(server.pid, stop, peak))
            sampler.start()
            after_rounds: list[float] = []
            started = time.perf_counter()
            for round_no in range(args.rounds):
                log.info("round %d of %d", round_no + 1, args.rounds)
                results = asyncio.run(load(url, args.requests, args.concurrency))
                time.sleep(2)
                after_rounds.append(rss_mib(server.pid))
            wall = (time.perf_counter() - started) / args.rounds
            stop.set()
            sampler.join()
            after = after_rounds[-1]
            healthy = httpx.post(f"{url}/ocr", json={"image_base64": b64(png_bytes())}).status_code
            metrics = httpx.get(f"{url}/metrics").text
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"\n{args.requests} requests, {args.concurrency} concurrent, upstream {args.upstream_delay}s "
          f"per answer, max_in_flight {args.max_in_flight}, max_queue {args.max_queue}; "
          f"{wall:.1f} s per round (figures below: the last of {args.rounds} rounds)")
    counts = collections.Counter((kind, status) for kind, status, _ in results)
    print("\nkind        status            count")
    for (kind, status), count in sorted(counts.items()):
        print(f"{kind:<11} {status:<17} {count}")
    for kind in ("plain", "stream"):
        ok = sorted(s for k, st, s in results if k == kind and st == "200")
        if ok:
            p50 = statistics.median(ok)
            p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
            print(f"\n{kind} 200s: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    server_errors = [st for _, st, _ in results if st.isdigit() and int(st) >= 500 and st != "503"]
    in_flight = [line for line in metrics.splitlines() if line.startswith("openai_ocr_engine_in_flight ")]
    print(f"\nserver RSS: {base:.0f} MiB at start, {warm:.0f} MiB after warm-up, "
          f"{peak[0]:.0f} MiB peak, {after:.0f} MiB 2 s after the load "
          f"({after - warm:+.0f} MiB vs warm); after each round: "
          + ", ".join(f"{m:.0f}" for m in after_rounds) + " MiB")
    print(f"engine requests in flight after the load: {in_flight[0].split()[-1] if in_flight else '?'}")
    print(f"normal request afterwards: {healthy}; unexpected 5xx: {len(server_errors)}")
    return 1 if server_errors or healthy != 200 else 0


if __name__ == "__main__":
    sys.exit(main())
