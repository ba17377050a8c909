"""Peak memory of a server process and the processes below it, sampled from /proc (Linux):
the measuring scripts' shared part (scripts/measure_*.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_for_process_server  # noqa: E402


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak RSS of the server alone, of its largest helper process, and of all together."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.peak = {"server": 0, "helper": 0, "total": 0}

    def run(self) -> None:
        while not self.stop.is_set():
            sizes = {pid: rss_kib(pid) for pid in descendants(self.root)}
            helpers = [size for pid, size in sizes.items() if pid != self.root]
            for key, value in (("server", sizes.get(self.root, 0)), ("helper", max(helpers, default=0)),
                               ("total", sum(sizes.values()))):
                self.peak[key] = max(self.peak[key], value)
            self.stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()

    def mib(self) -> dict[str, float]:
        return {key: value / 1024 for key, value in self.peak.items()}


@contextlib.contextmanager
def gateway_process(upstream_url: str, folder: str, *flags: str) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """`openai-ocr serve --upstream-url` as a child process keeping its state in `folder`,
    its log there (server.log); yields (base URL, process) once it answers, stops it after."""
    port = free_port()
    log = Path(folder) / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_OCR_STORAGE__DIR": folder}
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url", upstream_url,
             "--host", "127.0.0.1", "--port", str(port), *flags], env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_process_server(url, server, output=log.read_text)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=60)
