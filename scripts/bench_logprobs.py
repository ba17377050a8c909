"""What asking vLLM for token log-probabilities costs: pages/s with and without, in one run.

Starts `openai-ocr`'s vLLM launcher (our defaults, chat template and endpoint plugin) on the
tiny random-weight DeepSeek-OCR checkpoint of the engine tests (CPU build, nothing to
download) and sends the same page, in rounds, four ways:

- the engine path, `/v1/chat/completions` without and with `logprobs: true` (the body the
  legacy route builds, `plan_request` + `build_chat_request`);
- the whole route, `/ocr` with `output=json` and `confidence: false` / `true` (the second
  also aligns the tokens to the blocks and scores them).

Chat answers are held at exactly `--tokens` output tokens (`min_tokens` = `max_tokens`);
`/ocr` answers are greedy and the same with and without (the server runs with
`ocr.recovery.enabled = false`, so every page is one engine call: the random model loops).
The variants' order turns every round (ABCD, DCBA, ...) so a drifting machine load falls on
all of them, and `--concurrency` requests of one variant run at once. Prints pages/s per
variant and the with/without ratios, and the CPU seconds the server's processes (API server
and engine core) spent per page: on a machine shared with other work, wall time swings with
their load; the server's own CPU time much less.

    .venv-engine/bin/python scripts/bench_logprobs.py --rounds 6 --tokens 256

The tiny checkpoint's language model is 64 wide with DeepSeek-OCR's full 129,280-token
vocabulary, so the log-softmax over the vocabulary that log-probabilities add weighs far
more against its decoding than against the real 1,280-wide, 12-layer model: the measured
overhead is an upper bound for the real model.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_vllm_route import TIMEOUT, server_settings, start_server, stop_server  # noqa: E402

from openai_ocr.inputs.documents import load_image  # noqa: E402
from openai_ocr.ocr.models import OCROptions  # noqa: E402
from openai_ocr.ocr.resolution import family_of  # noqa: E402
from openai_ocr.ocr.translation import build_chat_request, plan_request  # noqa: E402
from tests.helpers import (  # noqa: E402
    ENGINE_AUTH,
    SERVED_NAME,
    b64,
    free_port,
    png_bytes,
    tail_of,
    wait_for_process_server,
)
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint  # noqa: E402

log = logging.getLogger("bench_logprobs")


def variants(image: bytes, resolution: str, tokens: int, workdir: Path,
             diagnose: bool = False) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (path, body): the engine path and the route, each without and with (and, to
    see where the cost is, log-probabilities whose tokens vLLM does not detokenize)."""
    settings = server_settings(workdir)
    options = OCROptions(resolution=resolution, max_tokens=tokens, mode="free_ocr")
    plan = plan_request(options, settings.ocr, family_of(SERVED_NAME), settings.budget.max_prompt_chars)
    decoded = load_image(image, max_pixels=settings.limits.max_image_pixels,
                         max_bytes=settings.limits.max_file_bytes)
    chat = {**build_chat_request(SERVED_NAME, decoded, plan, stream=False), "min_tokens": tokens}
    chat.pop("logprobs", None)
    route = {"image_base64": b64(image), "mode": "free_ocr", "resolution": resolution, "max_tokens": tokens,
             "output": "json"}
    table = {
        "chat": ("/v1/chat/completions", chat),
        "chat+logprobs": ("/v1/chat/completions", {**chat, "logprobs": True}),
        "ocr json": ("/ocr", {**route, "confidence": False}),
        "ocr json+confidence": ("/ocr", {**route, "confidence": True}),
    }
    if diagnose:
        table["chat+logprobs as token ids"] = ("/v1/chat/completions", {
            **chat, "logprobs": True, "return_tokens_as_token_ids": True})
    return table


def check(name: str, answer: dict[str, Any], tokens: int) -> int:
    """Each answer is one engine call, a chat answer of `tokens` tokens, and carries
    log-probabilities or confidence only where asked; returns its output tokens."""
    if "choices" in answer:
        made, calls = answer["usage"]["completion_tokens"], 1
        has = answer["choices"][0].get("logprobs") is not None
    else:
        (page,) = answer["pages"]
        made, calls = page["usage"]["completion_tokens"], page["usage"]["attempts"]
        has = page["confidence"] is not None
    if calls != 1 or ("choices" in answer and made != tokens) or has != ("+" in name):
        raise SystemExit(f"{name}: {made} tokens (wanted {tokens}), {calls} engine calls, "
                         f"log-probabilities/confidence: {has}")
    return int(made)


