"""`openai-ocr ocr FILE...`: send images, PDFs or Office documents for OCR and write
NAME.md / NAME.json, or the archival files NAME.ocr.pdf / NAME.hocr / NAME.alto.xml.

Pages stream back one by one (progress per file and per page). With `--server` the files go
to a running openai-ocr server's `/ocr/stream` (archival files: its `/ocr/file`, the file
streamed to disk); without it, to the OpenAI-compatible upstream named in the config,
through this package's own translation layer (archival files are then written here).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from tqdm import tqdm

from openai_ocr.errors import OCRError, error_for_status
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.inputs.office import SUFFIXES as OFFICE_SUFFIXES
from openai_ocr.inputs.pdf import is_pdf
from openai_ocr.ocr.assembly import PAGE_SPLIT, PageOutcome, page_result, sum_usage
from openai_ocr.ocr.models import OCROptions, PageQuality, Usage
from openai_ocr.ocr.translation import CompletionResult
from openai_ocr.outputs import is_archival, output_name
from openai_ocr.protocol.ocr import StreamEvent
from openai_ocr.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8000"
KEY_HINT = "give the server's key with --api-key or $OPENAI_OCR_API_KEY"


@dataclass
class PageText:
    number: int
    width: int
    height: int
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    warning: str | None = None
    quality: PageQuality | None = None


@dataclass
class FileResult:
    path: Path
    model: str | None = None
    pages: list[PageText] = field(default_factory=list)


def is_multi_page(path: Path) -> bool:
    """A PDF, an Office document or a multi-frame TIFF/GIF: the inputs `--pages` applies to."""
    if path.suffix.lower() in OFFICE_SUFFIXES:
        return True
    with path.open("rb") as handle:
        if is_pdf(handle.read(1024)):
            return True
    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1)) > 1
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False  # the server judges the file and says what is wrong with it


def options_for(path: Path, options: OCROptions) -> OCROptions:
    """`--pages` selects pages of multi-page inputs; a single image is always read whole."""
    if options.pages is None or is_multi_page(path):
        return options
    return options.model_copy(update={"pages": None})


def interactive() -> bool:
    """Progress bars on a terminal; plain lines when the output goes to a file or a pipe."""
    return sys.stderr.isatty()


async def collect(events: AsyncIterator[StreamEvent], result: FileResult, page_bar: tqdm) -> None:
    """Fold a stream of events into pages, advancing the page bar as pages finish.

    With the bar disabled (not a terminal) each finished page is one plain line on stderr.
    """
    async for event in events:
        if event.type == "page":
            result.pages.append(PageText(event.page or 0, event.width or 0, event.height or 0))
            if event.page_count and page_bar.total != event.page_count:
                page_bar.total = event.page_count
                page_bar.refresh()
            page_bar.set_postfix_str(f"page {event.page}")
        elif event.type == "text" and event.page is not None and result.pages:
            result.pages[-1].text += event.text
        elif event.type == "page_reset" and result.pages:  # the kept answer follows
            result.pages[-1].text = ""
        elif event.type == "page_end" and result.pages:
            page = result.pages[-1]
            page.finish_reason, page.warning = event.finish_reason, event.warning
            page.usage, page.quality = event.usage or Usage(), event.quality
            if event.warning:
                tqdm.write(f"warning: {result.path.name}: {event.warning}", file=sys.stderr)
            page_bar.update(1)
            if page_bar.disable:
                total = f"/{page_bar.total}" if page_bar.total else ""
                print(f"{result.path.name}: page {page.number} done ({len(result.pages)}{total})",
                      file=sys.stderr, flush=True)
        elif event.type == "done":
            result.model = event.model
        elif event.type == "error" and event.error is not None:
            raise error_for_status(int(event.error.code or 502), event.error.message)


async def server_events(client: httpx.AsyncClient, server: str, path: Path,
                        options: OCROptions) -> AsyncIterator[StreamEvent]:
    fields = {k: str(v) for k, v in options.model_dump(exclude_none=True,
                                                      exclude={"output", "include_images"}).items()}
    with path.open("rb") as handle:
        async with client.stream("POST", f"{server.rstrip('/')}/ocr/stream", data=fields,
                                 files={"file": (path.name, handle)}) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_for_status(response.status_code, _error_message(response))
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield StreamEvent.model_validate_json(data)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500] or response.reason_phrase


async def upstream_events(service: Any, path: Path, options: OCROptions) -> AsyncIterator[StreamEvent]:
    plan = service.recognizer.plan(options)
    document = await service.inputs.open_bytes(path.read_bytes(), pages=options.pages,
                                               dpi=options.dpi, param=path.name)
    async for event in await service.streamer.open(document, options, plan):
        yield event


def result_name(path: Path, output: str) -> str:
    """NAME.md, NAME.json, NAME.ocr.pdf, NAME.hocr or NAME.alto.xml for the input `path`."""
    return output_name(path.name, output) if is_archival(output) else f"{path.stem}.{output}"


async def archive_from_server(client: httpx.AsyncClient, server: str, path: Path, options: OCROptions,
                              output: str, destination: Path, bar: tqdm) -> int:
    """The server's `/ocr/file` answer with `output` pdf, hocr or alto, streamed into
    `destination` (written aside, then renamed: a failed download leaves nothing); the
    number of pages it holds."""
    fields = {k: str(v) for k, v in options.model_dump(exclude_none=True,
                                                      exclude={"include_images"}).items()}
    fields["output"] = output
    partial = destination.with_name(destination.name + ".part")
    try:
        with path.open("rb") as handle:
            async with client.stream("POST", f"{server.rstrip('/')}/ocr/file", data=fields,
                                     files={"file": (path.name, handle)}) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_for_status(response.status_code, _error_message(response))
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        bar.update(len(chunk))
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    return int(response.headers.get("X-OCR-Pages", "0") or 0)


async def archive_locally(service: Any, path: Path, options: OCROptions, output: str,
                          destination: Path) -> int:
    """The same file made here (the upstream of the config reads the pages)."""
    from openai_ocr.service.archival import Archiver

    produced = await Archiver(service.recognizer).read_bytes(
        path.read_bytes(), options.model_copy(update={"output": output}), path.name, param=path.name)
    try:
        shutil.move(produced.path, destination)
    finally:
        produced.discard()
    return produced.answer.page_count


def render(result: FileResult, output: str) -> str:
    """The file's answer as markdown or JSON, from the streamed raw page texts."""
    outcomes = [PageOutcome(p.number, ImageInput(b"", "image/png", p.width, p.height),
                            CompletionResult(p.text, p.finish_reason, p.usage, result.model or ""),
                            p.quality)
                for p in result.pages]
    pages = [page_result(o, include_images=False, max_tokens=None) for o in outcomes]
    if output == "md":
        return PAGE_SPLIT.join(p.markdown for p in pages) + "\n"
    body = {"file": result.path.name, "model": result.model,
            "usage": sum_usage([p.usage for p in pages]).model_dump(),
            "warnings": [p.warning for p in result.pages if p.warning],
            "pages": [p.model_dump(exclude={"images"}) for p in pages]}
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


