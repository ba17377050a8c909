"""`openai-ocr batch PATHS...`: a corpus of PDFs and images as OpenAI batches on a server.

Each document is uploaded (`/v1/files`, purpose `user`) and becomes one `/ocr` line of a
batch (several batches past `--max-requests`). A PDF of more than `--pages-per-line` pages
becomes one line per page range instead (markdown and JSON outputs), so its pages spread
over the server's replicas and engine slots and a replica that dies hands over the ranges in
progress, not the document; the ranges' answers are joined back in page order into the
answer the whole document would have had. A small state file next to the outputs records the
batches of this set of inputs, so running the same command again, after a crash or a
`--no-wait`, follows the same batches instead of sending the corpus twice; documents whose
NAME.md / NAME.json already exists are skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from openai import APIStatusError, AuthenticationError, OpenAI, OpenAIError, PermissionDeniedError
from pydantic import BaseModel
from tqdm import tqdm

from openai_ocr.cli.client import options_for, result_name
from openai_ocr.inputs.office import SUFFIXES as OFFICE_SUFFIXES
from openai_ocr.inputs.pdf import is_pdf
from openai_ocr.ocr.assembly import Assembled, merge_assembled
from openai_ocr.ocr.models import OCROptions
from openai_ocr.outputs import is_archival
from openai_ocr.protocol.ocr import OCRResponse

SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", *OFFICE_SUFFIXES}
TERMINAL = {"completed", "failed", "expired", "cancelled"}


class Item(BaseModel):
    """One line: a document, or one page range of it (`pages`)."""

    path: str
    destination: str
    file_id: str
    pages: str | None = None


class BatchState(BaseModel):
    batch_id: str
    input_file_id: str
    items: dict[str, Item]


class State(BaseModel):
    server: str
    batches: list[BatchState] = []


def documents(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(document, the folder its output name is relative to), folders searched recursively."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*"))
                      if p.is_file() and p.suffix.lower() in SUFFIXES]
        elif path.is_file():
            found.append((path, path.parent))
    return found


def destination(path: Path, root: Path, output: str, out_dir: Path | None) -> Path:
    if out_dir is None:
        return path.with_name(result_name(path, output))
    return (out_dir / path.relative_to(root)).with_name(result_name(path, output))


def state_path(paths: list[Path], output: str, out_dir: Path | None) -> Path:
    """One state file per set of inputs and output format."""
    key = json.dumps([sorted(str(p.resolve()) for p in paths), output,
                      str(out_dir.resolve()) if out_dir else None])
    folder = out_dir or (paths[0] if paths[0].is_dir() else paths[0].parent)
    return folder / f".openai-ocr-batch-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def save(state: State, where: Path) -> None:
    tmp = where.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(where)


def line_body(file_id: str, output: str, options: OCROptions, pages: str | None = None) -> dict[str, Any]:
    """One `/ocr` request body: the uploaded document (or its `pages`) and the options given
    (OCRRequest)."""
    body: dict[str, Any] = {"file_id": file_id, **options.model_dump(exclude_none=True,
                                                                     exclude_defaults=True)}
    body["output"] = {"md": "markdown", "json": "json"}.get(output, output)  # or pdf, hocr, alto
    if pages is not None:
        body["pages"] = pages
    return body


def page_ranges(path: Path, output: str, options: OCROptions, per_line: int) -> list[str | None]:
    """The page ranges a document is sent as: ["1-100", "101-200", ...] for a PDF longer
    than `per_line` pages, else [None] (one line, the document whole). Archival files are
    not split (one file per document), nor a document whose pages were chosen (`--pages`)."""
    if per_line <= 0 or is_archival(output) or options.pages is not None:
        return [None]
    try:
        with path.open("rb") as handle:
            if not is_pdf(handle.read(1024)):
                return [None]
        document = pdfium.PdfDocument(path)
        try:
            count = len(document)
        finally:
            document.close()
    except (OSError, pdfium.PdfiumError):  # the server says what is wrong with it
        return [None]
    if count <= per_line:
        return [None]
    return [f"{first}-{min(first + per_line - 1, count)}" for first in range(1, count + 1, per_line)]


def joined(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The answers of a document's page ranges, in page order, as the one answer the whole
    document would have had (pages, text, usage, warnings)."""
    parts = [OCRResponse.model_validate(a) for a in answers]
    done = merge_assembled([Assembled(p.text, p.pages, p.warnings, p.usage, p.finish_reason, p.model,
                                      p.page_count) for p in parts])
    whole = parts[0].model_copy(update={
        "text": done.text, "pages": done.pages, "warnings": done.warnings, "usage": done.usage,
        "finish_reason": done.finish_reason, "page_count": done.page_count,
        "processing_time": round(sum(p.processing_time for p in parts), 4)})
    return whole.model_dump(mode="json")


