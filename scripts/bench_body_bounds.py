#!/usr/bin/env python
"""What hostile bodies cost the server, and what the body checks cost a normal request.

    python scripts/bench_body_bounds.py micro [--repeat 2000]
    python scripts/bench_body_bounds.py keys [--keys 1000000,2500000] [--code DIR]
    python scripts/bench_body_bounds.py slow [--connections 1000] [--byte-every 5] [--code DIR]

`micro`: CPU microseconds (timeit, one thread) of `check_json_bounds` on ordinary bodies (an
/ocr body holding a 1 and a 2 MB base64 page, a chat body with a data URL, a full /ocr/batch)
and of the request limit plus body deadline middleware on a 1 MB body received in 64 KiB
messages, against the same app without them.

`keys` and `slow` start a fake upstream in this process and `openai-ocr serve --upstream-url`
as a child process (default settings), all on 127.0.0.1. `keys` posts bodies of N distinct
unknown keys to /ocr while /live is asked over a kept-alive connection, and prints the
answer, its time, the longest /live wait and the server's resident memory (process tree)
before and after. `slow` opens N connections that send a request head and then one body byte
every few seconds, and prints the /live waits while they hold the request slots, what a
normal request gets meanwhile, when and how the slow requests end, and when a normal request
is served again. `--code DIR` runs the server from another copy of the package (e.g. a
`git archive HEAD` of the old code) for a before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.helpers import b64, free_port, png_bytes, running_server, wait_for_process_server  # noqa: E402


def micro(repeat: int) -> None:
    from openai_ocr.api.middleware.body_deadline import BodyDeadlineMiddleware
    from openai_ocr.api.middleware.concurrency import ConcurrencyLimitMiddleware
    from openai_ocr.inputs.json_bounds import check_json_bounds

    def page(size: int) -> str:
        return b64(os.urandom(size * 3 // 4))

    bodies = {
        "/ocr, 1 MB page": orjson.dumps({"image_base64": page(1 << 20), "prompt": "<image>\nFree OCR."}),
        "/ocr, 2 MB page": orjson.dumps({"image_base64": page(2 << 20), "prompt": "<image>\nFree OCR."}),
        "chat, 2 MB data URL": orjson.dumps({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + page(2 << 20)}},
            {"type": "text", "text": "Free OCR."}]}]}),
        "/ocr/batch, 100 x 20 KB": orjson.dumps({"requests": [
            {"image_base64": page(20_000), "prompt": "<image>\nFree OCR.", "mode": "free_ocr",
             "temperature": 0, "max_tokens": 100} for _ in range(100)]}),
    }
    print("check_json_bounds (limits 20000 items, depth 64):")
    for name, body in bodies.items():
        seconds = timeit.timeit(lambda body=body: check_json_bounds(body, 20_000, 64), number=repeat) / repeat
        parse = timeit.timeit(lambda body=body: orjson.loads(body), number=max(1, repeat // 10)) / max(1, repeat // 10)
        print(f"  {name:26s} {len(body) / 1e6:5.2f} MB  {seconds * 1e6:7.1f} us"
              f"   (orjson.loads: {parse * 1e6:7.1f} us)")

    body = bodies["/ocr, 1 MB page"]
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ConcurrencyLimitMiddleware(BodyDeadlineMiddleware(app, 10.0, 8192), 1000)
    scope = {"type": "http", "path": "/ocr", "method": "POST",
             "headers": [(b"content-length", str(len(body)).encode())]}

    async def one(target: Any) -> None:
        queue = iter([{"type": "http.request", "body": c, "more_body": i + 1 < len(chunks)}
                      for i, c in enumerate(chunks)])

        async def receive() -> Any:
            return next(queue)

        async def send(message: Any) -> None:
            pass

        await target(scope, receive, send)

    async def run(target: Any, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await one(target)
        return (time.perf_counter() - started) / n

    n = repeat * 5
    bare = min(asyncio.run(run(app, n)) for _ in range(3))
    limited = min(asyncio.run(run(wrapped, n)) for _ in range(3))
    print(f"request limit + body deadline, 1 MB body in {len(chunks)} messages: "
          f"{(limited - bare) * 1e6:.1f} us per request ({bare * 1e6:.1f} us bare, {limited * 1e6:.1f} us wrapped)")


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return out


def rss_mib(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Server:
    def __init__(self, code: str | None, env: dict[str, str] | None = None) -> None:
        self.fake = FakeUpstream()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.code = code
        self.env = env or {}

    def __enter__(self) -> Server:
        self._upstream = running_server(self.fake.app)
        upstream_url = self._upstream.__enter__()
        self.folder = tempfile.TemporaryDirectory(prefix="bench-body-")
        env = {**os.environ, "OPENAI_OCR_STORAGE__DIR": self.folder.name, **self.env}
        env["PYTHONPATH"] = self.code or str(ROOT)
        self.log = open(Path(self.folder.name) / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url", f"{upstream_url}/v1",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=self.folder.name, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_process_server(self.url, self.proc, path="/live",
                                output=lambda: (Path(self.folder.name) / "server.log").read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        self._upstream.__exit__(None, None, None)
        self.folder.cleanup()


class LiveProbe(threading.Thread):
    """/live over one kept-alive connection, again and again, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.waits: list[float] = []
        self.started = time.monotonic()
        self.longest_at = 0.0
        self.statuses: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(f"{self.url}/live").status_code
                except httpx.HTTPError:
                    status = 0
                self.waits.append(time.perf_counter() - started)
                if self.waits[-1] >= max(self.waits):
                    self.longest_at = time.monotonic() - self.started
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.stop.wait(0.05)

    def report(self) -> str:
        if not self.waits:
            return "no /live answer"
        return (f"/live: {len(self.waits)} asked, statuses {self.statuses}, longest {max(self.waits) * 1000:.0f} ms"
                f" (ending {self.longest_at:.1f} s after the probes began), median "
                f"{statistics.median(self.waits) * 1000:.1f} ms, 99th percentile "
                f"{sorted(self.waits)[int(len(self.waits) * 0.99)] * 1000:.0f} ms")


