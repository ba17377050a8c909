#!/usr/bin/env python
"""What validating one page image costs, per format: the container check against a full decode.

The same 1224x1584 text page (A4 at 144 dpi) in each accepted format; for each, CPU
milliseconds of `check_container` (what the server now does for PNG, JPEG and WebP: no pixel
decoded) and of `load_image` (the full decode the first version did for every image, and still
does for the other formats and for rotated or animated images), in one process, one thread.

    python scripts/bench_image_checks.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_gateway import page_png  # noqa: E402

from openai_ocr.inputs.containers import check_container  # noqa: E402
from openai_ocr.inputs.documents import load_image  # noqa: E402

LIMITS = {"max_pixels": 64_000_000, "max_bytes": 50 * 1024 * 1024}


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat * 1000


def formats() -> dict[str, bytes]:
    grey = Image.open(io.BytesIO(page_png()))
    rgb = grey.convert("RGB")
    out: dict[str, bytes] = {"PNG (grey)": page_png()}
    for name, image, fmt, options in (
            ("PNG (RGB)", rgb, "PNG", {}),
            ("JPEG q85", rgb, "JPEG", {"quality": 85}),
            ("JPEG progressive", rgb, "JPEG", {"quality": 85, "progressive": True}),
            ("WebP q80", rgb, "WEBP", {"quality": 80}),
            ("WebP lossless", grey, "WEBP", {"lossless": True}),
            ("TIFF (deflate)", grey, "TIFF", {"compression": "tiff_adobe_deflate"}),
            ("BMP", grey, "BMP", {}),
            ("GIF", grey, "GIF", {})):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        out[name] = buffer.getvalue()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print("| format | KiB | container check, CPU ms | full decode, CPU ms | decode / check |")
    print("|---|---|---|---|---|")
    for name, data in formats().items():
        checked = check_container(data) is not None
        check = cpu_ms(lambda data=data: check_container(data), args.repeat)  # type: ignore[misc]
        decode = cpu_ms(lambda data=data: load_image(data, **LIMITS), args.repeat)  # type: ignore[misc]
        print(f"| {name} | {len(data) / 1024:.0f} | "
              f"{f'{check:.3f}' if checked else 'decoded (no container check)'} | {decode:.2f} | "
              f"{f'{decode / check:.0f}x' if checked else '-'} |")


if __name__ == "__main__":
    main()
