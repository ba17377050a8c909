"""Slow request bodies cannot take the server: a body deadline (408, connection closed), a
request limit of our own that answers a JSON 503 with Retry-After, and probes that answer
while every request slot is taken.

Audit row 3: 1,000 connections sending a body at 1 byte per 5 s filled uvicorn's
`limit_concurrency`; every client, `/live` included, got uvicorn's plain-text 503 for as
long as the slow clients lasted, since no time-out covered reading a body. This runs a real
`openai-ocr serve` process (uvicorn's own settings matter) with a small request limit and a
short body time-out, and 300 loopback connections trickling their bodies.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ServerProcess,
    b64,
    free_port,
    gateway_settings,
    make_env,
    png_bytes,
    serve,
    serve_command,
    tail_of,
    wait_until,
)

CONNECTIONS = 300
LIMIT = 100
BODY_TIMEOUT_S = 8
HEAD = (b"POST /ocr HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{")


def answer_of(raw: bytes) -> tuple[int, dict[str, str], dict]:
    """(status, headers, JSON body) of one HTTP answer read whole."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def read_until_closed(socks: list[socket.socket], timeout_s: float) -> dict[socket.socket, bytes]:
    """Everything each socket receives until the server closes it (all within `timeout_s`)."""
    received = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + timeout_s
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_), [], [], 1.0)
        for sock in ready:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                received[sock] += chunk
            else:
                open_.discard(sock)
    assert not open_, f"{len(open_)} connections still open after {timeout_s} s"
    return received


def test_slow_bodies_time_out_and_never_take_the_probes(tmp_path: Path,
                                                        fake_upstream: tuple[FakeUpstream, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**make_env(), "OPENAI_OCR_CONNECTIONS__LIMIT_CONCURRENCY": str(LIMIT),
           "OPENAI_OCR_CONNECTIONS__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
           "OPENAI_OCR_CONNECTIONS__BODY_MIN_RATE": "1000", "OPENAI_OCR_BUDGET__DECODE_WORKERS": "0"}
    log = tmp_path / "server.log"
    page = {"image_base64": b64(png_bytes())}
    with ServerProcess(serve_command("--upstream-url", fake_upstream[1], "--host", "127.0.0.1",
                                     "--port", str(port)), url, log, ready_path="/live", env=env), \
            httpx.Client(timeout=30) as client:
        assert client.post(f"{url}/ocr", json=page).status_code == 200
        socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CONNECTIONS)]
        stop = threading.Event()

        def trickle() -> None:  # the attack's pace: one more byte per connection each second
            while not stop.wait(1.0):
                for sock in socks:
                    try:
                        sock.send(b" ")
                    except OSError:
                        pass

        sender = threading.Thread(target=trickle, daemon=True)
        try:
            for sock in socks:
                sock.sendall(HEAD)
            sender.start()
            started = time.monotonic()
            # Once the server has read the heads, every request slot is held by a slow body: a
            # normal request is a JSON 503.
            answers: list[httpx.Response] = []
            wait_until(lambda: answers.append(client.post(f"{url}/ocr", json=page))
                       or answers[-1].status_code == 503, 30, "the request slots full")
            busy = answers[-1]
            assert busy.headers["content-type"] == "application/json", (busy.text[:300], tail_of(log))
            assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == 503
            # The probes have slots of their own.
            waits = []
            for probe in ["/live", "/ready", "/health", "/metrics"] * 5:
                asked = time.perf_counter()
                assert client.get(f"{url}{probe}").status_code == 200, probe
                waits.append(time.perf_counter() - asked)
            assert max(waits) < 1.0, waits
            still_busy = client.post(f"{url}/ocr", json=page)
            assert time.monotonic() - started < BODY_TIMEOUT_S, "too slow a machine: the bodies timed out already"
            assert still_busy.status_code == 503, still_busy.text[:300]
            # The slow bodies end with a JSON 408 (or were refused at once with the 503), and
            # the server closes every one of these connections though they keep sending.
            ended = [answer_of(raw) for raw in read_until_closed(socks, 60).values()]
        finally:
            stop.set()
            sender.join(timeout=30)
            for sock in socks:
                sock.close()
        statuses = [status for status, _, _ in ended]
        timed_out = statuses.count(408)
        assert statuses.count(503) + timed_out == CONNECTIONS, sorted(set(statuses))
        assert LIMIT - 5 <= timed_out <= LIMIT, timed_out
        for status, headers, body in ended:
            assert body["error"]["code"] == status and headers["connection"] == "close"
            if status == 503:
                assert headers["retry-after"] == "1"
        # Once the slow bodies are gone, a normal request is served again.
        wait_until(lambda: client.post(f"{url}/ocr", json=page).status_code == 200, 30,
                   "a normal request served after the slow bodies")


def test_a_body_past_its_deadline_is_a_408_that_closes_the_connection(
        fake_upstream: tuple[FakeUpstream, str]) -> None:
    settings = gateway_settings(fake_upstream[1], connections={"body_timeout_s": 0.5, "body_min_rate": 1000})
    with serve(settings) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(HEAD)
            raw = read_until_closed([sock], 30)[sock]
    status, headers, body = answer_of(raw)
    assert status == 408 and headers["connection"] == "close", raw[:300]
    assert "connections.body_timeout_s" in body["error"]["message"]


def test_an_answer_before_the_body_is_read_closes_the_connection(gateway: str) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(HEAD.replace(b"POST /ocr", b"POST /v1/nothing"))
        raw = read_until_closed([sock], 30)[sock]
    status, headers, _ = answer_of(raw)
    assert status == 404 and headers["connection"] == "close", raw[:300]
