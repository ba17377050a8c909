#!/usr/bin/env python
"""`resolution: "auto"` against Gundam: vision tokens per page on a mixed set, and what the
text estimate costs.

The set is rendered here with Pillow and the DejaVu / Liberation fonts (Debian's
fonts-dejavu-core, fonts-liberation), and as born-digital PDFs whose text layer holds the
same kind of text (Helvetica, written by hand as tests/helpers.py does):

* slides: 16:9 pages, a title and a few bullet lines of large type (images and a PDF);
* book pages: A4, one column of 11 to 12 pt serif (images, a JPEG scan, a PDF);
* receipts: a narrow till roll of 9 pt monospace;
* dense pages: a five-column newspaper of 7.5 to 8 pt and forms of 8 to 9 pt labels in ruled
  boxes (images and PDFs).

Each page goes through the server's own path: a PNG/JPEG as it is sent on undecoded
(`estimate_encoded`: decoded, then estimated), a PDF page through `render_page(...,
estimate=True)` (rendered at 144 dpi, estimated from its text layer where that covers the
ink). The table gives, per page, the estimate (characters against the true count, text
tokens, small type in page pixels), the mode `auto` picks, the vision tokens vLLM's processor
spends on it (`image_tokens`: what `usage.image_tokens` reports) in that mode and in Gundam,
and the estimator's CPU time (decoding and rendering not included; they are given apart).

    python scripts/bench_auto_resolution.py [--calibrate] [--repeat N]

`--calibrate` prints how the pixel estimator's character count and type size compare with
the truth on full pages of each font and size (the constants in text_density.py come from it).
No model runs here: the figures say what each page would cost, not how well it would be read
(the only DeepSeek-OCR weights on this machine are the tests' random tiny checkpoint).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai_ocr.inputs.documents import DocumentInfo, render_page  # noqa: E402
from openai_ocr.inputs.text_density import PageText, estimate_encoded, from_image  # noqa: E402
from openai_ocr.ocr.auto_resolution import choose  # noqa: E402
from openai_ocr.ocr.resolution import MODES, image_tokens  # noqa: E402
from openai_ocr.settings import AutoResolutionSettings  # noqa: E402
from tests.helpers import pdf_of  # noqa: E402

DPI = 144
A4 = (round(8.27 * DPI), round(11.69 * DPI))
FONTS = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSans-Bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "DejaVuSansMono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "LiberationSans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "LiberationSans-Bold": "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "LiberationSerif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "LiberationSansNarrow": "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
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
    "document database system value server request response error Monday London Paris council "
    "market election minister weather football shares police hospital"
).split()
DENSE = {"newspaper", "form"}


@dataclass
class Page:
    name: str
    kind: str  # slide, book, receipt, newspaper, form
    source: str  # png, jpeg, pdf
    data: bytes
    width: int
    height: int
    true_chars: int


def font(name: str, px: float) -> ImageFont.FreeTypeFont:
    path = FONTS[name]
    if not Path(path).is_file():
        raise SystemExit(f"{path} is missing: apt-get install fonts-dejavu-core fonts-liberation")
    return ImageFont.truetype(path, max(1, round(px)))


def words_line(rng: random.Random, fits: int | float, measure: object = None) -> str:
    """Random words as wide as fit: `fits` characters, or pixels under `measure` (a font)."""
    line = ""
    while True:
        trial = f"{line} {rng.choice(WORDS)}".strip()
        too_long = (measure.getlength(trial) > fits if isinstance(measure, ImageFont.FreeTypeFont)
                    else len(trial) > fits)
        if too_long and line:
            return line
        line = trial


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def jpeg_scan(image: Image.Image, seed: int) -> bytes:
    """An office scan of a page: a little tilt and blur, grey paper, noise, JPEG quality 60."""
    rng = np.random.default_rng(seed)
    gray = image.convert("L").rotate(0.7, resample=Image.Resampling.BICUBIC, fillcolor=255)
    gray = gray.filter(ImageFilter.GaussianBlur(0.6))
    pixels = np.asarray(gray, dtype=np.float32) * 0.82 + 28 + rng.normal(0, 8, (gray.height, gray.width))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=60)
    return out.getvalue()


# -- pages drawn with Pillow ---------------------------------------------------------------

def slide_image(size: tuple[int, int], face: str, title_px: float, body_px: float, bullets: int,
                seed: int, dark: bool = False) -> tuple[Image.Image, int]:
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, "#1d2a44" if dark else "white")
    draw = ImageDraw.Draw(image)
    ink = "white" if dark else "black"
    title = " ".join(rng.choice(WORDS) for _ in range(4)).title()
    draw.text((width * 0.07, height * 0.08), title, font=font(face + "-Bold" if face + "-Bold" in FONTS
                                                                else face, title_px), fill=ink)
    chars = len(title)
    body = font(face, body_px)
    y = height * 0.08 + title_px * 2.2
    for _ in range(bullets):
        line = words_line(rng, min(width * 0.8, body.getlength("m" * 34)), body)
        draw.text((width * 0.09, y), "\u2022 " + line, font=body, fill=ink)
        chars += len(line) + 3
        y += body_px * 1.6
    return image, chars


def book_image(face: str, pt: float, seed: int, size: tuple[int, int] = A4) -> tuple[Image.Image, int]:
    rng = random.Random(seed)
    px = pt * DPI / 72
    body = font(face, px)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    margin = round(DPI * 0.9)
    y, chars = margin, 0
    heading = font(face, px * 1.6)
    title = " ".join(rng.choice(WORDS) for _ in range(3)).title()
    draw.text((margin, y), title, font=heading, fill="black")
    y += round(px * 3.5)
    chars += len(title)
    lines = 0
    while y < size[1] - margin - px:
        line = words_line(rng, size[0] - 2 * margin, body)
        draw.text((margin + (round(px * 2) if lines % 9 == 0 else 0), y), line, font=body, fill="black")
        chars += len(line) + 1
        y += round(px * 1.3)
        lines += 1
    folio = str(rng.randrange(10, 400))
    draw.text((size[0] // 2, size[1] - margin // 2), folio, font=body, fill="black")
    return image, chars + len(folio)


def receipt_image(seed: int) -> tuple[Image.Image, int]:
    rng = random.Random(seed)
    px = 9 * DPI / 72
    face = font("DejaVuSansMono", px)
    width, rows = 576, 46
    image = Image.new("RGB", (width, round(rows * px * 1.4 + 160)), "white")
    draw = ImageDraw.Draw(image)
    chars = 0
    for row in range(rows):
        item = " ".join(rng.choice(WORDS) for _ in range(2)).upper()[:18]
        text = f"{item:<18} {rng.randrange(1, 9):>2} x {rng.randrange(100, 9999) / 100:>7.2f}"
        draw.text((30, 80 + row * px * 1.4), text, font=face, fill="black")
        chars += len(text) + 1
    return image, chars


def newspaper_image(pt: float, seed: int, size: tuple[int, int] = A4, columns: int = 5) -> tuple[Image.Image, int]:
    rng = random.Random(seed)
    px = pt * DPI / 72
    body = font("LiberationSerif", px)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    margin, gutter = round(DPI * 0.4), round(DPI * 0.15)
    masthead = "THE " + rng.choice(WORDS).upper() + " TIMES"
    draw.text((margin, margin), masthead, font=font("DejaVuSerif", px * 4.5), fill="black")
    chars = len(masthead)
    top = margin + round(px * 7)
    draw.line((margin, top - px, size[0] - margin, top - px), fill="black", width=2)
    col_w = (size[0] - 2 * margin - (columns - 1) * gutter) / columns
    for col in range(columns):
        x = margin + col * (col_w + gutter)
        y = top
        while y < size[1] - margin - px:
            if rng.random() < 0.04:  # a headline
                head = font("LiberationSans-Bold", px * 1.8)
                line = words_line(rng, col_w, head)
                draw.text((x, y), line, font=head, fill="black")
                chars += len(line) + 1
                y += round(px * 2.4)
                continue
            line = words_line(rng, col_w, body)
            draw.text((x, y), line, font=body, fill="black")
            chars += len(line) + 1
            y += round(px * 1.15)
    return image, chars


def form_image(pt: float, seed: int) -> tuple[Image.Image, int]:
    rng = random.Random(seed)
    px = pt * DPI / 72
    label, value = font("LiberationSans", px), font("DejaVuSansMono", px)
    image = Image.new("RGB", A4, "white")
    draw = ImageDraw.Draw(image)
    margin = round(DPI * 0.5)
    title = "APPLICATION FOR " + " ".join(rng.choice(WORDS) for _ in range(2)).upper()
    draw.text((margin, margin), title, font=font("LiberationSans-Bold", px * 2), fill="black")
    chars = len(title)
    y = margin + round(px * 4)
    box_h = round(px * 3.2)
    while y < A4[1] - margin - box_h:
        cells = rng.choice([2, 3, 4])
        cell_w = (A4[0] - 2 * margin) / cells
        for c in range(cells):
            x0 = margin + c * cell_w
            draw.rectangle((x0, y, x0 + cell_w, y + box_h), outline="black", width=1)
            name = f"{rng.randrange(1, 40)}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4)))
            filled = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 4)))
            draw.text((x0 + 6, y + 4), name, font=label, fill="black")
            draw.text((x0 + 10, y + 6 + px * 1.3), filled, font=value, fill="#1b2a8a")
            chars += len(name) + len(filled) + 2
        y += box_h
    return image, chars


# -- the same pages as PDFs with a text layer ---------------------------------------------

def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf_page(width_pt: float, height_pt: float,
                  runs: list[tuple[float, float, float, str]], rules: str = "") -> bytes:
    """One page: each run (x pt, y pt from the top, size pt, text) in Helvetica, plus `rules`
    (PDF path operators, drawn first)."""
    ops = [rules] if rules else []
    for x, y, size, text in runs:
        ops.append(f"BT /F1 {size:g} Tf {x:.1f} {height_pt - y - size:.1f} Td ({_escaped(text)}) Tj ET")
    return pdf_of([(width_pt, height_pt, "\n".join(ops).encode("latin-1"))], font=True)


def helvetica_width(text: str, size: float) -> float:
    """Helvetica's advance, estimated with Liberation Sans (metric-compatible)."""
    return font("LiberationSans", size * 10).getlength(text) / 10