async def run(files: list[Path], options: OCROptions, output: str, server: str | None,
              settings: Settings, api_key: str | None, out_dir: Path | None) -> int:
    """OCR every file; returns the number of files that failed."""
    service = None
    if server is None and settings.upstream.url:
        from openai_ocr.engines.upstream import UpstreamEngine
        from openai_ocr.service.serving import OCRService

        service = OCRService(UpstreamEngine(settings.upstream, settings.engine.model), settings)
        await service.engine.start()
    target = server or DEFAULT_SERVER
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    failures = 0
    timeout = httpx.Timeout(settings.upstream.timeout_s, connect=settings.upstream.connect_timeout_s)
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        bars = interactive()
        with tqdm(files, unit="file", desc="files", position=0, disable=not bars) as file_bar:
            for index, path in enumerate(file_bar):
                file_bar.set_postfix_str(path.name)
                result = FileResult(path)
                try:
                    file_options = options_for(path, options)
                    destination = (out_dir or path.parent) / result_name(path, output)
                    if is_archival(output):  # the file the server (or this process) writes
                        with tqdm(unit="B", unit_scale=True, desc=f"  {path.name}", position=1, leave=False,
                                  disable=not bars) as byte_bar:
                            pages = await (archive_locally(service, path, file_options, output, destination)
                                           if service is not None else
                                           archive_from_server(client, target, path, file_options, output,
                                                               destination, byte_bar))
                        tqdm.write(f"{path} -> {destination} ({pages} page(s))")
                        continue
                    with tqdm(unit="page", desc=f"  {path.name}", position=1, leave=False,
                              disable=not bars) as page_bar:
                        events = (upstream_events(service, path, file_options) if service is not None
                                  else server_events(client, target, path, file_options))
                        await collect(events, result, page_bar)
                    destination.write_text(render(result, output), encoding="utf-8")
                    tqdm.write(f"{path} -> {destination} ({len(result.pages)} page(s))")
                except (OCRError, httpx.HTTPError, OSError) as exc:
                    failures += 1
                    if service is None and isinstance(exc, DROPPED):
                        exc = await key_refused(client, target) or exc
                    refused = (service is None and isinstance(exc, OCRError)
                               and exc.status_code in (401, 403))
                    hint = f" ({KEY_HINT}; the files after this one were not sent)" if refused else ""
                    tqdm.write(f"openai-ocr: {path}: {describe(exc, target)}{hint}", file=sys.stderr)
                    if refused:  # the key, not the file: every other file would fail the same way
                        failures += len(files) - index - 1
                        break
    if service is not None:
        await service.engine.close()
    return failures


DROPPED = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
"""How a server that refuses the key can look: it answers 401 from the headers and closes
the connection without reading the upload, which the client may see as a reset."""


async def key_refused(client: httpx.AsyncClient, server: str) -> OCRError | None:
    """The server's 401/403 when a dropped connection was a refused key, else None."""
    try:
        response = await client.get(f"{server.rstrip('/')}/v1/files")
    except httpx.HTTPError:
        return None
    if response.status_code in (401, 403):
        return error_for_status(response.status_code, _error_message(response))
    return None


def describe(exc: BaseException, server: str) -> str:
    if isinstance(exc, OCRError):
        return f"{exc.status_code} {exc.message}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {server} (is `openai-ocr serve` running? use --server URL)"
    if isinstance(exc, httpx.TimeoutException):
        return "the server did not answer in time"
    return str(exc) or type(exc).__name__
