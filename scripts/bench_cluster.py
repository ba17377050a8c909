"""Scale-out benchmark: requests/s through the gateway with one node vs two behind vllm-router.

Starts, on loopback and in one run: N simulated engine nodes (an OpenAI-compatible server
answering one request at a time after `--service-ms`, as a GPU node at its capacity does),
vllm-router in front of them, and `openai-ocr serve --upstream-url ROUTER/v1`; then sends
the same load (`--requests` page OCRs at `--concurrency`) with 1 and with 2 nodes and prints
requests/s, the ratio, and the gateway's own CPU time per page (from /proc). The nodes are
simulated so that the figure measures the gateway and the router, not this machine's CPU.

    python scripts/bench_cluster.py --requests 200 --concurrency 16 --service-ms 250
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import b64, free_port, png_bytes, wait_for_process_server  # noqa: E402

NODE_APP = '''
import asyncio, sys, time
from fastapi import FastAPI, Request
import uvicorn
app, gate, delay = FastAPI(), asyncio.Semaphore(1), float(sys.argv[2]) / 1000
@app.get("/v1/models")
async def models():
    return {"object": "list", "data": [{"id": "deepseek-ai/DeepSeek-OCR", "object": "model",
            "created": 0, "owned_by": "vllm"}]}
@app.get("/health")
async def health():
    return {"status": "ok"}
@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    async with gate:  # one page at a time: the node's capacity is 1000/service_ms pages/s
        await asyncio.sleep(delay)
    return {"id": "c", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "usage": {"prompt_tokens": 903, "completion_tokens": 40,
            "total_tokens": 943}, "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "text of the page"}}]}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def start(cmd: list[str], url: str, path: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_process_server(url, proc, 60, path=path,
                            output=lambda: proc.stderr.read() if proc.stderr else "")
    return proc


async def load(url: str, requests: int, concurrency: int) -> tuple[float, int]:
    payload = {"image_base64": b64(png_bytes(1224, 1584)), "mode": "free_ocr"}
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal ok
        async with gate:
            r = await client.post(f"{url}/ocr", json=payload, timeout=120)
            ok += r.status_code == 200

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client) for _ in range(min(concurrency, requests))))  # warm-up
        ok = 0
        started = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(requests)))
        return time.perf_counter() - started, ok


def run(nodes: int, args: argparse.Namespace) -> tuple[float, float]:
    procs: list[subprocess.Popen] = []
    try:
        urls = []
        for _ in range(nodes):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            procs.append(start([sys.executable, "-c", NODE_APP, str(port), str(args.service_ms)],
                               urls[-1], "/v1/models"))
        router_port = free_port()
        router = shutil.which("vllm-router") or str(Path(sys.executable).parent / "vllm-router")
        procs.append(start([router, "--host", "127.0.0.1", "--port", str(router_port),
                            "--worker-urls", *urls, "--policy", "round_robin"],
                           f"http://127.0.0.1:{router_port}", "/v1/models"))
        gw_port = free_port()
        gw_url = f"http://127.0.0.1:{gw_port}"
        gateway = start([sys.executable, "-m", "openai_ocr.cli.main", "serve", "--engine", "upstream",
                         "--upstream-url", f"http://127.0.0.1:{router_port}/v1", "--host", "127.0.0.1",
                         "--port", str(gw_port), "--log-level", "warning"], gw_url, "/health")
        procs.append(gateway)
        cpu_before = cpu_seconds(gateway.pid)
        elapsed, ok = asyncio.run(load(gw_url, args.requests, args.concurrency))
        cpu_ms = (cpu_seconds(gateway.pid) - cpu_before) * 1000 / args.requests
        if ok != args.requests:
            raise SystemExit(f"{args.requests - ok} of {args.requests} requests failed")
        rate = args.requests / elapsed
        print(f"{nodes} node(s): {rate:7.2f} requests/s  ({elapsed:.1f} s), gateway CPU "
              f"{cpu_ms:.1f} ms/page", flush=True)
        return rate, cpu_ms
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--service-ms", type=float, default=250.0,
                        help="a simulated node's time per page (one page at a time)")
    args = parser.parse_args()
    print(f"{args.requests} requests of a 1224x1584 PNG page at concurrency {args.concurrency}; "
          f"each node serves one page per {args.service_ms:g} ms", flush=True)
    one, cpu_one = run(1, args)
    two, cpu_two = run(2, args)
    print(f"ratio 2 nodes / 1 node: {two / one:.2f}x (target >= 1.7)")
    cpu = max(cpu_one, cpu_two)
    print(f"gateway CPU per page: {cpu:.1f} ms -> one gateway core forwards about "
          f"{1000 / cpu:.0f} pages/s")


if __name__ == "__main__":
    main()