def pdf_lines(rng: random.Random, x: float, y: float, width: float, bottom: float, size: float,
              leading: float) -> tuple[list[tuple[float, float, float, str]], int]:
    runs, chars = [], 0
    while y < bottom:
        line = ""
        while True:
            trial = f"{line} {rng.choice(WORDS)}".strip()
            if helvetica_width(trial, size) > width and line:
                break
            line = trial
        runs.append((x, y, size, line))
        chars += len(line) + 1
        y += leading
    return runs, chars


def slide_pdf(seed: int) -> tuple[bytes, int]:
    rng = random.Random(seed)
    runs = [(60.0, 50.0, 36.0, " ".join(rng.choice(WORDS) for _ in range(4)).title())]
    chars = len(runs[0][3])
    for n in range(5):
        line, _ = pdf_lines(rng, 80, 140 + n * 42, 700, 141 + n * 42, 24, 42)
        runs += line
        chars += len(line[0][3]) + 1
    return text_pdf_page(960, 540, runs), chars


def book_pdf(seed: int, size: float = 11, page: tuple[float, float] = (595, 842)) -> tuple[bytes, int]:
    rng = random.Random(seed)
    margin = 72 if page[0] > 500 else 54
    runs, chars = pdf_lines(rng, margin, margin + 18, page[0] - 2 * margin, page[1] - margin, size, size * 1.3)
    return text_pdf_page(*page, runs), chars


