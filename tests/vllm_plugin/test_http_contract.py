"""vllm mode keeps the project's HTTP contract: the endpoint plugin wraps vLLM's whole app.

Body-size limit before the body is read, X-Request-ID on our routes and vLLM's, the error
shape for wrong content types and unknown routes. None of these requests reach the engine.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import httpx

from tests.helpers import ENGINE_AUTH, SERVED_NAME, png_bytes

TIMEOUT = httpx.Timeout(60.0)


def test_a_60_mib_upload_is_413_before_it_is_read_whole(vllm_server: str) -> None:
    """Only 1 MiB of the declared 60 MiB is ever sent, and the 413 still comes back."""
    address = urlparse(vllm_server)
    declared = 60 * 1024 * 1024
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(b"POST /ocr/file HTTP/1.1\r\nHost: test\r\n"
                     + f"Authorization: {ENGINE_AUTH['Authorization']}\r\n".encode()
                     + b"Content-Type: multipart/form-data; boundary=xyz\r\n"
                     + f"Content-Length: {declared}\r\n\r\n".encode() + b"\0" * (1024 * 1024))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"x-request-id:" in answer.lower()


def test_a_streamed_body_over_the_limit_is_413(vllm_server: str) -> None:
    def body():  # no Content-Length: counted while it streams in
        for _ in range(60):
            yield b"\0" * (1024 * 1024)

    r = httpx.post(f"{vllm_server}/v1/chat/completions", content=body(), timeout=TIMEOUT,
                   headers={"content-type": "application/json", **ENGINE_AUTH})
    assert r.status_code == 413
    # raised inside vLLM's route while it reads the body, so vLLM's handler shapes it
    assert r.json()["error"]["message"]


def test_request_ids_are_echoed_on_our_routes_and_vllms(vllm_server: str) -> None:
    ours = httpx.post(f"{vllm_server}/ocr", json={"image_base64": "!!"}, timeout=TIMEOUT,
                      headers={"X-Request-ID": "ours-1", **ENGINE_AUTH})
    assert ours.status_code == 400 and ours.headers["x-request-id"] == "ours-1"
    theirs = httpx.post(f"{vllm_server}/v1/chat/completions", timeout=TIMEOUT,
                        headers={"X-Request-ID": "theirs-1", **ENGINE_AUTH},
                        json={"model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}],
                              "max_tokens": -1})
    assert 400 <= theirs.status_code < 500
    assert theirs.headers.get_list("x-request-id") == ["theirs-1"]
    generated = httpx.get(f"{vllm_server}/v1/models", timeout=TIMEOUT, headers=ENGINE_AUTH)
    assert len(generated.headers["x-request-id"]) >= 16


def test_a_file_posted_to_ocr_is_a_4xx_json_error(vllm_server: str) -> None:
    r = httpx.post(f"{vllm_server}/ocr", files={"file": ("page.png", png_bytes(), "image/png")},
                   timeout=TIMEOUT, headers=ENGINE_AUTH)
    assert r.status_code == 415, r.text
    assert "/ocr/file" in r.json()["error"]["message"]


def test_unknown_routes_answer_in_the_error_shape(vllm_server: str) -> None:
    r = httpx.get(f"{vllm_server}/no-such-route", timeout=TIMEOUT)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no route GET /no-such-route; the routes are listed at /docs"
