"""GPU throughput check: `/ocr/batch` against vLLM's own `/v1/chat/completions`.

Starts `openai-ocr`'s vLLM launcher (our defaults, chat template and endpoint plugin) on the
full-size DeepSeek-OCR architecture with random weights (`--load-format dummy`, nothing to
download), or on a real checkpoint with --model, then sends the same N A4 pages through both
routes and prints pages/s and output tokens/s for each and their ratio. Needs a GPU machine
with the `vllm` extra installed; takes a few minutes.

    python scripts/gpu_check.py --pages 64 --max-tokens 512
    python scripts/gpu_check.py --model /models/DeepSeek-OCR --pages 200
    python scripts/gpu_check.py -- --gpu-memory-utilization 0.8   # extra vLLM flags after --
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import wait_for_process_server  # noqa: E402

log = logging.getLogger("gpu_check")
SERVED = "deepseek-ai/DeepSeek-OCR"


def a4_page(index: int) -> bytes:
    """An A4 page at 144 dpi with a few paragraphs (the engine tiles it: 903 image tokens)."""
    image = Image.new("RGB", (1190, 1684), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=22)
    for row in range(40):
        draw.text((80, 80 + row * 38), f"Page {index} line {row}: The quick brown fox jumps "
                  f"over the lazy dog {row * 17 % 97}.", fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def start_server(model: str, dummy: bool, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "openai_ocr.vllm_plugin.launcher", model, "--port", str(port),
           "--host", "127.0.0.1", "--served-model-name", SERVED, *extra]
    if dummy:
        cmd += ["--load-format", "dummy"]
    log.info("starting: %s", " ".join(cmd))
    return subprocess.Popen(cmd, cwd=tempfile.gettempdir())


async def run_batch(url: str, pages: list[str], max_tokens: int) -> tuple[float, int]:
    started, tokens = time.perf_counter(), 0
    async with httpx.AsyncClient(timeout=3600) as client:
        for first in range(0, len(pages), 100):  # /ocr/batch holds at most 100 items
            chunk = pages[first:first + 100]
            r = await client.post(f"{url}/ocr/batch", json={"requests": [
                {"image_base64": p, "mode": "free_ocr", "max_tokens": max_tokens} for p in chunk]})
            r.raise_for_status()
            for item in r.json()["results"]:
                if item["status"] != "success":
                    raise SystemExit(f"batch item failed: {item['error']}")
                tokens += item["usage"]["completion_tokens"]
            log.info("/ocr/batch: %d/%d pages", first + len(chunk), len(pages))
    return time.perf_counter() - started, tokens


async def run_chat(url: str, pages: list[str], max_tokens: int) -> tuple[float, int]:
    done = 0

    async def one(client: httpx.AsyncClient, page: str) -> int:
        nonlocal done
        r = await client.post(f"{url}/v1/chat/completions", json={
            "model": SERVED, "max_tokens": max_tokens, "temperature": 0,
            "skip_special_tokens": False,
            "vllm_xargs": {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]},
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{page}"}},
                {"type": "text", "text": "Free OCR."}]}]})
        r.raise_for_status()
        done += 1
        if done % max(1, len(pages) // 5) == 0:
            log.info("/v1/chat/completions: %d/%d pages", done, len(pages))
        return int(r.json()["usage"]["completion_tokens"])

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=len(pages))
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
        tokens = sum(await asyncio.gather(*(one(client, p) for p in pages)))
    return time.perf_counter() - started, tokens


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a real checkpoint; default: full-size dummy weights")
    parser.add_argument("--pages", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--start-timeout", type=float, default=900)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    model, dummy = args.model, args.model is None
    if dummy:
        from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint

        model = str(make_tiny_checkpoint(Path(tempfile.mkdtemp()) / "deepseek-ocr-dummy",
                                         full_size=True))
    log.info("rendering %d A4 pages", args.pages)
    pages = [base64.b64encode(a4_page(i)).decode() for i in range(args.pages)]
    url = f"http://127.0.0.1:{args.port}"
    proc = start_server(model, dummy, args.port, extra)
    try:
        try:
            wait_for_process_server(url, proc, args.start_timeout, poll_s=2)
        except AssertionError as exc:
            raise SystemExit(str(exc)) from None
        asyncio.run(run_chat(url, pages[:2], 16))  # warm-up (compilation, caches)
        chat_s, chat_tokens = asyncio.run(run_chat(url, pages, args.max_tokens))
        batch_s, batch_tokens = asyncio.run(run_batch(url, pages, args.max_tokens))
    finally:
        proc.terminate()
        proc.wait(timeout=120)

    print(f"\n{args.pages} A4 pages, max_tokens {args.max_tokens}, "
          f"{'dummy weights' if dummy else model}, device {os.environ.get('CUDA_VISIBLE_DEVICES', 'default')}")
    print(f"{'route':<24}{'seconds':>10}{'pages/s':>10}{'out tok/s':>12}")
    for name, seconds, tokens in (("/v1/chat/completions", chat_s, chat_tokens),
                                  ("/ocr/batch", batch_s, batch_tokens)):
        print(f"{name:<24}{seconds:>10.1f}{args.pages / seconds:>10.2f}{tokens / seconds:>12.0f}")
    print(f"ratio /ocr/batch : /v1/chat/completions = {chat_s / batch_s:.2f} (pages/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