def newspaper_pdf(seed: int, size: float = 7.5, columns: int = 5) -> tuple[bytes, int]:
    rng = random.Random(seed)
    runs = [(30.0, 28.0, 30.0, "THE DAILY " + rng.choice(WORDS).upper())]
    chars = len(runs[0][3])
    gutter = 9.0
    col_w = (595 - 60 - (columns - 1) * gutter) / columns
    for col in range(columns):
        lines, n = pdf_lines(rng, 30 + col * (col_w + gutter), 80, col_w, 842 - 30, size, size * 1.15)
        runs += lines
        chars += n
    return text_pdf_page(595, 842, runs, rules="1 w 30 770 m 565 770 l S"), chars


def form_pdf(seed: int, size: float = 8) -> tuple[bytes, int]:
    rng = random.Random(seed)
    runs = [(36.0, 36.0, 16.0, "APPLICATION FOR " + rng.choice(WORDS).upper())]
    chars = len(runs[0][3])
    rules = []
    y = 80.0
    while y < 842 - 60:
        cells = rng.choice([2, 3, 4])
        cell_w = (595 - 72) / cells
        for c in range(cells):
            x0 = 36 + c * cell_w
            rules.append(f"{x0:.1f} {842 - y - 26:.1f} {cell_w:.1f} 26 re S")
            name = f"{rng.randrange(1, 40)}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4)))
            filled = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 4)))
            runs.append((x0 + 3, y + 2, size, name))
            if filled:
                runs.append((x0 + 6, y + 4 + size * 1.2, size, filled))
            chars += len(name) + len(filled) + 2
        y += 26
    return text_pdf_page(595, 842, runs, rules="0.6 w " + " ".join(rules)), chars


