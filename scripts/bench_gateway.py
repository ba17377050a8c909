#!/usr/bin/env python
"""What the gateway costs per request: against the upstream called directly and LiteLLM's proxy.

Starts on loopback, in one run: a minimal upstream (raw ASGI on uvicorn with uvloop and
httptools, a canned chat completion; fast enough not to be the bottleneck), the gateway
(`openai-ocr serve --upstream-url`) and, where installed, LiteLLM's proxy configured as an
OpenAI-compatible pass-through to the same upstream. A lean keep-alive load generator sends
the same page (a 1224x1584 PNG text page) through each path at each concurrency and prints
requests/s, the ratio against direct, latency and the CPU milliseconds each process tree
spent per request (read from /proc).

Paths: direct chat; LiteLLM chat; our /v1/chat/completions; our /ocr (JSON, base64); our
/ocr/file (multipart); a 10-page text PDF on /ocr (its rows count requests, each 10 pages).

    python scripts/bench_gateway.py [--requests 300] [--concurrency 1,8,32]
        [--litellm PATH-TO-litellm] [--profile DIR]    # py-spy profiles of the gateway

`make bench-gateway` installs LiteLLM's proxy and py-spy into `.venv-bench` and runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, text_pdf, wait_for_process_server  # noqa: E402

log = logging.getLogger("bench_gateway")
MODEL = "deepseek-ai/DeepSeek-OCR"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KEY = "sk-bench-" + "7f3a9c2e" * 6
"""The key clients present to both proxies: each checks one key, as deployed."""


# -- the upstream: as little work per request as an HTTP server can do -----------------------
def _completion() -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "Hello world."}}],
        "usage": {"prompt_tokens": 273, "completion_tokens": 4, "total_tokens": 277},
    }).encode()


def _chunks() -> bytes:
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
             "model": MODEL, "choices": [{"index": 0, "delta": {"content": "Hello world."},
                                          "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


async def upstream_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"].endswith("/models"):
        payload, kind = json.dumps({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}).encode(), b"application/json"
    elif b'"stream":true' in body.replace(b" ", b""):
        payload, kind = _chunks(), b"text/event-stream"
    else:
        payload, kind = COMPLETION, b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", kind), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


COMPLETION = _completion()


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


# -- the load generator: pre-built request bytes over keep-alive connections ----------------
@dataclass
class Case:
    name: str
    port: int
    path: str
    body: bytes
    content_type: str = "application/json"
    pages: int = 1

    def request(self) -> bytes:
        head = (f"POST {self.path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
                f"content-type: {self.content_type}\r\ncontent-length: {len(self.body)}\r\n"
                f"authorization: Bearer {KEY}\r\n\r\n")
        return head.encode() + self.body


@dataclass
class Outcome:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def load(case: Case, total: int, concurrency: int) -> Outcome:
    request = case.request()
    outcome = Outcome()
    remaining = [total]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", case.port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                outcome.latencies.append(time.perf_counter() - started)
                outcome.statuses[status] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    outcome.seconds = time.perf_counter() - started
    return outcome


# -- CPU time of a process and its children, from /proc ---------------------------------------
def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and its live descendants, with the children each has reaped
    (decoder workers are replaced after a number of tasks; their time stays counted)."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


# -- inputs -----------------------------------------------------------------------------------
def page_png() -> bytes:
    """A 1224x1584 greyscale text page (A4 at 144 dpi), about 90 KiB of base64."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1224, 1584), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 22)
    words = ("invoice total amount page section report quarterly revenue margin the of and "
             "customer order shipped delivered account balance due net gross tax").split()
    for row in range(44):
        line = " ".join(words[(row * 7 + i * 3) % len(words)] for i in range(12))
        draw.text((90, 90 + row * 32), line, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def chat_body(png_b64: str) -> bytes:
    return json.dumps({"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png_b64}"}},
        {"type": "text", "text": "Free OCR."}]}]}).encode()


