"""Cost of the decoder-process hop for a normal page: in-process thread vs the DecodePool.

Prints the median time per PNG page (1224x1584, a text page at 144 dpi) both ways and their
ratio; run with `python scripts/bench_decode_hop.py [rounds]`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openai_ocr.inputs.documents import probe_document, render_page  # noqa: E402
from openai_ocr.inputs.pool import DecodePool  # noqa: E402
from tests.helpers import png_bytes  # noqa: E402

LIMITS = {"max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


async def main(rounds: int) -> None:
    data = png_bytes(1224, 1584, "A normal page of text")
    info = probe_document(data, pages=None, dpi=144, max_pages=1000, **LIMITS)
    pool = DecodePool(2)
    await pool.start()
    thread, hop = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await asyncio.to_thread(probe_document, data, pages=None, dpi=144, max_pages=1000, **LIMITS)
        await asyncio.to_thread(render_page, data, info, 1, **LIMITS)
        thread.append(time.perf_counter() - started)
        started = time.perf_counter()
        await pool.run(probe_document, data, pages=None, dpi=144, max_pages=1000, **LIMITS)
        await pool.run(render_page, data, info, 1, **LIMITS)
        hop.append(time.perf_counter() - started)
    pool.close()
    a, b = statistics.median(thread), statistics.median(hop)
    print(f"png {len(data)} bytes; median per page: thread {a * 1000:.1f} ms, "
          f"decoder process {b * 1000:.1f} ms, ratio {b / a:.2f}, hop cost {(b - a) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