def mixed_set() -> list[Page]:
    pages: list[Page] = []

    def add_image(name: str, kind: str, drawn: tuple[Image.Image, int], scan_seed: int | None = None) -> None:
        image, chars = drawn
        data = png(image) if scan_seed is None else jpeg_scan(image, scan_seed)
        pages.append(Page(name, kind, "png" if scan_seed is None else "jpeg", data, *image.size, chars))

    def add_pdf(name: str, kind: str, made: tuple[bytes, int]) -> None:
        data, chars = made
        info = DocumentInfo("pdf", 1, [1], {1: 0}, DPI)
        page = render_page(data, info, 1, max_pixels=64_000_000, max_bytes=len(data) + 1)
        pages.append(Page(name, kind, "pdf", data, page.width, page.height, chars))

    book = (round(6 * DPI), round(9 * DPI))  # a 6 x 9 in trade book page
    add_image("slide 1920x1080, 44 px bullets", "slide", slide_image((1920, 1080), "DejaVuSans", 80, 44, 5, 1))
    add_image("slide 1280x720, 30 px bullets", "slide", slide_image((1280, 720), "LiberationSans", 52, 30, 6, 2))
    add_image("slide 1280x720 dark, 28 px", "slide", slide_image((1280, 720), "DejaVuSans", 48, 28, 4, 3, dark=True))
    add_image("slide 1600x900, 34 px bullets", "slide", slide_image((1600, 900), "LiberationSerif", 60, 34, 6, 18))
    add_pdf("slide PDF 960x540 pt, 24 pt", "slide", slide_pdf(4))
    add_pdf("slide PDF 960x540 pt, 24 pt (2)", "slide", slide_pdf(19))
    add_image("book 6x9 in 11 pt DejaVu Serif", "book", book_image("DejaVuSerif", 11, 5, book))
    add_image("book 6x9 in 11 pt Liberation Serif", "book", book_image("LiberationSerif", 11, 6, book))
    add_image("book 6x9 in 11 pt scan (JPEG)", "book", book_image("LiberationSerif", 11, 7, book), scan_seed=7)
    add_image("book 6x9 in 10 pt Liberation Serif", "book", book_image("LiberationSerif", 10, 20, book))
    add_pdf("book PDF 6x9 in 11 pt Helvetica", "book", book_pdf(8, 11, (432, 648)))
    add_pdf("book PDF 6x9 in 10 pt Helvetica", "book", book_pdf(21, 10, (432, 648)))
    add_image("report A4 11 pt Liberation Serif", "report", book_image("LiberationSerif", 11, 22))
    add_pdf("report PDF A4 12 pt Helvetica", "report", book_pdf(9, 12))
    add_image("receipt 576 px, 9 pt mono", "receipt", receipt_image(10))
    add_image("receipt 576 px, 9 pt mono (2)", "receipt", receipt_image(23))
    add_image("newspaper A4 5 col 8 pt", "newspaper", newspaper_image(8, 11))
    add_image("newspaper A3 6 col 8 pt", "newspaper",
              newspaper_image(8, 12, (round(11.69 * DPI), round(16.54 * DPI)), columns=6))
    add_image("newspaper A4 5 col 7.5 pt scan (JPEG)", "newspaper", newspaper_image(7.5, 13), scan_seed=13)
    add_pdf("newspaper PDF A4 5 col 7.5 pt", "newspaper", newspaper_pdf(14, 7.5))
    add_image("form A4 9 pt", "form", form_image(9, 15))
    add_image("form A4 8 pt", "form", form_image(8, 16))
    add_pdf("form PDF A4 8 pt", "form", form_pdf(17, 8))
    return pages


