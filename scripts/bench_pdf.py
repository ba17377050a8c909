#!/usr/bin/env python
"""PDF pages per second per core at 144 dpi, and the server's peak memory on a 1,000-page PDF.

Speed, in this process on one core (CPU seconds, so other load on the machine matters less):
for a born-digital text PDF (A4 pages of 40 lines of Helvetica) and a scanned-image PDF (A4
pages holding one 200-dpi greyscale JPEG scan each), pages/s/core of rendering alone
(`PdfPages.render`, pdfium to an RGB image) and of rendering plus the PNG the engine is sent
(`render_page`, what each page costs the server).

Memory: the gateway (`openai-ocr serve --upstream-url`, a child process, in front of the fast
upstream of `bench_gateway.py`) answers one `/ocr/file` request for a 1,000-page text PDF
(all pages selected); its resident memory (server and decoder processes) is sampled every
50 ms; pages render lazily, a few at a time, so the peak stays flat however long the file.

    python scripts/bench_pdf.py [--pages 20] [--big 1000]
"""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_gateway import KEY, _tree, start  # noqa: E402

from openai_ocr.inputs.documents import DocumentInfo, render_page  # noqa: E402
from openai_ocr.inputs.pdf import PdfPages  # noqa: E402
from tests.helpers import free_port, text_pdf, wait_for_process_server  # noqa: E402

log = logging.getLogger("bench_pdf")
DPI = 144
A4_POINTS = (595, 842)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"


def text_document(pages: int) -> bytes:
    lines = [f"Line {n}: the quarterly report of the customer account, section {n} of the page."
             for n in range(40)]
    return text_pdf([(*A4_POINTS, lines) for _ in range(pages)])


def scanned_document(pages: int) -> bytes:
    """Each page one 200-dpi greyscale JPEG of a slightly blurred text page (what scanners write)."""
    size = (round(8.27 * 200), round(11.69 * 200))
    scan = Image.new("L", size, 235)
    draw = ImageDraw.Draw(scan)
    font = ImageFont.truetype(FONT, 30)
    for row in range(60):
        draw.text((150, 150 + row * 36), f"Row {row}: scanned text of an archived letter, page copy.",
                  fill=30, font=font)
    scan = scan.filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    scan.save(out, format="PDF", resolution=200, save_all=True, append_images=[scan] * (pages - 1),
              quality=80)
    return out.getvalue()


def per_core(data: bytes, pages: int) -> tuple[float, float]:
    """(pages/s/core rendering, pages/s/core rendering + PNG encoding)."""
    with PdfPages(data) as pdf:
        pdf.render(1, DPI)  # warm-up
        started = time.process_time()
        for number in range(1, pages + 1):
            pdf.render(number, DPI)
        render = pages / (time.process_time() - started)
    info = DocumentInfo("pdf", pages, list(range(1, pages + 1)), {}, DPI)
    started = time.process_time()
    for number in range(1, pages + 1):
        render_page(data, info, number, max_pixels=64_000_000, max_bytes=1 << 30)
    return render, pages / (time.process_time() - started)


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def peak_memory(pages: int, work: Path) -> tuple[float, float, float, int]:
    """(MiB before, peak MiB during, seconds, status) for one /ocr/file of a `pages`-page PDF."""
    upstream_port, gateway_port = free_port(), free_port()
    procs = [start([sys.executable, str(ROOT / "scripts/bench_gateway.py"), "--serve-upstream",
                    str(upstream_port)], work / "upstream.log")]
    try:
        procs.append(start([sys.executable, "-m", "openai_ocr.cli.main", "serve", "--upstream-url",
                            f"http://127.0.0.1:{upstream_port}/v1", "--host", "127.0.0.1",
                            "--port", str(gateway_port)], work / "gateway.log",
                           env={"OPENAI_OCR_API_KEYS": KEY}))
        url = f"http://127.0.0.1:{gateway_port}"
        wait_for_process_server(url, procs[1], timeout_s=120)
        before = rss_mib(_tree(procs[1].pid))
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(_tree(procs[1].pid)))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        data = text_document(pages)
        log.info("posting a %d-page PDF (%d KiB)", pages, len(data) // 1024)
        started = time.perf_counter()
        r = httpx.post(f"{url}/ocr/file", files={"file": ("big.pdf", data, "application/pdf")},
                       data={"pages": "all"}, headers={"authorization": f"Bearer {KEY}"}, timeout=3600)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        return before, peak[0], seconds, r.status_code
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20, help="pages timed per document")
    parser.add_argument("--big", type=int, default=1000, help="pages of the memory test's PDF; 0: skip")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    print(f"| PDF ({DPI} dpi, A4 = 1191x1684 px) | pages/s/core, render | "
          "pages/s/core, render + PNG |")
    print("|---|---|---|")
    for name, data in (("text", text_document(args.pages)), ("scanned image", scanned_document(args.pages))):
        log.info("timing %s pages", name)
        render, total = per_core(data, args.pages)
        print(f"| {name} | {render:.1f} | {total:.1f} |")
    if args.big:
        import tempfile

        before, peak, seconds, status = peak_memory(args.big, Path(tempfile.mkdtemp(prefix="bench-pdf-")))
        print(f"\n{args.big}-page PDF through /ocr/file: status {status} in {seconds:.0f} s "
              f"({args.big / seconds:.1f} pages/s); gateway memory (server + decoder processes) "
              f"{before:.0f} MiB before, {peak:.0f} MiB at peak")


if __name__ == "__main__":
    main()