def server_cpu(server: psutil.Process) -> float:
    """CPU seconds (user + system) the server and its children (the engine core) used so far."""
    total = 0.0
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run(url: str, table: dict[str, tuple[str, dict[str, Any]]], rounds: int, concurrency: int,
        tokens: int, server: psutil.Process) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds, and server CPU seconds, per round of `concurrency` concurrent requests, per variant."""
    names = list(table)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with httpx.Client(base_url=url, timeout=TIMEOUT, headers=ENGINE_AUTH,
                      limits=httpx.Limits(max_connections=concurrency)) as client, \
            concurrent.futures.ThreadPoolExecutor(concurrency) as pool:

        def one(name: str) -> dict[str, Any]:
            path, body = table[name]
            r = client.post(path, json=body)
            if r.status_code != 200:
                raise SystemExit(f"{name}: {path} answered {r.status_code}: {r.text[:2000]}")
            return dict(r.json())

        log.info("warm-up: one request of each variant")
        made = {name: check(name, one(name), tokens) for name in names}
        log.info("output tokens a page: %s", made)
        if made["ocr json"] != made["ocr json+confidence"]:
            raise SystemExit("/ocr wrote different answers with and without confidence")
        for n in range(rounds):
            order = names if n % 2 == 0 else names[::-1]
            for name in order:
                started, used = time.perf_counter(), server_cpu(server)
                answers = list(pool.map(one, [name] * concurrency))
                times[name].append(time.perf_counter() - started)
                cpu[name].append(server_cpu(server) - used)
                for answer in answers:
                    check(name, answer, tokens)
            log.info("round %d/%d: %s", n + 1, rounds,
                     ", ".join(f"{name} {times[name][-1]:.2f} s ({cpu[name][-1]:.2f} CPU s)" for name in names))
    return times, cpu


def report(times: dict[str, list[float]], cpu: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"\nOne {args.size} PNG, resolution {args.resolution}, {args.tokens} output tokens a page, "
          f"{args.rounds} rounds of {args.concurrency} concurrent request(s) per variant, order turned "
          f"every round\n")
    print("| variant | pages | median s a round | pages/s | server CPU s a page (median) |")
    print("|---|---:|---:|---:|---:|")
    rate: dict[str, float] = {}
    per_page: dict[str, float] = {}
    for name, values in times.items():
        pages = len(values) * args.concurrency
        rate[name] = pages / sum(values)
        per_page[name] = statistics.median(cpu[name]) / args.concurrency
        print(f"| {name} | {pages} | {statistics.median(values):.3f} | {rate[name]:.4f} | {per_page[name]:.3f} |")
    chat = rate["chat+logprobs"] / rate["chat"]
    route = rate["ocr json+confidence"] / rate["ocr json"]
    print(f"\nwith / without: engine path {chat:.3f} ({(1 - chat) * 100:+.1f}% slower), "
          f"/ocr output=json {route:.3f} ({(1 - route) * 100:+.1f}% slower)")
    print(f"server CPU per page, with / without: engine path "
          f"{per_page['chat+logprobs'] / per_page['chat']:.3f}, /ocr output=json "
          f"{per_page['ocr json+confidence'] / per_page['ocr json']:.3f}; per output token: "
          f"{(per_page['chat+logprobs'] - per_page['chat']) / args.tokens * 1000:+.2f} ms (engine path)")
    if "chat+logprobs as token ids" in rate:
        ids = rate["chat+logprobs as token ids"] / rate["chat"]
        print(f"log-probabilities as token ids / without: {ids:.3f} ({(1 - ids) * 100:+.1f}% slower), "
              f"server CPU {per_page['chat+logprobs as token ids'] / per_page['chat']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=256, help="output tokens of every answer")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--resolution", default="tiny")
    parser.add_argument("--size", default="400x300", help="the PNG's WIDTHxHEIGHT")
    parser.add_argument("--diagnose", action="store_true", help="also log-probabilities returned as token "
                        "ids (vLLM skips detokenizing them): the sampler's share of the cost")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds")
    parser.add_argument("extra", nargs="*", help="extra vLLM flags, after --")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ["OPENAI_OCR_OCR__RECOVERY__ENABLED"] = "false"  # one engine call a page (the server's env)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-logprobs-") as tmp:
        workdir = Path(tmp)
        checkpoint = make_tiny_checkpoint(workdir / "tiny-deepseek-ocr")
        table = variants(png_bytes(width, height, "Invoice 42"), args.resolution, args.tokens, workdir,
                         args.diagnose)
        log_path = workdir / "server.log"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(checkpoint, workdir, log_path, port, args.extra)
        try:
            wait_for_process_server(url, proc, args.start_timeout, path="/v1/models", poll_s=1,
                                    output=lambda: tail_of(log_path), headers=ENGINE_AUTH)
            log.info("server up after %.0f s", time.perf_counter() - began)
            times, cpu = run(url, table, args.rounds, args.concurrency, args.tokens, psutil.Process(proc.pid))
        except BaseException:
            log.error("server log tail:\n%s", tail_of(log_path, 40))
            raise
        finally:
            stop_server(proc)
    report(times, cpu, args)


if __name__ == "__main__":
    main()