# -- measuring -----------------------------------------------------------------------------

def estimate(page: Page) -> tuple[PageText | None, float]:
    """(the estimate, milliseconds of decoding or rendering alone) by the server's path."""
    if page.source == "pdf":
        info = DocumentInfo("pdf", 1, [1], {1: 0}, DPI)
        started = time.process_time()
        render_page(page.data, info, 1, max_pixels=64_000_000, max_bytes=len(page.data) + 1)
        plain = (time.process_time() - started) * 1000
        rendered = render_page(page.data, info, 1, max_pixels=64_000_000, max_bytes=len(page.data) + 1,
                               estimate=True)
        return rendered.text_estimate, plain
    text = estimate_encoded(page.data)
    started = time.process_time()
    with Image.open(io.BytesIO(page.data)) as image:
        if image.format == "JPEG":
            image.draft("L", (image.width // 2, image.height // 2))
        image.load()
    return text, (time.process_time() - started) * 1000


def run(repeat: int) -> int:
    config = AutoResolutionSettings()
    pages = mixed_set()
    gundam = MODES["deepseek-ocr"]["gundam"]
    rows = []
    for page in pages:
        runs = [estimate(page) for _ in range(repeat)]
        text = runs[0][0]
        cpu = statistics.median(t.ms for t, _ in runs if t is not None) if text else float("nan")
        decode = statistics.median(d for _, d in runs)
        chosen = choose("deepseek-ocr", text, page.width, page.height, config)
        mode = MODES["deepseek-ocr"][chosen.resolution]
        rows.append((page, text, chosen, image_tokens("deepseek-ocr", mode, page.width, page.height),
                     image_tokens("deepseek-ocr", gundam, page.width, page.height), cpu, decode))
    header = ("| page | size | est. from | chars est./true | text tokens | small type px | auto mode | "
              "text/vision (paper) | vision tokens auto | gundam | estimator CPU ms | decode/render ms |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for page, text, chosen, auto_tokens, gundam_tokens, cpu, decode in rows:
        assert text is not None
        print(f"| {page.name} ({page.source}) | {page.width}x{page.height} | {text.source} | "
              f"{text.chars}/{page.true_chars} | {text.tokens:.0f} | {text.text_px:.1f} | "
              f"{chosen.resolution} | {chosen.compression:.1f} | {auto_tokens} | {gundam_tokens} | "
              f"{cpu:.1f} | {decode:.1f} |")
    total_auto = sum(r[3] for r in rows)
    total_gundam = sum(r[4] for r in rows)
    dense = [r for r in rows if r[0].kind in DENSE]
    smaller_dense = [r[0].name for r in dense if r[2].resolution != "gundam"]
    cpus = [r[5] for r in rows]
    image_cpus = [r[5] for r in rows if r[0].source != "pdf"]
    pdf_cpus = [r[5] for r in rows if r[0].source == "pdf"]
    print()
    print("| kind | pages | modes auto picked | vision tokens auto | gundam | fewer with auto |")
    print("|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r[0].kind for r in rows):
        mine = [r for r in rows if r[0].kind == kind]
        picked = ", ".join(sorted({r[2].resolution for r in mine}, key=list(MODES["deepseek-ocr"]).index))
        auto_sum, gundam_sum = sum(r[3] for r in mine), sum(r[4] for r in mine)
        print(f"| {kind} | {len(mine)} | {picked} | {auto_sum} | {gundam_sum} | {gundam_sum / auto_sum:.2f}x |")
    print()
    print(f"pages: {len(rows)}; vision tokens, auto: {total_auto}, gundam: {total_gundam} "
          f"({total_gundam / total_auto:.2f}x fewer with auto)")
    print(f"dense pages (newspapers, forms): {len(dense)}, read in a smaller mode than gundam: "
          f"{len(smaller_dense)} {smaller_dense or ''}")
    print(f"estimator CPU per page: median {statistics.median(cpus):.1f} ms, max {max(cpus):.1f} ms "
          f"(images: median {statistics.median(image_cpus):.1f} ms; PDF pages, text layer and pixels: "
          f"median {statistics.median(pdf_cpus):.1f} ms)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}")
    rest = [r for r in rows if r[0].kind not in DENSE]
    rest_auto, rest_gundam = sum(r[3] for r in rest), sum(r[4] for r in rest)
    print(f"without the dense pages: {rest_gundam / rest_auto:.2f}x fewer; the dense pages hold "
          f"{sum(r[4] for r in dense) / total_gundam:.0%} of gundam's tokens here")
    print("at least 2x fewer on the whole set:", "yes" if total_gundam >= 2 * total_auto else "no")
    print("no dense page in a smaller mode than gundam:", "yes" if not smaller_dense else "NO")
    return 1 if smaller_dense else 0


def calibrate() -> int:
    """The pixel estimator against the truth: full A4 pages of random words per font and size."""
    print("| font | em px | true chars | est./true chars | est. median em / true | est. small-type em / true |")
    print("|---|---|---|---|---|---|")
    chars_ratios, em_ratios = [], []
    for name in FONTS:
        for px in (12, 16, 20, 24, 32, 48):
            rng = random.Random(px)
            face = font(name, px)
            image = Image.new("RGB", A4, "white")
            draw = ImageDraw.Draw(image)
            y, chars = 100, 0
            while y < A4[1] - 100 - px:
                line = words_line(rng, A4[0] - 200, face)
                draw.text((100, y), line, font=face, fill="black")
                chars += len(line) + 1
                y += round(px * 1.25)
            text = from_image(image)
            chars_ratios.append(text.chars / chars)
            em_ratios.append(text.median_px / px)
            print(f"| {name} | {px} | {chars} | {text.chars / chars:.2f} | {text.median_px / px:.2f} | "
                  f"{text.text_px / px:.2f} |")
    print(f"\nchars est./true: {min(chars_ratios):.2f} to {max(chars_ratios):.2f}, median "
          f"{statistics.median(chars_ratios):.2f}; em est./true: {min(em_ratios):.2f} to "
          f"{max(em_ratios):.2f}, median {statistics.median(em_ratios):.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true", help="the estimator against the truth, per font")
    parser.add_argument("--repeat", type=int, default=5, help="estimates per page (median CPU time)")
    args = parser.parse_args()
    if args.calibrate:
        return calibrate()
    return run(args.repeat)


if __name__ == "__main__":
    sys.exit(main())
