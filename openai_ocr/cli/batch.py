"""`openai-ocr batch PATHS...`: a corpus of PDFs and images as OpenAI batches on a server.

Each document is uploaded (`/v1/files`, purpose `user`) and becomes one `/ocr` line of a
batch (several batches past `--max-requests`). A small state file next to the outputs records
the batches of this set of inputs, so running the same command again, after a crash or a
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

from openai import APIStatusError, AuthenticationError, OpenAI, OpenAIError, PermissionDeniedError
from pydantic import BaseModel
from tqdm import tqdm

from openai_ocr.cli.client import options_for, result_name
from openai_ocr.inputs.office import SUFFIXES as OFFICE_SUFFIXES
from openai_ocr.ocr.models import OCROptions

SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", *OFFICE_SUFFIXES}
TERMINAL = {"completed", "failed", "expired", "cancelled"}


class Item(BaseModel):
    path: str
    destination: str
    file_id: str


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


def line_body(file_id: str, output: str, options: OCROptions) -> dict[str, Any]:
    """One `/ocr` request body: the uploaded document and the options given (OCRRequest)."""
    body: dict[str, Any] = {"file_id": file_id, **options.model_dump(exclude_none=True,
                                                                     exclude_defaults=True)}
    body["output"] = {"md": "markdown", "json": "json"}.get(output, output)  # or pdf, hocr, alto
    return body


def render(answer: dict[str, Any], path: Path, output: str) -> str:
    if output == "md":
        return str(answer.get("text", "")).rstrip("\n") + "\n"
    return json.dumps({"file": path.name, **answer}, ensure_ascii=False, indent=2) + "\n"


def submit(client: OpenAI, todo: list[tuple[Path, Path]], output: str, options: OCROptions,
           max_requests: int) -> tuple[list[BatchState], int]:
    """Upload the documents and create batches of at most `max_requests` lines; also returns
    how many documents the server refused at upload (they fail alone)."""
    created: list[BatchState] = []
    refused = 0
    for start in range(0, len(todo), max_requests):
        chunk = todo[start:start + max_requests]
        items: dict[str, Item] = {}
        lines: list[str] = []
        for n, (path, dest) in enumerate(tqdm(chunk, unit="file", desc="upload", leave=False)):
            try:
                with open(path, "rb") as data:
                    uploaded = client.files.create(file=(path.name, data), purpose="user")  # type: ignore[arg-type]
            except (AuthenticationError, PermissionDeniedError):
                raise  # the key, not the document: every upload would fail the same way
            except APIStatusError as exc:  # not a readable document, too large: this one fails
                refused += 1
                tqdm.write(f"openai-ocr: {path}: {exc.message}", file=sys.stderr)
                continue
            custom_id = f"doc-{start + n}"
            items[custom_id] = Item(path=str(path), destination=str(dest), file_id=uploaded.id)
            lines.append(json.dumps({"custom_id": custom_id, "method": "POST", "url": "/ocr",
                                     "body": line_body(uploaded.id, output,
                                                       options_for(path, options))}))
        if not lines:
            continue
        batch_input = client.files.create(
            file=("openai-ocr-batch.jsonl", io.BytesIO(("\n".join(lines) + "\n").encode())),
            purpose="batch")
        batch = client.batches.create(input_file_id=batch_input.id, endpoint="/ocr",  # type: ignore[arg-type]
                                      completion_window="24h")
        if batch.status == "failed":
            errors = "; ".join(f"line {e.line}: {e.message}" for e in (batch.errors.data or [])
                               ) if batch.errors else ""
            raise OpenAIError(f"the server refused the batch: {errors}")
        created.append(BatchState(batch_id=batch.id, input_file_id=batch_input.id, items=items))
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
    """Write each finished document next to its input; returns how many failed."""
    batch = client.batches.retrieve(entry.batch_id)
    failures = 0
    written: set[str] = set()
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        for raw in client.files.content(file_id).text.splitlines():
            line = json.loads(raw) if raw.strip() else None
            item = entry.items.get(line["custom_id"]) if line else None
            if line is None or item is None:
                continue
            written.add(line["custom_id"])
            response = line.get("response") or {}
            if response.get("status_code") == 200:
                dest = Path(item.destination)
                dest.parent.mkdir(parents=True, exist_ok=True)
                made = (response["body"] or {}).get("output_file")
                if made:  # an archival file, kept by the server: downloaded, then deleted there
                    download(client, made["id"], dest)
                else:
                    dest.write_text(render(response["body"], Path(item.path), output), encoding="utf-8")
            else:
                failures += 1
                error = (response.get("body") or {}).get("error") or line.get("error") or {}
                tqdm.write(f"openai-ocr: {item.path}: {error.get('message', 'failed')}", file=sys.stderr)
    missing = set(entry.items) - written
    if missing:
        tqdm.write(f"openai-ocr: batch {batch.id} ended {batch.status}; {len(missing)} document(s) "
                   "not processed (run the command again)", file=sys.stderr)
    for item in entry.items.values():  # the server need not keep the uploads
        try:
            client.files.delete(item.file_id)
        except OpenAIError:
            pass
    return failures + len(missing)


def run(paths: list[Path], server: str, output: str = "md", options: OCROptions | None = None,
        out_dir: Path | None = None, api_key: str | None = None, wait: bool = True,
        max_requests: int = 50_000, poll_s: float = 1.0) -> int:
    """Submit (or resume) the batches of `paths`; returns the number of documents that failed."""
    client = OpenAI(base_url=f"{server.rstrip('/')}/v1", api_key=api_key or "none", max_retries=5)
    where = state_path(paths, output, out_dir)
    state = State.model_validate_json(where.read_text()) if where.is_file() else State(server=server)
    queued = {item.path for entry in state.batches for item in entry.items.values()}
    todo = [(path, dest) for path, root in documents(paths)
            if not (dest := destination(path, root, output, out_dir)).exists() and str(path) not in queued]
    refused = 0
    if todo:
        created, refused = submit(client, todo, output, options or OCROptions(), max_requests)
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
    with tqdm(total=sum(len(b.items) for b in state.batches), unit="doc", desc="batch") as bar:
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
