#!/usr/bin/env python
"""Memory of `output=pdf` (and hocr, alto) on long documents: the server's peak resident set,
its decoder processes included, for a PDF of `--pages` pages against the same request with
`output=json`, and for a tenth of the pages (the writer must not grow with the page count).

The gateway (`openai-ocr serve --upstream-url`, a child process) reads a born-digital PDF
written here (A4 pages, 40 lines of text each) through a fake engine in this process that
answers every page with the same dense grounding output (4 blocks, about 320 words), so the
pages cost their rendering and their text layer, not an engine. Peak memory is sampled from
/proc every 20 ms: the server process and every process below it (the fork server and the
decoder workers that render pages and write the file).

    python scripts/measure_archival_memory.py [--pages 500] [--outputs pdf,json]

Only 127.0.0.1 is contacted; the server stops at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.process_memory import Sampler, gateway_process  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.helpers import running_server, text_pdf  # noqa: E402

WORDS = ("harbour timber lantern quay anchor copper silver orchard apple river meadow bridge "
         "window garden letter market number report").split()


def page_reply() -> str:
    """A dense page: a title and four blocks of about 80 words each."""
    blocks = ["<|ref|>title<|/ref|><|det|>[[80, 40, 900, 80]]<|/det|>\n# Annual report of the harbour"]
    for n in range(4):
        text = " ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(80))
        top = 100 + n * 220
        blocks.append(f"<|ref|>text<|/ref|><|det|>[[80, {top}, 920, {top + 200}]]<|/det|>\n{text}")
    return "\n\n".join(blocks)


def document(pages: int) -> bytes:
    lines = [" ".join(WORDS[(k + n) % len(WORDS)] for k in range(8)) for n in range(40)]
    return text_pdf([(595, 842, lines)] * pages)


def measure(url: str, server: subprocess.Popen[Any], data: bytes, output: str) -> dict[str, Any]:
    with Sampler(server.pid) as sampler:
        started = time.perf_counter()
        with httpx.stream("POST", f"{url}/ocr/file", files={"file": ("long.pdf", data)},
                          data={"output": output}, timeout=1800) as r:
            size = sum(len(chunk) for chunk in r.iter_bytes())
            status = r.status_code
        seconds = time.perf_counter() - started
    return {"status": status, "bytes": size, "seconds": seconds, **sampler.mib()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--outputs", default="json,pdf", help="comma-separated outputs to measure")
    args = parser.parse_args()
    fake = FakeUpstream()
    fake.default_reply = page_reply()
    with (running_server(fake.app) as upstream, tempfile.TemporaryDirectory() as folder,
          gateway_process(f"{upstream}/v1", folder) as (url, server)):
        print(f"{'pages':>5} {'output':>6} {'status':>6} {'seconds':>8} {'file MiB':>8} "
              f"{'server MiB':>10} {'worker MiB':>10} {'all MiB':>8}")
        for pages in (max(1, args.pages // 10), args.pages):
            data = document(pages)
            for output in args.outputs.split(","):
                fake.requests.clear()
                m = measure(url, server, data, output)
                print(f"{pages:>5} {output:>6} {m['status']:>6} {m['seconds']:>8.1f} {m['bytes'] / 2**20:>8.1f} "
                      f"{m['server']:>10.0f} {m['helper']:>10.0f} {m['total']:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
