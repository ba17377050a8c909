"""Run an ASGI app under a real uvicorn server on loopback, in a background thread."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields the base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for_process_server(url: str, proc: subprocess.Popen, timeout_s: float = 60,
                            path: str = "/health", poll_s: float = 0.2,
                            output: Callable[[], str] | None = None) -> None:
    """Poll `url + path` until it answers 200; fail with the process output if it dies.

    `output` gives that output where the process does not write to a pipe (a log file).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with {proc.returncode}" if proc.poll() is not None
                   else f"did not start in {timeout_s:.0f} s")
            text = output() if output else (proc.stdout.read() if proc.stdout else "")
            raise AssertionError(f"server at {url} {why}:\n{text}")
        time.sleep(poll_s)
