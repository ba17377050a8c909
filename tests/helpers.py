"""Helpers shared by the tests: servers on loopback, generated inputs, an SSE reader, settings."""

from __future__ import annotations

import base64
import io
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pypdfium2 as pdfium
import uvicorn
from PIL import Image, ImageDraw

from openai_ocr.settings import Settings, load_settings

# -- Real servers on loopback --------------------------------------------------

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



# -- Images made on the fly (no files, no downloads) ---------------------------

def png_bytes(width: int = 64, height: int = 48, text: str = "Hi") -> bytes:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).text((4, 4), text, fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "gray").save(out, format="JPEG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but holds none: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")



# -- PDFs: the born-digital PDF every machine has, and PDFs made on the fly ----

SYSTEM_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")


def system_pdf() -> bytes:
    return SYSTEM_PDF.read_bytes()


def blank_pdf(pages: int, width: float = 200, height: float = 100) -> bytes:
    doc = pdfium.PdfDocument.new()
    for _ in range(pages):
        doc.new_page(width, height)
    out = io.BytesIO()
    doc.save(out)
    doc.close()
    return out.getvalue()


def encrypted_pdf() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_size_of(data_url: str) -> tuple[int, int]:
    from PIL import Image

    data = base64.b64decode(data_url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return image.size



# -- A spec-following Server-Sent Events reader (WHATWG event-stream parsing) --

def parse_sse(lines: Iterable[str]) -> list[str]:
    """The `data` of each event, multi-line data joined with "\\n", comments skipped."""
    events: list[str] = []
    data: list[str] | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data is not None:
                events.append("\n".join(data))
            data = None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data = (data or []) + [value]
    if data is not None:
        events.append("\n".join(data))
    return events



SERVED_NAME = "deepseek-ai/DeepSeek-OCR"
"""The model name the test servers serve."""

#: vLLM start flags for the tiny checkpoint on a small CPU machine; without them start-up
#: profiling times out (docs/vllm-engine-notes.md)
ENGINE_FLAGS = [
    "--load-format", "dummy",
    "--dtype", "float32",
    "--skip-mm-profiling",
    "--enforce-eager",
    "--limit-mm-per-prompt", '{"image": 1}',
    "--max-num-seqs", "4",
    "--max-model-len", "4096",
]


# -- Settings ----------------------------------------------------------------------------

def gateway_settings(upstream_url: str, **sections: dict) -> Settings:
    """Settings of a gateway in front of `upstream_url` (no retries, the model named), sections
    overridden."""
    overrides: dict = {"upstream": {"url": upstream_url, "max_retries": 0},
                       "engine": {"model": SERVED_NAME}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(overrides=overrides)
