"""In-process cost of the legacy route in vllm mode: `/ocr` against vLLM's `/v1/chat/completions`.

Starts `openai-ocr`'s vLLM launcher (our defaults, chat template and endpoint plugin) on the
tiny random-weight DeepSeek-OCR checkpoint of the engine tests (CPU build, nothing to
download), then sends the same OCR call through both routes, one request at a time and
interleaved (legacy, direct, legacy, ...), after a warm-up of each: one small PNG in the
`tiny` resolution mode (fewest image tokens), `max_tokens` 1. The direct chat body is built
by the project's own translation (`plan_request` + `build_chat_request`, the settings the
server reads), so both calls are the same engine work and the difference is what the legacy
route adds in-process: body parsing, decoding and validating the image, the plan, the
engine call through vLLM's chat handler, the answer. Prints per route the requests, median
and mean latency and requests/s, and the ratio legacy / direct (target >= 0.98).

Start-up takes about 70 s on a 2-core machine and each request several seconds (the vision
towers keep their real size), so a few pairs take minutes:

    .venv-engine/bin/python scripts/bench_vllm_route.py --pairs 8
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai_ocr.inputs.documents import load_image  # noqa: E402
from openai_ocr.ocr.models import OCROptions  # noqa: E402
from openai_ocr.ocr.resolution import family_of  # noqa: E402
from openai_ocr.ocr.translation import build_chat_request, plan_request  # noqa: E402
from openai_ocr.settings import CONFIG_ENV, Settings, load_settings  # noqa: E402
from tests.helpers import (  # noqa: E402
    ENGINE_API_KEY,
    ENGINE_AUTH,
    ENGINE_FLAGS,
    SERVED_NAME,
    b64,
    free_port,
    png_bytes,
    tail_of,
    wait_for_process_server,
)
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint  # noqa: E402

log = logging.getLogger("bench_vllm_route")
LEGACY, DIRECT = "/ocr", "/v1/chat/completions"
TIMEOUT = httpx.Timeout(900, connect=10)


def server_settings(workdir: Path) -> Settings:
    """The settings the plugin reads in the server (cwd `workdir`, which has no config.toml):
    $OPENAI_OCR_CONFIG, else the defaults (and the environment)."""
    named = os.environ.get(CONFIG_ENV)
    if named is None:
        named = str(workdir / "empty-config.toml")
        Path(named).write_text("")
    return load_settings(named)


def bodies(settings: Settings, image: bytes, resolution: str, max_tokens: int) -> tuple[dict, dict, str]:
    """(the `/ocr` body, the chat body the legacy route sends for it, the prompt text)."""
    options = OCROptions(resolution=resolution, max_tokens=max_tokens)
    plan = plan_request(options, settings.ocr, family_of(SERVED_NAME),
                        settings.budget.max_prompt_chars)
    decoded = load_image(image, max_pixels=settings.limits.max_image_pixels,
                         max_bytes=settings.limits.max_file_bytes)
    legacy = {"image_base64": b64(image), "resolution": resolution, "max_tokens": max_tokens}
    direct = build_chat_request(SERVED_NAME, decoded, plan, stream=False)
    return legacy, direct, plan.prompt


def start_server(checkpoint: Path, workdir: Path, log_path: Path, port: int,
                 extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    cmd = [sys.executable, "-m", "openai_ocr.vllm_plugin.launcher", str(checkpoint),
           *ENGINE_FLAGS, *extra, "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", SERVED_NAME, "--api-key", ENGINE_API_KEY]
    log.info("starting: %s (log: %s)", " ".join(cmd[:-2] + ["--api-key", "***"]), log_path)
    with log_path.open("wb") as out:
        # cwd outside the checkout: a stale `openai_ocr.egg-info` there would shadow the
        # installed metadata, and with it the `vllm.endpoint_plugins` entry point
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # vLLM shuts its engine processes down on SIGTERM
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log.warning("server did not stop in 60 s: killing it")
        proc.kill()
        proc.wait(timeout=30)


def call(client: httpx.Client, path: str, body: dict) -> tuple[float, dict[str, Any]]:
    """One request: (seconds, the answer's JSON); raises on anything but 200."""
    started = time.perf_counter()
    r = client.post(path, json=body)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise SystemExit(f"{path} answered {r.status_code}: {r.text[:2000]}")
    return elapsed, r.json()


def prompt_tokens(answer: dict[str, Any]) -> int:
    return int(answer["usage"]["prompt_tokens"])


def check_same_work(legacy: dict[str, Any], direct: dict[str, Any], prompt: str,
                    resolution: str) -> None:
    """The two warm-up answers show the same request reached the engine."""
    if legacy.get("prompt") != prompt or legacy.get("resolution") != resolution:
        raise SystemExit(f"/ocr used prompt {legacy.get('prompt')!r} and resolution "
                         f"{legacy.get('resolution')!r}; the direct body has {prompt!r}, {resolution!r}")
    a, b = prompt_tokens(legacy), prompt_tokens(direct)
    if a != b:
        raise SystemExit(f"prompt tokens differ: /ocr {a}, chat {b}: not the same request")
    log.info("same work on both routes: %d prompt tokens, prompt %r, resolution %s", a, prompt,
             resolution)


def measure(url: str, legacy: dict, direct: dict, pairs: int, prompt: str,
            resolution: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {LEGACY: [], DIRECT: []}
    with httpx.Client(base_url=url, timeout=TIMEOUT, headers=ENGINE_AUTH) as client:
        log.info("warm-up: one request on each route")
        t_legacy, a_legacy = call(client, LEGACY, legacy)
        t_direct, a_direct = call(client, DIRECT, direct)
        log.info("warm-up: %s %.2f s, %s %.2f s", LEGACY, t_legacy, DIRECT, t_direct)
        check_same_work(a_legacy, a_direct, prompt, resolution)
        for n in range(1, pairs + 1):
            for path, body in ((LEGACY, legacy), (DIRECT, direct)):
                elapsed, _ = call(client, path, body)
                times[path].append(elapsed)
            log.info("pair %d/%d: %s %.3f s, %s %.3f s", n, pairs, LEGACY, times[LEGACY][-1],
                     DIRECT, times[DIRECT][-1])
    return times


def report(times: dict[str, list[float]], args: argparse.Namespace, width: int, height: int) -> None:
    rows = []
    for path, values in times.items():
        rows.append((path, len(values), statistics.median(values), statistics.fmean(values),
                     len(values) / sum(values)))
    print(f"\nOne {width}x{height} PNG, resolution {args.resolution}, max_tokens {args.max_tokens}, "
          f"{args.pairs} interleaved pairs, one request at a time\n")
    print("| route | requests | median latency (s) | mean latency (s) | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for path, count, median, mean, rate in rows:
        print(f"| `{path}` | {count} | {median:.3f} | {mean:.3f} | {rate:.4f} |")
    (_, _, med_l, _, rate_l), (_, _, med_d, _, rate_d) = rows
    print(f"\nlegacy / direct: requests/s {rate_l / rate_d:.3f}, inverse median latency "
          f"{med_d / med_l:.3f} (target >= 0.98); median difference "
          f"{(med_l - med_d) * 1000:+.1f} ms per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="measured (legacy, direct) pairs")
    parser.add_argument("--resolution", default="tiny", help="resolution mode of both calls")
    parser.add_argument("--max-tokens", type=int, default=1)
    parser.add_argument("--size", default="400x300", help="the PNG's WIDTHxHEIGHT")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds")
    parser.add_argument("extra", nargs="*", help="extra vLLM flags, after --")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    width, height = (int(v) for v in args.size.lower().split("x"))

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-vllm-route-") as tmp:
        workdir = Path(tmp)
        checkpoint = make_tiny_checkpoint(workdir / "tiny-deepseek-ocr")
        legacy, direct, prompt = bodies(server_settings(workdir), png_bytes(width, height, "Invoice 42"),
                                        args.resolution, args.max_tokens)
        log_path = workdir / "server.log"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(checkpoint, workdir, log_path, port, args.extra)
        try:
            wait_for_process_server(url, proc, args.start_timeout, path="/v1/models", poll_s=1,
                                    output=lambda: tail_of(log_path), headers=ENGINE_AUTH)
            log.info("server up after %.0f s", time.perf_counter() - began)
            times = measure(url, legacy, direct, args.pairs, prompt, args.resolution)
        except BaseException:
            log.error("server log tail:\n%s", tail_of(log_path, 40))
            raise
        finally:
            stop_server(proc)
    report(times, args, width, height)
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
