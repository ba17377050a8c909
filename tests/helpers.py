"""Helpers shared by the tests: servers on loopback, generated inputs, an SSE reader, settings."""

from __future__ import annotations

import base64
import importlib
import io
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pypdfium2 as pdfium
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image, ImageDraw
from prometheus_client import CollectorRegistry

from openai_ocr.settings import Settings, load_settings

# -- Required parts: skipped on a partial install, a failure in CI ---------------


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str, why: str) -> None:
    message = f"{what} is missing ({why})"
    if in_ci():
        pytest.fail(f"{message}: `make test` installs it, so CI must not skip", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(module: str, why: str = "install the project's extras") -> ModuleType:
    """Import a part `make test` always installs: skip where it is missing, fail under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        _missing(f"Python module {module!r}", f"{why}; {exc}")
        raise  # unreachable: _missing skips or fails


def require_program(name: str) -> str:
    """The path of a program the README's examples use (node, curl): skip, or fail under CI."""
    path = shutil.which(name)
    if path is None:
        _missing(f"program {name!r}", "the README's examples run with it")
        raise AssertionError("unreachable")
    return path

# -- Real servers on loopback --------------------------------------------------

def make_env() -> dict[str, str]:
    """This environment without an outer make's variables: `make test` runs the tests, and a
    make started from them would otherwise print "Entering directory" and inherit its flags."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}


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


@contextmanager
def serve(settings: Settings, engine: Any | None = None) -> Iterator[tuple[str, FastAPI]]:
    """The project's app for `settings` on loopback, with its own metrics registry.

    The engine defaults to the one the settings name (the upstream gateway, or lite). The
    server stops when the block ends, a failing test included. Yields (base URL, app).
    """
    from openai_ocr.cli.serve import choose_engine
    from openai_ocr.server import build_engine, create_app

    engine = engine or build_engine(settings, choose_engine(settings, model_given=False).kind)
    app = create_app(settings, engine, registry=CollectorRegistry())
    with running_server(app) as url:
        yield url, app


def wait_until(condition: Callable[[], bool], timeout_s: float = 10, what: str = "the condition",
               poll_s: float = 0.02) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a deadline, not a sleep window)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(poll_s)


def metric(app: FastAPI, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample of `app`'s own registry (0 before the first count)."""
    return app.state.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def tail_of(path: Path, lines: int = 60) -> str:
    """The last lines of a server's log file ("" while it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_process_server(url: str, proc: subprocess.Popen, timeout_s: float = 60,
                            path: str = "/health", poll_s: float = 0.2,
                            output: Callable[[], str] | None = None,
                            headers: dict[str, str] | None = None) -> None:
    """Poll `url + path` until it answers 200; fail with the process output if it dies.

    `output` gives that output where the process does not write to a pipe (a log file).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with {proc.returncode}" if proc.poll() is not None
                   else f"did not start in {timeout_s:.0f} s")
            if proc.poll() is None:  # stop it first: reading a live process's pipe never ends
                proc.kill()
                proc.wait(timeout=30)
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



# -- PDFs made on the fly -----------------------------------------------------------

def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages: list[tuple[float, float, list[str]]]) -> bytes:
    """A born-digital PDF written by hand (no PDF library): per page (width pt, height pt, lines),
    each line drawn in 20 pt Helvetica, 30 pt apart, from 72 pt below the top."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               "<< /Type /Pages /Kids [{}] /Count {} >>".format(
                   " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages))), len(pages)),
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    for i, (width, height, lines) in enumerate(pages):
        ops = ["BT", "/F1 20 Tf", f"72 {height - 72:g} Td"]
        for n, line in enumerate(lines):
            ops += ([] if n == 0 else ["0 -30 Td"]) + [f"({_pdf_text(line)}) Tj"]
        stream = "\n".join([*ops, "ET"])
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:g} {height:g}] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


SAMPLE_PAGES = 17
"""Pages of `sample_pdf()`: page n is (600 + 10 n) x 800 pt, so a page is known by its size."""


def sample_lines(page: int) -> list[str]:
    """The text drawn on page `page` of `sample_pdf()` (the ground truth of its text layer)."""
    return [f"Sample document, page {page} of {SAMPLE_PAGES}",
            "The quick brown fox jumps over the lazy dog."]


def sample_pdf() -> bytes:
    """A 17-page text PDF; at 144 dpi page n renders (1200 + 20 n) x 1600 px."""
    return text_pdf([(600 + 10 * n, 800, sample_lines(n)) for n in range(1, SAMPLE_PAGES + 1)])


def page_of_width(width_px: int, dpi: int = 144) -> int:
    """Which page of `sample_pdf()` rendered `width_px` wide at `dpi` (inverse of the layout)."""
    points = width_px * 72 / dpi
    return round((points - 600) / 10)


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

ENGINE_API_KEY = "sk-engine-test-7d1e"
"""The vLLM test servers run with `--api-key`: vLLM guards /v1 with it, our plugin the OCR routes."""
ENGINE_AUTH = {"Authorization": f"Bearer {ENGINE_API_KEY}"}

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
