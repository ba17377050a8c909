"""Helpers shared by the tests: servers on loopback and in processes of their own, generated
inputs (images, multi-frame files, PDFs), an SSE reader, settings, the Files and Batch API,
the README's commands.

Test modules take shared code from here and from the sibling helper modules (fake_upstream,
scripted_upstream, refusals, skip_policy), fixtures from conftest.py, never from each other
(tests/test_suite_layout.py checks it).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def require_file(path: str | Path, package: str) -> Path:
    """A system file a test draws with (a font): skip where it is missing, fail under CI, where
    `make test` installs the Debian `package` that holds it."""
    found = Path(path)
    if not found.is_file():
        _missing(f"file {found}", f"apt-get install {package}; `make test` installs it")
    return found

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
    deadline = time.monotonic() + 180  # the lite engine loads its models at start-up
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


def leave_when(condition: Callable[[], bool], what: str, url: str, **request: Any) -> None:
    """POST to `url`, then close the connection without waiting for the answer once
    `condition` holds (the upstream saw the request): a client that leaves, at the moment
    the test means rather than after a time-out that may come too early on a busy machine."""
    async def leave() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            sent = asyncio.create_task(client.post(url, **request))
            await asyncio.to_thread(wait_until, lambda: condition() or sent.done(), 30, what)
            assert not sent.done(), f"answered before the client left: {sent.result().text[:300]}"
            sent.cancel()
            await asyncio.gather(sent, return_exceptions=True)

    asyncio.run(leave())


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



@dataclass
class ServerProcess:
    """A server run as a process of its own (the CLI, the vLLM launcher, vllm-router), its
    output in a log file: started, waited for, stopped. `with` starts it and waits until
    `ready_path` answers 200; leaving the block stops it, a failing test included.

    It gets a process group of its own, so `kill` and `stop` reach its children too (decoder
    pools, vLLM's engine core), as when the machine it runs on dies or shuts down.
    """

    cmd: list[str]
    url: str
    log_path: Path
    ready_path: str = "/health"
    env: dict[str, str] | None = None
    """The whole environment (None: this process's)."""
    cwd: Path | None = None
    """None: the log's folder, outside the checkout (an egg-info there would shadow the
    installed entry points)."""
    headers: dict[str, str] | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.cwd or self.log_path.parent, start_new_session=True)

    def wait_ready(self, timeout_s: float = 90, poll_s: float = 0.2) -> None:
        assert self.proc is not None, "not started"
        wait_for_process_server(self.url, self.proc, timeout_s, path=self.ready_path, poll_s=poll_s,
                                output=lambda: tail_of(self.log_path), headers=self.headers)

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM the group (a clean shutdown), SIGKILL it past `timeout_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_command(*args: str) -> list[str]:
    """`openai-ocr serve ARGS` of this checkout, run by this interpreter."""
    return [sys.executable, "-m", "openai_ocr.cli.main", "serve", *args]


def http_answer(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 answer read from `sock`: its head, then the body its Content-Length
    declares (or up to the close). A single recv may return any part of it."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lengths = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
               if line.lower().startswith(b"content-length:")]
    while not lengths or len(body) < lengths[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


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


def png_of(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def image_messages(image: bytes, text: str = "Free OCR.") -> list[dict[str, Any]]:
    """Chat messages as DeepSeek-OCR clients send them: one image part, then the prompt."""
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image)}},
                                         {"type": "text", "text": text}]}]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but holds none: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")



def text_frames_tiff(count: int) -> bytes:
    """Frame i reads "FRAME NUMBER i" and is 200 + i pixels wide (its signature)."""
    frames = []
    for i in range(1, count + 1):
        frame = Image.new("L", (200 + i, 40), 255)
        ImageDraw.Draw(frame).text((5, 12), f"FRAME NUMBER {i}", fill=0)
        frames.append(frame)
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def many_ifd_tiff(count: int) -> bytes:
    """A TIFF whose IFD chain has `count` 1x1 frames (tiny file, huge frame count)."""
    header = b"II*\x00" + struct.pack("<I", 8)
    ifds = bytearray()
    base = 8
    pixel_at = base + count * (2 + 4 * 12 + 4)
    for i in range(count):
        start = base + len(ifds)
        entries = [(256, 4, 1, 1), (257, 4, 1, 1), (273, 4, 1, pixel_at), (279, 4, 1, 1)]
        ifds += struct.pack("<H", len(entries))
        for tag, kind, n, value in entries:
            ifds += struct.pack("<HHII", tag, kind, n, value)
        next_at = start + 2 + len(entries) * 12 + 4 if i + 1 < count else 0
        ifds += struct.pack("<I", next_at)
    return header + bytes(ifds) + b"\x00"


def gif_with_frames(count: int, width: int, height: int) -> bytes:
    """A GIF with a `width` x `height` canvas and `count` 1x1 frames (a few bytes each)."""
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + frame * count + b"\x3b")



# -- PDFs made on the fly -----------------------------------------------------------

def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


HELVETICA = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def pdf_of(pages: list[tuple[float, float, bytes]], font: bool = False) -> bytes:
    """A PDF written by hand (no PDF library): per page (width pt, height pt, content stream);
    with `font`, every page's resources name Helvetica as /F1."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
               HELVETICA.encode() if font else b"<< >>"]
    resources = "/Resources << /Font << /F1 3 0 R >> >> " if font else ""
    for i, (width, height, stream) in enumerate(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:g} {height:g}] "
                       f"{resources}/Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def text_pdf(pages: list[tuple[float, float, list[str]]]) -> bytes:
    """A born-digital PDF: per page (width pt, height pt, lines), each line drawn in 20 pt
    Helvetica, 30 pt apart, from 72 pt below the top."""
    streams = []
    for width, height, lines in pages:
        ops = ["BT", "/F1 20 Tf", f"72 {height - 72:g} Td"]
        for n, line in enumerate(lines):
            ops += ([] if n == 0 else ["0 -30 Td"]) + [f"({_pdf_text(line)}) Tj"]
        streams.append((width, height, "\n".join([*ops, "ET"]).encode("latin-1")))
    return pdf_of(streams, font=True)


def heavy_pdf(pages: int, paths: int, side: int = 9) -> bytes:
    """A PDF whose A4-ish pages hold `paths` filled triangles each, `side` pt wide: slow to
    render, small to send (the cost grows with the area filled: 30,000 of 150 pt take
    pdfium about 4 s a page at 144 dpi here, of 9 pt 0.2 s)."""
    triangles = "".join(f"{(i * 37) % 590} {(i * 53) % 830} m {(i * 37) % 590 + side} {(i * 53) % 830} l "
                        f"{(i * 37) % 590 + side // 2} {(i * 53) % 830 + side} l f\n" for i in range(paths)).encode()
    return pdf_of([(600, 840, triangles)] * pages)


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

OCR2_SERVED_NAME = "tiny-ocr-2"
"""The name the engine tests' DeepSeek-OCR-2 server serves."""

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


@contextmanager
def store_gateway(upstream_url: str, store: Path, **sections: dict[str, Any]) -> Iterator[str]:
    """A gateway keeping its files and batches in `store`, its batch runner polling often;
    yields its base URL."""
    sections.setdefault("storage", {})["dir"] = str(store)
    sections.setdefault("batches", {}).setdefault("poll_interval_s", 0.05)
    with serve(gateway_settings(upstream_url, **sections)) as (url, _):
        yield url


@contextmanager
def scripted_gateway(**upstream: Any) -> Iterator[tuple[str, Any]]:
    """A gateway (upstream settings overridden: retries, time-out) in front of a
    tests/scripted_upstream.py node that fails as each test tells it; yields (URL, upstream)."""
    from tests.scripted_upstream import scripted_upstream

    with scripted_upstream() as node, serve(gateway_settings(node.url, upstream=upstream)) as (url, _):
        yield url, node


# -- The Files and Batch API -----------------------------------------------------------------

BATCH_TERMINAL = {"completed", "failed", "expired", "cancelled"}


def openai_client(url: str, key: str = "none") -> Any:
    """The official openai client on `url` (no retries: a failure shows as it happened)."""
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def chat_line(custom_id: str, text: str, file_id: str | None = None) -> dict[str, Any]:
    """A batch line for /v1/chat/completions: an inline page image (or an uploaded file), then `text`."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if file_id:
        content.insert(0, {"type": "file", "file": {"file_id": file_id}})
    else:
        content.insert(0, {"type": "image_url", "image_url": {"url": data_url(png_bytes())}})
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": content}]}}


def wait_until_done(client: Any, batch_id: str, timeout_s: float = 60) -> Any:
    """The batch once it reached a terminal status (a deadline, not a sleep window)."""
    found: list[Any] = []

    def terminal() -> bool:
        found[:] = [client.batches.retrieve(batch_id)]
        return found[0].status in BATCH_TERMINAL

    wait_until(terminal, timeout_s, f"batch {batch_id} ending", poll_s=0.05)
    return found[0]


def output_lines(client: Any, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line]


# -- The README's commands -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
_EXAMPLE_BLOCK = re.compile(r"<!-- example: \S+ -->\n```\w*\n.*?```\n<!-- /example -->", re.S)
_SHELL_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
RUN_LINE = re.compile(r"^(?:#|//) Run: (.+)$", re.M)


def readme_commands() -> list[str]:
    """Every command line of the README, in order: its `bash` blocks (outside the example
    files it shows) and the `# Run:` line of each example."""
    text = (ROOT / "README.md").read_text()
    found: list[tuple[int, str]] = [(m.start(), m.group(1).strip()) for m in RUN_LINE.finditer(text)]
    bare = _EXAMPLE_BLOCK.sub(lambda m: " " * len(m.group()), text)
    for block in _SHELL_BLOCK.finditer(bare):
        for offset, line in enumerate(block.group(1).splitlines()):
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append((block.start(1) + offset, command))
    return [command for _, command in sorted(found)]


def serve_commands() -> list[tuple[dict[str, str], list[str]]]:
    """(environment, argv) of each README command that starts a server: `openai-ocr serve ...`
    and `vllm serve ...`, argv from the program on, a trailing `...` (more flags) dropped."""
    found = []
    for command in readme_commands():
        words = shlex.split(command)
        env = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: re.match(r"^\w+=", w), words))
        argv = [w for w in words[len(env):] if w != "..."]
        if argv[:2] in (["openai-ocr", "serve"], ["vllm", "serve"]):
            found.append((env, argv))
    return found


# -- The lite engine's page model -----------------------------------------------------------

def column(x1: float, x2: float, y0: float, names: list[str], step: float = 40, h: float = 28) -> list[Any]:
    """A column of text lines (ragged right), one per name, `step` apart from `y0` down."""
    from openai_ocr.engines.lite.layout import TextLine

    return [TextLine(x1, y0 + i * step, x2 - (i % 3) * 15, y0 + i * step + h, name) for i, name in enumerate(names)]
