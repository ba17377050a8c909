#!/usr/bin/env python
"""Quality and speed of the lite engine, printed as a table.

Quality: character error rate (CER, edit distance / reference length, whitespace collapsed)
on synthetic A4 pages rendered at 150 dpi with known text (several fonts and sizes, a
degraded "scan" copy of each, two-column pages whose column order is checked, also in a
copy scanned 2 degrees askew, and "poor scans" of every other page) and on the
pages of a born-digital PDF with its text layer as the truth. Speed: seconds per page and
pages/s through `LiteEngine.complete` with 1 worker x 1 thread (one core) and 2 workers x
1 thread.

Every figure is given for the configured engine and, as the baseline in the same run, for
the engine with `recognizer = "ppocr"` (the PP-OCRv6 recogniser reads every line).

    python scripts/bench_lite.py [--quick] [--pdf PATH] [--set FIELD=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import logging
import os
import random
import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from prometheus_client import CollectorRegistry

from openai_ocr.engines.lite.engine import LiteEngine
from openai_ocr.metrics import Metrics
from openai_ocr.settings import LiteSettings, Settings

log = logging.getLogger("bench_lite")

DPI = 150
A4 = (round(8.27 * DPI), round(11.69 * DPI))
PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
FONT_FILES = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "DejaVuSansMono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
}
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so what no "
    "more can out said other into some time could them these two may then do first any my now "
    "such like our over man me even most made after also did many before must through back years "
    "where much your way well down should because each just those people how too little state "
    "good very make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since against go "
    "came right used take three invoice total amount page section figure table report number "
    "document database system value server request response error Monday London Paris OCR API"
).split()


@dataclass
class Page:
    name: str
    group: str
    image: Image.Image
    truth: str
    lines: list[str] | None = None  # truth lines in reading order, for the column check


# ---------------------------------------------------------------- metrics

def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (insertions via a running minimum)."""
    if not a or not b:
        return max(len(a), len(b))
    bv = np.fromiter((ord(c) for c in b), dtype=np.int64, count=len(b))
    ramp = np.arange(len(b) + 1)
    prev = ramp.copy()
    for i, ch in enumerate(a, start=1):
        sub = prev[:-1] + (bv != ord(ch))
        best = np.empty_like(prev)
        best[0] = i
        best[1:] = np.minimum(prev[1:] + 1, sub)
        prev = np.minimum.accumulate(best - ramp) + ramp
    return int(prev[-1])


def cer(truth: str, text: str) -> float:
    ref, hyp = normalise(truth), normalise(text)
    return edit_distance(ref, hyp) / max(len(ref), 1)


def column_order(truth_lines: list[str], text: str) -> str:
    """"ok" when every truth line found in the output comes after the previous one.

    Lines are found by their first 20 characters; lines the OCR misread are reported as
    not found rather than counted as out of order.
    """
    out = normalise(text)
    positions = [out.find(normalise(line)[:20]) for line in truth_lines]
    found = [p for p in positions if p >= 0]
    inversions = sum(1 for a, b in itertools.pairwise(found) if b < a)
    verdict = "ok" if inversions == 0 else f"{inversions} out of order"
    missing = positions.count(-1)
    return verdict + (f" ({missing}/{len(truth_lines)} lines not found)" if missing else "")


# ---------------------------------------------------------------- pages

def fonts() -> dict[str, str | None]:
    found: dict[str, str | None] = {name: path for name, path in FONT_FILES.items() if Path(path).is_file()}
    for name in FONT_FILES.keys() - found.keys():
        log.warning("font %s not on this machine; skipped", name)
    found["Aileron(Pillow default)"] = None
    return found


def font(path: str | None, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px) if path else ImageFont.load_default(size=px)  # type: ignore[return-value]


def sentence(rng: random.Random, words: int) -> str:
    parts = [rng.choice(WORDS) for _ in range(words)]
    if rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts)), str(rng.randrange(10, 99999)))
    parts[0] = parts[0].capitalize()
    return " ".join(parts) + rng.choice([".", ".", ",", ";", ":", "?"])


def wrap(rng: random.Random, face: ImageFont.FreeTypeFont, width: int, count: int) -> list[str]:
    """`count` lines of random words, each as wide as fits in `width` pixels."""
    lines: list[str] = []
    current = ""
    while len(lines) < count:
        word = sentence(rng, 1)[:-1].lower() if rng.random() < 0.9 else str(rng.randrange(100, 9999))
        word = word + rng.choice(["", "", "", "", ",", "."])
        trial = f"{current} {word}".strip()
        if face.getlength(trial) > width and current:
            lines.append(current)
            current = word
        else:
            current = trial
    return lines


