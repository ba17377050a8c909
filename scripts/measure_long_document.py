#!/usr/bin/env python
"""A PDF of thousands of pages through the Batch API: its time and the gateway's peak memory.

Three runs, each on a gateway of its own (`openai-ocr serve --upstream-url`, a child process,
its state in a temporary folder: a run's peak is not the previous run's heap) in front of a
fake engine in this process that answers every page at once
with the same dense grounding output (scripts/measure_archival_memory.py's page: 4 blocks,
about 320 words), so a page costs its rendering, its JSON and the batch's bookkeeping, not an
engine:

  1. baseline: a tenth of the pages as one batch line (`pages: "1-N"`, `output: json`);
  2. the whole document as one batch line;
  3. `openai-ocr batch long.pdf --output json` (page ranges of `--per-line` pages, one line
     each, joined back in page order by the CLI, run here in this process).

Peak memory is sampled from /proc every 20 ms: the server process and every process below it
(the fork server and the decoder workers that render pages).

    python scripts/measure_long_document.py [--pages 3000] [--per-line 100]

Only 127.0.0.1 is contacted; the server stops at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai_ocr.cli.batch import run as batch_cli  # noqa: E402
from openai_ocr.ocr.assembly import PAGE_SPLIT  # noqa: E402
from scripts.measure_archival_memory import document, page_reply  # noqa: E402
from scripts.process_memory import Sampler, gateway_process  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.helpers import running_server  # noqa: E402

logger = logging.getLogger("measure_long_document")
PROGRESS_S = 30.0


def one_line(sdk: OpenAI, file_id: str, pages: str) -> tuple[int, int]:
    """A batch of one `/ocr` line reading `pages` of the file; (status code, answer bytes)."""
    line = {"custom_id": "whole", "method": "POST", "url": "/ocr",
            "body": {"file_id": file_id, "pages": pages, "output": "json"}}
    upload = sdk.files.create(file=("in.jsonl", io.BytesIO(json.dumps(line).encode() + b"\n")), purpose="batch")
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/ocr", completion_window="24h")  # type: ignore[arg-type]
    started = last = time.monotonic()
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.5)
        batch = sdk.batches.retrieve(batch.id)
        if time.monotonic() - last > PROGRESS_S:
            last = time.monotonic()
            logger.info("pages %s: %s after %.0f s", pages, batch.status, last - started)
    result_id = batch.output_file_id or batch.error_file_id
    raw = sdk.files.content(result_id).content if result_id else b""
    answer = json.loads(raw) if raw.strip() else {}
    response = answer.get("response") or {}
    body = response.get("body") or {}
    if response.get("status_code") == 200:
        assert body["page_count"] == len(body["pages"]), "pages missing from the answer"
        assert [p["index"] for p in body["pages"]] == sorted(p["index"] for p in body["pages"])
    return response.get("status_code", 0), len(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--per-line", type=int, default=100, help="pages per line of the CLI run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fake = FakeUpstream()
    fake.default_reply = page_reply()
    print(f"{'pages':>5} {'path':<28} {'status':>6} {'seconds':>8} {'pages/s':>7} {'answer MiB':>10} "
          f"{'server MiB':>10} {'worker MiB':>10} {'all MiB':>8}", flush=True)

    def report(pages: int, path: str, status: int, seconds: float, size: int, peak: dict[str, float]) -> None:
        print(f"{pages:>5} {path:<28} {status:>6} {seconds:>8.1f} {pages / seconds:>7.1f} "
              f"{size / 2**20:>10.1f} {peak['server']:>10.0f} {peak['helper']:>10.0f} "
              f"{peak['total']:>8.0f}", flush=True)

    with running_server(fake.app) as upstream, tempfile.TemporaryDirectory() as folder:
        pdf = Path(folder) / "long.pdf"
        pdf.write_bytes(document(args.pages))
        logger.info("%d-page PDF: %.1f MiB", args.pages, pdf.stat().st_size / 2**20)
        for pages in (max(1, args.pages // 10), args.pages):  # each run on a gateway of its own
            with (tempfile.TemporaryDirectory() as state,
                  gateway_process(f"{upstream}/v1", state) as (url, server)):
                sdk = OpenAI(base_url=f"{url}/v1", api_key="none")
                with pdf.open("rb") as handle:
                    stored = sdk.files.create(file=("long.pdf", handle), purpose="user")  # type: ignore[arg-type]
                with Sampler(server.pid) as sampler:
                    started = time.perf_counter()
                    status, size = one_line(sdk, stored.id, f"1-{pages}")
                    seconds = time.perf_counter() - started
                report(pages, "Batch API, one line", status, seconds, size, sampler.mib())

        out = Path(folder) / "out"
        out.mkdir()
        with (tempfile.TemporaryDirectory() as state,
              gateway_process(f"{upstream}/v1", state) as (url, server), Sampler(server.pid) as sampler):
            started = time.perf_counter()
            failed = batch_cli([pdf], url, output="json", out_dir=out, poll_s=0.5, pages_per_line=args.per_line)
            seconds = time.perf_counter() - started
        result = out / "long.json"
        answer: dict[str, Any] = json.loads(result.read_text()) if result.exists() else {}
        whole = not failed and answer.get("page_count") == args.pages == len(answer["text"].split(PAGE_SPLIT))
        report(args.pages, f"CLI, lines of {args.per_line} pages", 200 if whole else 0, seconds,
               result.stat().st_size if result.exists() else 0, sampler.mib())
    return 0


if __name__ == "__main__":
    sys.exit(main())