def render(answer: dict[str, Any], path: Path, output: str) -> str:
    if output == "md":
        return str(answer.get("text", "")).rstrip("\n") + "\n"
    return json.dumps({"file": path.name, **answer}, ensure_ascii=False, indent=2) + "\n"


def submit(client: OpenAI, todo: list[tuple[Path, Path]], output: str, options: OCROptions,
           max_requests: int, pages_per_line: int = 0) -> tuple[list[BatchState], int]:
    """Upload the documents and create batches of at most `max_requests` lines (the page
    ranges of one document stay in one batch); also returns how many documents the server
    refused at upload (they fail alone)."""
    created: list[BatchState] = []
    refused = 0
    items: dict[str, Item] = {}
    lines: list[str] = []

    def create_batch() -> None:
        batch_input = client.files.create(
            file=("openai-ocr-batch.jsonl", io.BytesIO(("\n".join(lines) + "\n").encode())),
            purpose="batch")
        batch = client.batches.create(input_file_id=batch_input.id, endpoint="/ocr",  # type: ignore[arg-type]
                                      completion_window="24h")
        if batch.status == "failed":
            errors = "; ".join(f"line {e.line}: {e.message}" for e in (batch.errors.data or [])
                               ) if batch.errors else ""
            raise OpenAIError(f"the server refused the batch: {errors}")
        created.append(BatchState(batch_id=batch.id, input_file_id=batch_input.id, items=dict(items)))
        items.clear()
        lines.clear()

    for n, (path, dest) in enumerate(tqdm(todo, unit="file", desc="upload", leave=False)):
        document_options = options_for(path, options)
        ranges = page_ranges(path, output, document_options, pages_per_line)
        if lines and len(lines) + len(ranges) > max_requests:
            create_batch()
        try:
            with open(path, "rb") as data:
                uploaded = client.files.create(file=(path.name, data), purpose="user")  # type: ignore[arg-type]
        except (AuthenticationError, PermissionDeniedError):
            raise  # the key, not the document: every upload would fail the same way
        except APIStatusError as exc:  # not a readable document, too large: this one fails
            refused += 1
            tqdm.write(f"openai-ocr: {path}: {exc.message}", file=sys.stderr)
            continue
        for pages in ranges:
            custom_id = f"doc-{n}" if pages is None else f"doc-{n}-pages-{pages}"
            items[custom_id] = Item(path=str(path), destination=str(dest), file_id=uploaded.id, pages=pages)
            lines.append(json.dumps({"custom_id": custom_id, "method": "POST", "url": "/ocr",
                                     "body": line_body(uploaded.id, output, document_options, pages)}))
    if lines:
        create_batch()
    return created, refused


def download(client: OpenAI, file_id: str, dest: Path) -> None:
    """A file of the server into `dest` (streamed; written aside, then renamed), then deleted
    on the server."""
    partial = dest.with_name(dest.name + ".part")
    try:
        with client.files.with_streaming_response.content(file_id) as response:
            response.stream_to_file(partial)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    try:
        client.files.delete(file_id)
    except OpenAIError:
        pass