def text_page(name: str, path: str | None, pt: float, seed: int) -> Page:
    rng = random.Random(seed)
    px = round(pt * DPI / 72)
    face = font(path, px)
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    margin, step = 120, round(px * 1.5)
    title_face = font(path, px * 2)
    title = sentence(rng, 4)[:-1]
    draw.text((margin, margin), title, font=title_face, fill="black")
    y, truth = margin + px * 4, [title]
    body = wrap(rng, face, A4[0] - 2 * margin, (A4[1] - y - margin) // step)
    for i, line in enumerate(body):
        draw.text((margin, y), line, font=face, fill="black")
        truth.append(line)
        y += step + (step if i % 9 == 8 else 0)
        if y > A4[1] - margin - step:
            break
    return Page(f"{name} {pt:g}pt", "synthetic clean", image, "\n".join(truth))


def two_column_page(path: str | None, pt: float, seed: int) -> Page:
    rng = random.Random(seed)
    px = round(pt * DPI / 72)
    face, title_face = font(path, px), font(path, px * 2)
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    margin, gutter, step = 110, 50, round(px * 1.45)
    col_w = (A4[0] - 2 * margin - gutter) // 2
    title = sentence(rng, 5)[:-1]
    draw.text((margin, margin), title, font=title_face, fill="black")
    top = margin + px * 4
    rows = (A4[1] - top - margin) // step
    truth = [title]
    for col in range(2):
        x = margin + col * (col_w + gutter)
        for i, line in enumerate(wrap(rng, face, col_w, rows)):
            draw.text((x, top + i * step), line, font=face, fill="black")
            truth.append(line)
    return Page(f"two-column {pt:g}pt", "two-column", image, "\n".join(truth), truth)


def degrade(page: Page, seed: int, tilt: float = 0.6) -> Page:
    """A plausible office scan: tilt (degrees), blur, grey paper, noise, JPEG at quality 45."""
    rng = np.random.default_rng(seed)
    image = page.image.convert("L").rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    pixels = np.asarray(image, dtype=np.float32) * 0.8 + 30 + rng.normal(0, 10, (image.height, image.width))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=45)
    scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    group = "two-column scan" if page.lines else "synthetic scan"
    if abs(tilt) > 1:
        return Page(f"{page.name} scan {tilt:g} deg", group.replace("scan", "tilted scan"), scanned,
                    page.truth, page.lines)
    return Page(page.name + " scan", group, scanned, page.truth, page.lines)


def poor_scan(page: Page, seed: int) -> Page:
    """A bad scan: 1.5 degrees askew, scanned at 70% resolution, blurred, light falling off
    towards one corner, heavy noise, JPEG at quality 30."""
    rng = np.random.default_rng(seed)
    image = page.image.convert("L").rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    width, height = image.size
    image = image.resize((int(width * 0.7), int(height * 0.7)), Image.Resampling.BILINEAR)
    image = image.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1.1))
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1.0 - 0.35 * (xs / width) * (ys / height)
    pixels = np.asarray(image, dtype=np.float32) * 0.75 * light + 35 + rng.normal(0, 18, (height, width))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=30)
    scanned = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return Page(page.name + " poor scan", "poor scan", scanned, page.truth, page.lines)


def synthetic_pages(quick: bool) -> list[Page]:
    pages = []
    faces = list(fonts().items())
    sizes = [10.0] if quick else [9.0, 11.0]
    for index, (name, path) in enumerate(faces):
        for size in sizes:
            pages.append(text_page(name, path, size, seed=index * 100 + int(size)))
    serif = FONT_FILES["DejaVuSerif"]
    pages.append(two_column_page(serif if Path(serif).is_file() else None, 10, 7))
    if not quick:
        pages.append(two_column_page(None, 11, 8))
    tilted = [degrade(p, 50 + i, tilt=-2.0) for i, p in enumerate(pages) if p.lines]
    poor = [poor_scan(p, 80 + i) for i, p in enumerate(pages[::2])]
    return pages + [degrade(p, i) for i, p in enumerate(pages)] + tilted + poor


def pdf_pages(path: Path, quick: bool) -> list[Page]:
    import pypdfium2 as pdfium

    if not path.is_file():
        log.warning("%s not found; PDF pages skipped", path)
        return []
    document = pdfium.PdfDocument(str(path))
    pages = []
    for index in range(min(len(document), 4) if quick else len(document)):
        page = document[index]
        image = page.render(scale=DPI / 72).to_pil().convert("RGB")
        pages.append(Page(f"pdf p{index + 1}", "pdf (text layer)", image, page.get_textpage().get_text_range()))
    return pages


# ---------------------------------------------------------------- running

