"""A corpus of hostile and broken inputs: each gets its designed 4xx with a JSON body, and the
server answers a normal request afterwards."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, blank_pdf, encrypted_pdf, http_answer, jpeg_bytes, png_bytes, png_header_only

PNG = png_bytes()


def gif_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, format="GIF")
    return out.getvalue()


def files(name: str, data: bytes, mime: str = "application/octet-stream") -> dict:
    return {"files": {"file": (name, data, mime)}}


CORPUS: list[tuple[str, str, dict, int]] = [
    ("truncated png", "/ocr/file", files("t.png", PNG[: len(PNG) // 2], "image/png"), 400),
    ("truncated jpeg", "/ocr/file", files("t.jpg", jpeg_bytes(400, 300)[:300], "image/jpeg"), 400),
    ("20000x20000 png", "/ocr/file", files("big.png", png_header_only(20000, 20000)), 413),
    ("empty file", "/ocr/file", files("e.png", b""), 400),
    ("text file", "/ocr/file", files("notes.txt", b"hello\n", "text/plain"), 400),
    ("svg", "/ocr/file", files("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), 400),
    ("zip", "/ocr/file", files("x.zip", b"PK\x03\x04" + b"\0" * 100), 400),
    ("json to multipart route", "/ocr/file", {"json": {"image_base64": b64(PNG)}}, 415),
    ("form to json route", "/ocr", {"data": {"image_base64": b64(PNG)}}, 415),
    ("text/plain body", "/ocr", {"content": b"image", "headers": {"content-type": "text/plain"}}, 415),
    ("invalid base64", "/ocr", {"json": {"image_base64": "%%%%"}}, 400),
    ("base64 of text", "/ocr", {"json": {"image_base64": b64(b"just words")}}, 400),
    ("non-base64 data url", "/ocr", {"json": {"image_base64": "data:image/png,abc"}}, 400),
    ("both inputs", "/ocr", {"json": {"image_base64": b64(PNG), "document_base64": b64(PNG)}}, 422),
    ("image_base64 not a string", "/ocr", {"json": {"image_base64": 12}}, 422),
    ("negative max_tokens", "/ocr", {"json": {"image_base64": b64(PNG), "max_tokens": -5}}, 422),
    ("zero max_tokens", "/ocr", {"json": {"image_base64": b64(PNG), "max_tokens": 0}}, 422),
    ("huge max_tokens", "/ocr", {"json": {"image_base64": b64(PNG), "max_tokens": 10**12}}, 400),
    ("temperature 9", "/ocr", {"json": {"image_base64": b64(PNG), "temperature": 9}}, 422),
    ("unknown mode", "/ocr", {"json": {"image_base64": b64(PNG), "mode": "sing"}}, 422),
    ("pdf with 2000 pages", "/ocr/file", files("b.pdf", blank_pdf(2000)), 413),
    ("encrypted pdf", "/ocr/file", files("e.pdf", encrypted_pdf()), 400),
    ("corrupt pdf", "/ocr/file", files("c.pdf", b"%PDF-1.4\n1 0 obj <<>>"), 400),
    ("pages beyond pdf", "/ocr/file", {**files("p.pdf", blank_pdf(3)), "data": {"pages": "4"}}, 400),
    ("batch of 101", "/ocr/batch", {"json": {"requests": [{"image_base64": b64(PNG)}] * 101}}, 413),
    ("batch not a list", "/ocr/batch", {"json": {"requests": "all"}}, 422),
    ("empty batch", "/ocr/batch", {"json": {"requests": []}}, 422),
    ("chat without messages", "/v1/chat/completions", {"json": {"model": "m"}}, 422),
    ("chat file without data", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {}}]}]}}, 400),
    ("chat unknown file id", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-123"}}]}]}}, 404),
    ("ocr unknown file id", "/ocr", {"json": {"file_id": "file-123"}}, 404),
    ("ocr file id and image", "/ocr", {"json": {"file_id": "file-123", "image_base64": b64(PNG)}}, 422),
    ("chat two files", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": b64(blank_pdf(1))}},
        {"type": "file", "file": {"file_data": b64(blank_pdf(1))}}]}]}}, 400),
    ("chat image not an image", "/v1/chat/completions", {"json": {"messages": [{"role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(b"no")}},
                    {"type": "text", "text": "Free OCR."}]}]}}, 400),
    ("chat image bomb", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                            + b64(png_header_only(20000, 20000))}}]}]}}, 413),
    ("chat huge max_tokens", "/v1/chat/completions", {"json": {"messages": [{"role": "user",
        "content": "hi"}], "max_tokens": 10**9}}, 400),
]


@pytest.mark.parametrize("name, path, kwargs, status", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_gets_its_designed_status(gateway: str, upstream: FakeUpstream, name: str, path: str,
                                            kwargs: dict, status: int) -> None:
    r = httpx.post(f"{gateway}{path}", timeout=60, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["message"]
    assert upstream.requests == []


def test_unicode_prompt_passes_through(gateway: str, upstream: FakeUpstream) -> None:
    prompt = "Lis le texte \u00e9\u00e8 \u6587\u5b57 \U0001f4c4 \u202e"
    r = httpx.post(f"{gateway}/ocr", json={"image_base64": b64(PNG), "prompt": prompt})
    assert r.status_code == 200
    assert upstream.requests[0]["messages"][0]["content"][1]["text"] == prompt.strip()


def test_100_mb_body_is_refused_without_reading_it(gateway: str, upstream: FakeUpstream) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"image_base64": "'
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            yield chunk
        yield b'"}'

    try:
        r = httpx.post(f"{gateway}/ocr", content=body(), timeout=60,
                       headers={"content-type": "application/json"})
    except httpx.TransportError:
        pass  # the server may close the connection while the client still sends
    else:
        assert r.status_code == 413
    # declared 100 MB, nothing sent: the answer comes from the header alone
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /ocr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(100 << 20).encode() + b"\r\n\r\n")
        answer = http_answer(sock).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and '"code": 413' in answer
    assert httpx.post(f"{gateway}/ocr", json={"image_base64": b64(PNG)}).status_code == 200


def test_gif_and_other_formats_still_work(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("a.gif", gif_bytes(), "image/gif")})
    assert r.status_code == 200
    url = upstream.requests[0]["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