def multipart(name: str, filename: str, data: bytes, mime: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\ncontent-type: {mime}\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def ten_page_pdf() -> bytes:
    lines = [f"Line {n}: the quarterly report of the customer account, page section {n}."
             for n in range(24)]
    return text_pdf([(595, 842, lines) for _ in range(10)])


# -- processes ---------------------------------------------------------------------------------
def start(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.info("starting %s", " ".join(argv[:3]))
    return subprocess.Popen(argv, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def litellm_config(directory: Path, upstream_port: int) -> Path:
    path = directory / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: EMPTY\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n")
    return path


def profile(pid: int, seconds: int, out: Path) -> subprocess.Popen | None:
    spy = next((str(p) for p in (Path(sys.executable).parent / "py-spy",
                                  ROOT / ".venv-bench/bin/py-spy") if p.exists()), shutil.which("py-spy"))
    if spy is None:
        log.warning("py-spy not found (make bench-gateway installs it): no profile")
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(seconds),
                             "--rate", "250", "--format", "raw", "--output", str(out),
                             "--subprocesses", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_of_profile(path: Path, count: int = 15) -> list[tuple[str, float, float]]:
    """(function, self %, total %) of a py-spy raw (collapsed stacks) file, by self time."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        n = int(number)
        samples += n
        if frames:
            own[_short_frame(frames[-1])] += n
        for name in {_short_frame(f) for f in frames}:
            inclusive[name] += n
    return [(name, 100 * own[name] / samples, 100 * inclusive[name] / samples)
            for name, _ in own.most_common(count)] if samples else []


def _short_frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":")[0].rstrip(")")
    return f"{name} ({module})"


# -- the run ------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    upstream_port, gateway_port, litellm_port = free_port(), free_port(), free_port()
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["upstream"] = start([sys.executable, __file__, "--serve-upstream", str(upstream_port)],
                                  work / "upstream.log")
        procs["gateway"] = start(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url",
             f"http://127.0.0.1:{upstream_port}/v1", "--host", "127.0.0.1",
             "--port", str(gateway_port)], work / "gateway.log", env={"OPENAI_OCR_API_KEYS": KEY})
        litellm = args.litellm or shutil.which("litellm")
        if litellm and Path(litellm).exists():
            procs["litellm"] = start(
                [litellm, "--config", str(litellm_config(work, upstream_port)), "--host",
                 "127.0.0.1", "--port", str(litellm_port), "--num_workers", "1"],
                work / "litellm.log", env={"LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                           "LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION",
                                           "LITELLM_MASTER_KEY": KEY})
        else:
            log.warning("LiteLLM's proxy is not installed (make bench-gateway installs it): "
                        "its rows are left out")
        for name, port, path in (("upstream", upstream_port, "/v1/models"),
                                 ("gateway", gateway_port, "/health"),
                                 ("litellm", litellm_port, "/health/liveliness")):
            if name in procs:
                wait_for_process_server(f"http://127.0.0.1:{port}", procs[name], timeout_s=180, path=path)
                log.info("%s is up", name)

        png = page_png()
        png_b64 = base64.b64encode(png).decode()
        pdf_b64 = base64.b64encode(ten_page_pdf()).decode()
        form, form_type = multipart("file", "page.png", png, "image/png")
        print(f"page: 1224x1584 PNG, {len(png) / 1024:.0f} KiB ({len(png_b64) / 1024:.0f} KiB base64)")
        cases = [
            (Case("direct chat", upstream_port, "/v1/chat/completions", chat_body(png_b64)), "upstream"),
            (Case("LiteLLM chat", litellm_port, "/v1/chat/completions", chat_body(png_b64)), "litellm"),
            (Case("our /v1/chat/completions", gateway_port, "/v1/chat/completions",
                  chat_body(png_b64)), "gateway"),
            (Case("our /ocr", gateway_port, "/ocr",
                  json.dumps({"image_base64": png_b64}).encode()), "gateway"),
            (Case("our /ocr/file", gateway_port, "/ocr/file", form, form_type), "gateway"),
            (Case("our /ocr, 10-page PDF", gateway_port, "/ocr",
                  json.dumps({"image_base64": pdf_b64}).encode(), pages=10), "gateway"),
        ]
        cases = [(case, owner) for case, owner in cases if owner in procs
                 and (not args.only or any(word in case.name for word in args.only))]
        rows = []
        for concurrency in args.concurrency:
            direct_rps = None
            for case, owner in cases:
                total = max(concurrency, args.requests // case.pages)
                await load(case, min(total, 4 * concurrency), concurrency)  # warm-up
                before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
                spy = None
                if (args.profile and concurrency == max(args.concurrency) and owner == "gateway"
                        and case.pages == 1):  # (py-spy slows the decoder processes badly)
                    spy = profile(procs["gateway"].pid, 600, args.profile / _slug(case.name))
                outcome = await load(case, total, concurrency)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(timeout=60)
                after = {name: cpu_seconds(p.pid) for name, p in procs.items()}
                rps = total / outcome.seconds
                direct_rps = rps if case.name == "direct chat" else direct_rps
                cpu = {name: 1000 * (after[name] - before[name]) / total for name in procs}
                lat = sorted(outcome.latencies)
                rows.append((concurrency, case.name, total, rps,
                             rps / direct_rps if direct_rps else float("nan"),
                             1000 * statistics.median(lat), 1000 * lat[int(0.95 * (len(lat) - 1))],
                             cpu[owner] if owner != "upstream" else float("nan"), cpu["upstream"],
                             ",".join(f"{s}x{n}" for s, n in sorted(outcome.statuses.items()))))
                log.info("c=%d %-26s %6.1f req/s", concurrency, case.name, rps)
        print()
        print("| concurrency | path | requests | req/s | vs direct | p50 ms | p95 ms | "
              "proxy CPU ms/req | upstream CPU ms/req | statuses |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c, name, total, rps, ratio, p50, p95, proxy_cpu, up_cpu, statuses in rows:
            print(f"| {c} | {name} | {total} | {rps:.1f} | {ratio:.2f} | {p50:.1f} | {p95:.1f} | "
                  f"{'-' if proxy_cpu != proxy_cpu else f'{proxy_cpu:.2f}'} | {up_cpu:.2f} | {statuses} |")
        if args.profile:
            for path in sorted(args.profile.glob("*.txt")):
                print(f"\npy-spy, gateway, {path.stem}, concurrency {max(args.concurrency)} "
                      "(self % / total % of samples):")
                for name, own, total_pct in top_of_profile(path):
                    print(f"  {own:5.1f}% {total_pct:5.1f}%  {name}")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.info("logs in %s", work)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") + ".txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per row")
    parser.add_argument("--concurrency", default="1,8,32",
                        type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--litellm", help="path of LiteLLM's `litellm` program")
    parser.add_argument("--profile", type=Path, help="write py-spy profiles of the gateway here")
    parser.add_argument("--only", type=lambda text: text.split(","), default=[],
                        help="run only the paths whose name holds one of these words")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