def keys(counts: list[int], code: str | None) -> None:
    image = b64(png_bytes())
    with Server(code) as server:
        for count in counts:
            body = (orjson.dumps({"image_base64": image})[:-1] + b","
                    + b",".join(b'"k%d":0' % i for i in range(count)) + b"}")
            before = rss_mib(server.proc.pid)
            probe = LiveProbe(server.url)
            probe.start()
            started = time.perf_counter()
            r = httpx.post(f"{server.url}/ocr", content=body, headers={"content-type": "application/json"},
                           timeout=600)
            elapsed = time.perf_counter() - started
            probe.stop.set()
            probe.join()
            print(f"{count} keys ({len(body) / 2**20:.1f} MiB): {r.status_code} in {elapsed:.2f} s, "
                  f"{len(r.content)} bytes of answer; {probe.report()}; RSS {before:.0f} -> "
                  f"{rss_mib(server.proc.pid):.0f} MiB")


def slow(connections: int, byte_every: float, code: str | None) -> None:
    page = {"image_base64": b64(png_bytes())}
    head = (b"POST /ocr HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{")
    with Server(code) as server, httpx.Client(timeout=60) as client:
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(connections)]
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(byte_every):
                for sock in socks:
                    try:
                        sock.send(b" ")
                    except OSError:
                        pass

        for sock in socks:
            sock.sendall(head)
        sent = time.monotonic()
        threading.Thread(target=trickle, daemon=True).start()
        probe = LiveProbe(server.url)
        probe.start()
        r = client.post(f"{server.url}/ocr", json=page)
        print(f"{connections} slow bodies (a byte every {byte_every:g} s): a normal /ocr during the attack: "
              f"{r.status_code} {r.headers.get('content-type')} retry-after={r.headers.get('retry-after')} "
              f"{r.text[:120]!r}")
        ended: dict[int, list[float]] = {}
        open_ = set(socks)
        while open_ and time.monotonic() - sent < 120:
            ready, _, _ = select.select(list(open_), [], [], 1.0)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 "):
                    ended.setdefault(int(data.split()[1]), []).append(time.monotonic() - sent)
                if not data:
                    open_.discard(sock)
        probe.stop.set()
        probe.join()
        stop.set()
        for status, times in sorted(ended.items()):
            print(f"  {len(times)} slow requests answered {status}, "
                  f"{min(times):.1f}-{max(times):.1f} s after their head")
        print(f"  {len(open_)} connections still open after 120 s")
        print(f"  during the attack {probe.report()}")
        started = time.monotonic()
        while (r := client.post(f"{server.url}/ocr", json=page)).status_code != 200:
            if time.monotonic() - started > 120:
                break
            time.sleep(0.1)
        print(f"  a normal /ocr after: {r.status_code}, {time.monotonic() - sent:.1f} s after the attack began")
        for sock in socks:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("micro").add_argument("--repeat", type=int, default=2000)
    k = sub.add_parser("keys")
    k.add_argument("--keys", default="1000000,2500000")
    k.add_argument("--code")
    s = sub.add_parser("slow")
    s.add_argument("--connections", type=int, default=1000)
    s.add_argument("--byte-every", type=float, default=5.0)
    s.add_argument("--code")
    args = parser.parse_args()
    if args.what == "micro":
        micro(args.repeat)
    elif args.what == "keys":
        keys([int(n) for n in args.keys.split(",")], args.code)
    else:
        slow(args.connections, args.byte_every, args.code)


if __name__ == "__main__":
    main()