def collect(client: OpenAI, entry: BatchState, output: str) -> int:
    """Write each finished document next to its input (a split one once all its page ranges
    are in, joined in page order); returns how many documents failed."""
    batch = client.batches.retrieve(entry.batch_id)
    answers: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        for raw in client.files.content(file_id).text.splitlines():
            line = json.loads(raw) if raw.strip() else None
            if line is None or line["custom_id"] not in entry.items:
                continue
            response = line.get("response") or {}
            if response.get("status_code") == 200:
                answers[line["custom_id"]] = response["body"]
            else:
                error = (response.get("body") or {}).get("error") or line.get("error") or {}
                errors[line["custom_id"]] = error.get("message", "failed")
    parts: dict[str, list[tuple[str, Item]]] = {}
    for custom_id, item in entry.items.items():  # in line order: page order within a document
        parts.setdefault(item.destination, []).append((custom_id, item))
    failures = missing = 0
    for destination, lines in parts.items():
        path = Path(lines[0][1].path)
        failed = [(item.pages, errors[cid]) for cid, item in lines if cid in errors]
        if failed:
            failures += 1
            for pages, message in failed:
                where = f" (pages {pages})" if pages else ""
                tqdm.write(f"openai-ocr: {path}{where}: {message}", file=sys.stderr)
            continue
        if any(cid not in answers for cid, _ in lines):
            missing += 1
            continue
        dest = Path(destination)
        dest.parent.mkdir(parents=True, exist_ok=True)
        answer = answers[lines[0][0]] if len(lines) == 1 else joined([answers[cid] for cid, _ in lines])
        made = answer.get("output_file")
        if made:  # an archival file, kept by the server: downloaded, then deleted there
            download(client, made["id"], dest)
        else:
            dest.write_text(render(answer, path, output), encoding="utf-8")
    if missing:
        tqdm.write(f"openai-ocr: batch {batch.id} ended {batch.status}; {missing} document(s) "
                   "not processed (run the command again)", file=sys.stderr)
    for file_id in dict.fromkeys(item.file_id for item in entry.items.values()):  # the server need not keep the uploads
        try:
            client.files.delete(file_id)
        except OpenAIError:
            pass
    return failures + missing


def run(paths: list[Path], server: str, output: str = "md", options: OCROptions | None = None,
        out_dir: Path | None = None, api_key: str | None = None, wait: bool = True,
        max_requests: int = 50_000, poll_s: float = 1.0, pages_per_line: int = 100) -> int:
    """Submit (or resume) the batches of `paths`; returns the number of documents that failed."""
    client = OpenAI(base_url=f"{server.rstrip('/')}/v1", api_key=api_key or "none", max_retries=5)
    where = state_path(paths, output, out_dir)
    state = State.model_validate_json(where.read_text()) if where.is_file() else State(server=server)
    queued = {item.path for entry in state.batches for item in entry.items.values()}
    todo = [(path, dest) for path, root in documents(paths)
            if not (dest := destination(path, root, output, out_dir)).exists() and str(path) not in queued]
    refused = 0
    if todo:
        created, refused = submit(client, todo, output, options or OCROptions(), max_requests,
                                  pages_per_line)
        state.batches += created
        save(state, where)
    if not state.batches:
        if not refused:
            print("openai-ocr: nothing to do (every output exists)", file=sys.stderr)
        where.unlink(missing_ok=True)
        return refused
    ids = ", ".join(b.batch_id for b in state.batches)
    if not wait:
        print(f"openai-ocr: submitted {ids}; run the same command again to collect", file=sys.stderr)
        return refused
    failures, finished = refused, 0
    with tqdm(total=sum(len(b.items) for b in state.batches), unit="line", desc="batch") as bar:
        while state.batches:
            running = 0
            for entry in list(state.batches):
                batch = client.batches.retrieve(entry.batch_id)
                if batch.status in TERMINAL:
                    failures += collect(client, entry, output)
                    finished += len(entry.items)
                    state.batches.remove(entry)
                    save(state, where)
                elif batch.request_counts:  # the server's progress, line by line
                    running += batch.request_counts.completed + batch.request_counts.failed
            bar.n = finished + running
            bar.refresh()
            if state.batches:
                time.sleep(poll_s)
    where.unlink(missing_ok=True)
    return failures