def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(url: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Free OCR."}]}]}


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # CPU seconds of this process: what the pages cost, whatever else runs


@dataclass
class Run:
    texts: list[str]
    timing: Timing
    model: str
    reread: float  # share of the lines PP-OCR read again after Tesseract


async def run_pages(lite: LiteSettings, urls: list[str]) -> Run:
    """Every page through the engine at once (the pool bounds the concurrency)."""
    metrics = Metrics(CollectorRegistry())  # this run's counts only
    engine = LiteEngine(Settings(lite=lite), metrics)
    await engine.start()
    try:
        assert engine.reader is not None
        log.info("engine: %s: %s", engine.model, engine.reader.describe())
        before = {name: metrics.lite_line_count(name) for name in ("tesseract", "ppocr")}  # warm-up lines
        started, cpu_started = time.perf_counter(), time.process_time()
        done = 0

        async def one(url: str) -> str:
            nonlocal done
            answer = await engine.complete(body(url))
            done += 1
            log.info("  %d/%d pages", done, len(urls))
            return answer.choices[0].message.content or ""

        texts = await asyncio.gather(*(one(u) for u in urls))
        timing = Timing(time.perf_counter() - started, time.process_time() - cpu_started)
        tesseract, ppocr = (metrics.lite_line_count(name) - before[name] for name in ("tesseract", "ppocr"))
        reread = ppocr / max(tesseract + ppocr, 1) if engine.plan.recognizer == "tesseract" else 0.0
        return Run(list(texts), timing, engine.model, reread)
    finally:
        await engine.close()


def table(rows: Iterable[tuple[str, ...]], head: tuple[str, ...]) -> str:
    rows = [head, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def quality(pages: list[Page], runs: dict[str, Run]) -> None:
    names = list(runs)
    per_page: list[tuple[str, ...]] = []
    groups: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for index, page in enumerate(pages):
        row = [page.name, page.group]
        for name in names:
            text = runs[name].texts[index]
            score = cer(page.truth, text)
            order = "" if page.lines is None else " " + column_order(page.lines, text)
            row.append(f"{score:.2%}{order}")
            groups.setdefault(page.group, {}).setdefault(name, []).append((score, len(normalise(page.truth))))
        per_page.append(tuple(row))
    print("\n## Lite engine quality (CER = edit distance / reference characters)\n")
    print(table(per_page, ("page", "set", *(f"CER {n}" for n in names))))
    print()
    summary = []
    for group, by_name in groups.items():
        for name, scores in by_name.items():
            weighted = sum(s * n for s, n in scores) / sum(n for _, n in scores)
            summary.append((group, name, str(len(scores)), f"{weighted:.2%}",
                            f"{statistics.median(s for s, _ in scores):.2%}", f"{max(s for s, _ in scores):.2%}"))
    print(table(summary, ("set", "engine", "pages", "CER (all chars)", "median page", "worst page")))
    print("\nlines PP-OCR read again after Tesseract: " +
          ", ".join(f"{n} {r.reread:.1%}" for n, r in runs.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer pages, for a smoke run")
    parser.add_argument("--pdf", type=Path, default=PDF)
    parser.add_argument("--no-speed", action="store_true", help="quality only")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a [lite] setting to try, e.g. --set det_max_side=960 (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    tuned = dict(item.split("=", 1) for item in args.set)
    log.info("lite settings: %s", LiteSettings(**tuned))

    configs = {"configured": tuned, "ppocr baseline": {**tuned, "recognizer": "ppocr"}}
    log.info("rendering pages")
    pages = synthetic_pages(args.quick) + pdf_pages(args.pdf, args.quick)
    urls = [data_url(p.image) for p in pages]
    runs = {}
    for name, config in configs.items():
        log.info("quality: %d pages, 2 workers, %s", len(pages), name)
        runs[name] = asyncio.run(run_pages(LiteSettings(**{**config, "workers": 2, "threads_per_worker": 1}), urls))
    names = {name: f"{name} ({run.model})" for name, run in runs.items()}
    quality(pages, {names[n]: r for n, r in runs.items()})

    if args.no_speed:
        return
    speed_urls = [u for p, u in zip(pages, urls, strict=True) if p.group == "synthetic clean"]
    speed_urls += [u for p, u in zip(pages, urls, strict=True) if p.group == "pdf (text layer)"]
    n = len(speed_urls)
    speed, per_page_cpu = [], {}
    for name, config in configs.items():
        for workers in (1, 2):
            log.info("speed: %d pages, %d worker(s) x 1 thread, %s", n, workers, name)
            run = asyncio.run(run_pages(LiteSettings(**{**config, "workers": workers, "threads_per_worker": 1}),
                                        speed_urls))
            timing = run.timing
            per_page_cpu.setdefault(name, timing.cpu_s / n)
            speed.append((names[name], f"{workers} x 1 thread", str(n), f"{timing.wall_s:.1f}",
                          f"{timing.wall_s * workers / n:.2f}", f"{timing.cpu_s / n:.2f}", f"{n / timing.wall_s:.3f}"))
    print(f"\n## Lite engine speed (A4-size pages at {DPI} dpi: clean synthetic + PDF pages)\n")
    print(table(speed, ("engine", "workers", "pages", "wall s", "wall s/page per worker", "CPU s/page", "pages/s")))
    baseline, configured = per_page_cpu["ppocr baseline"], per_page_cpu["configured"]
    print(f"\nCPU time per page, 1 worker: configured {configured:.2f} s, baseline {baseline:.2f} s, "
          f"{baseline / configured:.2f}x faster than the baseline")
    print(f"load average during the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
