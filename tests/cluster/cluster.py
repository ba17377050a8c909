"""A local cluster for the scale-out test: N vLLM engine nodes, vllm-router, our gateway.

Each part is a real process on loopback, started the way the deploy files start it
(`deploy/`): the nodes with `openai-ocr serve MODEL` (here `python -m
openai_ocr.vllm_plugin.launcher`, the same code, on the tiny checkpoint), the router with
`vllm-router --worker-urls ...`, the gateway with `openai-ocr serve --upstream-url`.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import ENGINE_FLAGS, SERVED_NAME, ServerProcess, free_port, serve_command

START_TIMEOUT_S = float(os.environ.get("OPENAI_OCR_ENGINE_START_TIMEOUT", "900"))


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    router: ServerProcess
    gateway: ServerProcess


def engine_node(checkpoint: Path, index: int, log_dir: Path) -> ServerProcess:
    """An engine node pinned to one core (`VLLM_CPU_OMP_THREADS_BIND`), as one GPU node.

    With vLLM's `--enable-server-load-tracking`, its `/load` counts the chat requests its API
    server holds, from arrival to answer: the test's view of a node at work (vLLM's
    `num_requests_running` gauge is only updated between engine steps, and one step here
    is the vision towers' whole pass, many seconds)."""
    port = free_port()
    cmd = [sys.executable, "-m", "openai_ocr.vllm_plugin.launcher", str(checkpoint), *ENGINE_FLAGS,
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED_NAME,
           "--enable-server-load-tracking"]
    cores = os.cpu_count() or 1
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": str(index % cores)}
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", log_dir / f"node{index}.log", "/v1/models", env)


def router_command() -> str:
    """The vllm-router executable of this environment (the `engine-tests` extra installs it)."""
    here = Path(sys.executable).parent / "vllm-router"
    found = str(here) if here.exists() else shutil.which("vllm-router")
    if not found:
        raise RuntimeError("vllm-router is not installed (pip install vllm-router)")
    return found


def router(nodes: list[ServerProcess], log_dir: Path) -> ServerProcess:
    """vllm-router in front of the nodes, with the flags deploy/ uses (fast health checks)."""
    port = free_port()
    cmd = [router_command(), "--host", "127.0.0.1", "--port", str(port),
           "--worker-urls", *(n.url for n in nodes), "--policy", "round_robin",
           "--health-check-interval-secs", "2", "--health-check-endpoint", "/health",
           "--health-failure-threshold", "1", "--health-success-threshold", "1",
           "--retry-max-retries", "3", "--request-timeout-secs", "600",
           "--worker-startup-timeout-secs", "900"]
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", log_dir / "router.log", "/v1/models")


def gateway(router_url: str, log_dir: Path) -> ServerProcess:
    """`openai-ocr serve --upstream-url ROUTER/v1`: no --model, it learns the nodes' model."""
    port = free_port()
    cmd = serve_command("--engine", "upstream", "--upstream-url", f"{router_url}/v1", "--host", "127.0.0.1",
                        "--port", str(port))
    return ServerProcess(cmd, f"http://127.0.0.1:{port}", log_dir / "gateway.log")


def requests_served(node: ServerProcess) -> float:
    """vLLM's own count of finished requests on a node (its /metrics)."""
    text = httpx.get(f"{node.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.split("{", 1)[0] == "vllm:request_success_total")


def held(node: ServerProcess) -> int:
    """Chat requests the node's API server holds now, arrived and not yet answered (`/load`)."""
    return int(httpx.get(f"{node.url}/load", timeout=10).json()["server_load"])
