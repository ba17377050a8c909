"""A local cluster for the scale-out test: N vLLM engine nodes, vllm-router, our gateway.

Each part is a real process on loopback, started the way the deploy files start it
(`deploy/`): the nodes with `openai-ocr serve MODEL` (here `python -m
openai_ocr.vllm_plugin.launcher`, the same code, on the tiny checkpoint), the router with
`vllm-router --worker-urls ...`, the gateway with `openai-ocr serve --upstream-url`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import ENGINE_FLAGS, SERVED_NAME, free_port, tail_of, wait_for_process_server

START_TIMEOUT_S = float(os.environ.get("OPENAI_OCR_ENGINE_START_TIMEOUT", "900"))



@dataclass
class Process:
    """One started server process, its command and log, restartable after a kill."""

    name: str
    cmd: list[str]
    url: str
    ready_path: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # cwd outside the checkout: an egg-info there would shadow the installed entry points
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env}, cwd=self.log_dir,
                                         start_new_session=True)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        wait_for_process_server(self.url, self.proc, timeout_s, path=self.ready_path, poll_s=0.5,
                                output=lambda: tail_of(self.log_path))

    def kill(self) -> None:
        """SIGKILL the whole process group, as a node whose machine dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    nodes: list[Process]
    router: Process
    gateway: Process


def engine_node(checkpoint: Path, index: int, log_dir: Path) -> Process:
    """An engine node pinned to one core (`VLLM_CPU_OMP_THREADS_BIND`), as one GPU node."""
    port = free_port()
    cmd = [sys.executable, "-m", "openai_ocr.vllm_plugin.launcher", str(checkpoint), *ENGINE_FLAGS,
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED_NAME]
    cores = os.cpu_count() or 1
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": str(index % cores)}
    return Process(f"node{index}", cmd, f"http://127.0.0.1:{port}", "/v1/models", log_dir, env)


def router_command() -> str:
    """The vllm-router executable of this environment (the `engine-tests` extra installs it)."""
    here = Path(sys.executable).parent / "vllm-router"
    found = str(here) if here.exists() else shutil.which("vllm-router")
    if not found:
        raise RuntimeError("vllm-router is not installed (pip install vllm-router)")
    return found


def router(nodes: list[Process], log_dir: Path) -> Process:
    """vllm-router in front of the nodes, with the flags deploy/ uses (fast health checks)."""
    port = free_port()
    cmd = [router_command(), "--host", "127.0.0.1", "--port", str(port),
           "--worker-urls", *(n.url for n in nodes), "--policy", "round_robin",
           "--health-check-interval-secs", "2", "--health-check-endpoint", "/health",
           "--health-failure-threshold", "1", "--health-success-threshold", "1",
           "--retry-max-retries", "3", "--request-timeout-secs", "600",
           "--worker-startup-timeout-secs", "900"]
    return Process("router", cmd, f"http://127.0.0.1:{port}", "/v1/models", log_dir)


def gateway(router_url: str, log_dir: Path) -> Process:
    """`openai-ocr serve --upstream-url ROUTER/v1`: no --model, it learns the nodes' model."""
    port = free_port()
    cmd = [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--engine", "upstream",
           "--upstream-url", f"{router_url}/v1", "--host", "127.0.0.1", "--port", str(port)]
    return Process("gateway", cmd, f"http://127.0.0.1:{port}", "/health", log_dir)


def metric(node: Process, name: str) -> float:
    """The sum of a vLLM metric's samples on a node (its /metrics)."""
    text = httpx.get(f"{node.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def requests_served(node: Process) -> float:
    """vLLM's own count of finished requests on a node."""
    return metric(node, "vllm:request_success_total")
