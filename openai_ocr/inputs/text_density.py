"""How much text a page holds and how small it is, estimated in a few milliseconds.

`resolution: "auto"` (`openai_ocr.ocr.auto_resolution`) picks each page's vision mode from
this: the estimated text tokens (the DeepSeek-OCR paper's compression line) and the size of
the page's small type (legibility at the mode's scale). Two sources:

* a PDF page's own text layer (`from_text_layer`): its characters, and the height of their
  loose boxes (font ascent to descent, so the text matrix's scaling counts) as the type size;
* the pixels (`from_image`): a grey copy at most `WORK_SIDE` pixels long, binarised (Otsu;
  light-on-dark pages inverted), cut into vertical strips so the columns of a multi-column
  page separate; in each strip the runs of inked rows are text lines (their height is the
  type size), each line's length is its inked columns once gaps narrower than about a word
  space are closed, and characters = length / (average advance per character). Rules,
  specks and filled areas (photos, black borders) are left out; a band taller than 1.6
  times the median line is counted as several touching lines.

Both run where pages are decoded (the decoder processes): pure CPU work on an image or PDF
page already in hand; `estimate_encoded` decodes a PNG/JPEG/WebP that is otherwise sent on
as it is (JPEG at a reduced scale, for almost nothing). Estimates err towards more text and
smaller type, which choose the larger mode.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

TextSource = Literal["text_layer", "image", "none"]

CHARS_PER_TOKEN = 3.5
"""Characters (spaces included) per text token of DeepSeek-OCR's tokenizer for Latin-script
text. Not measured with its tokenizer (its files cannot be fetched here): BPE tokenizers of
its size (129k entries) give about 4 characters a token on English prose; 3.5 errs towards
more tokens (the larger mode). CJK characters count one token each."""

WORK_SIDE = 2000
"""Long side of the working copy of a page image, at most, in pixels (an integer reduction
factor: a 144-dpi A4 page is used as it is, a 300-dpi scan at half its size)."""

POOL = 4
"""Columns of the working copy pooled into one cell (rows are not pooled)."""

EXTENT_PER_EM = 0.85
"""Height of a line of Latin text's ink (ascender top to descender bottom) per em."""

LEADING = 1.2
"""Baseline-to-baseline distance per em assumed for lines whose ink touches (set tighter than
that, their type is judged smaller than it is: the larger mode)."""

LINE_PEAK_SHARE = 0.4
"""A core of dense rows is a line of its own when its densest row holds at least this share
of its run's densest row (else it is the ascender or descender fringe of a line)."""

WORD_GAP_PER_EM = 0.6
"""Gaps up to this wide (a word space is about 0.3 em) are closed when a line's length is
measured; column gutters are wider."""

ADVANCE_PER_EM = 0.45
"""Average advance per character, spaces included, per em."""

LOOSE_BOX_PER_EM = 1.15
"""Height of pdfium's loose character box (the font's ascent to descent) per em: 1.17 for
Helvetica, 1.1 to 1.2 for common text fonts."""

STRIP_COUNT = 8
MIN_STRIP_CELLS = 16
SMALL_TYPE_SHARE = 0.10
"""The type size reported as `text_px` is the one below which this share of the characters
lies: a page whose text is one tenth footnotes is judged by its footnotes."""

SMALL_TYPE_BIAS = 1.2
"""The pixel estimate's `text_px` is multiplied by this: on a page of one size its lower
tenth reads 0.74 to 0.85 of the true em (pieces of lines without descenders), 1.07 for
6-point narrow type (scripts/bench_auto_resolution.py --calibrate)."""


@dataclass(frozen=True)
class PageText:
    """What one page holds in text, estimated (picklable: it comes back from the decoders)."""

    chars: int
    """Estimated characters, spaces included."""
    tokens: float
    """Estimated text tokens (`CHARS_PER_TOKEN`; CJK characters one each)."""
    text_px: float
    """Small-type size: the em (font size) in page pixels below which `SMALL_TYPE_SHARE` of
    the characters lie; 0 without text."""
    median_px: float
    """The characters' median em in page pixels; 0 without text."""
    lines: int
    source: TextSource
    ms: float = 0.0
    """CPU time the estimate took (decoding not included), in milliseconds."""


EMPTY = PageText(chars=0, tokens=0.0, text_px=0.0, median_px=0.0, lines=0, source="none")


_WIDE = re.compile("[\u2e80-\U0010ffff]")


def tokens_of(text: str) -> float:
    """Text tokens of a text: CJK (wide) characters one each, the rest `CHARS_PER_TOKEN` a token."""
    wide = len(_WIDE.findall(text))
    return wide + (len(text) - wide) / CHARS_PER_TOKEN


def weighted_quantile(values: np.ndarray, weights: np.ndarray, share: float) -> float:
    """The value below which `share` of the total weight lies."""
    if values.size == 0 or float(weights.sum()) <= 0:
        return 0.0
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, share * cumulative[-1]))
    return float(values[order][min(index, values.size - 1)])


# -- from pixels ------------------------------------------------------------------------

def _otsu(histogram: np.ndarray) -> int:
    hist = histogram[:256].astype(np.float64)
    total = hist.sum()
    weight_low = np.cumsum(hist)
    mass_low = np.cumsum(hist * np.arange(256))
    weight_high = total - weight_low
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass_low[-1] * weight_low / total - mass_low) ** 2 / (weight_low * weight_high)
    between[~np.isfinite(between)] = 0
    return int(np.argmax(between))


def ink_mask(image: Image.Image) -> tuple[np.ndarray, int]:
    """The page's ink at `factor` (rows) and 4 * `factor` (columns) pixels a cell, and
    `factor`: rows keep their detail (tightly set lines stay apart), columns need little."""
    factor = max(1, math.ceil(max(image.size) / WORK_SIDE))
    gray = image.convert("L")
    if factor > 1:
        gray = gray.reduce(factor)
    width, height = gray.size
    pixels = np.frombuffer(gray.tobytes(), dtype=np.uint8).reshape(height, width)  # 3x asarray's speed
    sample = pixels[::4, ::4]  # the threshold from a sixteenth of the pixels: enough, 16x faster
    threshold = _otsu(np.bincount(sample.ravel(), minlength=256))
    dark = pixels[:, :pixels.shape[1] // POOL * POOL] <= threshold
    # ink is the side the background is not on: the class holding most pixels is the paper
    if 2 * int(np.count_nonzero(sample <= threshold)) > sample.size:
        dark = ~dark
    # any ink in each run of POOL pixels of a row: POOL booleans read as one integer
    return np.ascontiguousarray(dark).view(np.uint32) != 0, factor


def _closed(rows: np.ndarray, gap: int) -> np.ndarray:
    """Each row with its gaps of at most `gap` False cells between two True cells filled."""
    width = rows.shape[1]
    index = np.arange(width)
    last = np.maximum.accumulate(np.where(rows, index, -width - gap - 2), axis=1)
    following = np.minimum.accumulate(np.where(rows, index, 2 * width + gap + 2)[:, ::-1], axis=1)[:, ::-1]
    return rows | (following - last - 1 <= gap)


SOLID = 0.95
"""A band whose cells are inked more densely than this is a filled area (a photo, a black
border), not text: text leaves some cells of its rows blank even after pooling."""

ROW_SHARE = 0.12
"""A row of a strip belongs to a text line when it holds at least this share of the strip's
typical inked-row count (its 95th percentile): the sparse ascender and descender rows
between tightly set lines then separate them."""


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strip, start, end) of each run of True in each row of `rows` (strips x rows), in
    order of strip, then start."""
    edges = np.diff(np.pad(rows, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    strip_of, starts = np.nonzero(edges == 1)
    return strip_of, starts, np.nonzero(edges == -1)[1]


def from_image(image: Image.Image) -> PageText:
    """The text of a page image, estimated from its pixels (see the module's doc)."""
    started = time.process_time()
    ink, factor = ink_mask(image)
    height, width = ink.shape
    if int(np.count_nonzero(ink)) < max(8, ink.size // 20000):
        return _timed(EMPTY, started)
    strips = max(1, min(STRIP_COUNT, width // MIN_STRIP_CELLS))
    strip = width // strips
    counts = ink[:, :strip * strips].reshape(height, strips, strip).sum(axis=2, dtype=np.int32).T
    # runs of inked rows (a line, or lines whose ascenders and descenders touch) and, inside
    # them, the cores of dense rows (one a line: its x-height band)
    run_strip, run_start, run_end = _runs(counts > 0)
    typical = np.array([np.percentile(row[row > 0], 95) if row.any() else 0 for row in counts])
    core_strip, core_start, core_end = _runs(counts >= np.maximum(1, ROW_SHARE * typical)[:, None])
    if run_start.size == 0 or core_start.size == 0:
        return _timed(EMPTY, started)
    core_peak = _reduce_runs(np.maximum, counts.ravel(), core_strip * height + core_start,
                             core_strip * height + core_end)
    owner = np.searchsorted(run_strip * height + run_start, core_strip * height + core_start,
                            side="right") - 1
    run_peak = np.zeros(run_start.size, dtype=np.int64)
    np.maximum.at(run_peak, owner, core_peak)
    is_line = core_peak >= LINE_PEAK_SHARE * run_peak[owner]  # not an ascender or descender fringe
    lines = np.maximum(1, np.bincount(owner[is_line], minlength=run_start.size)).astype(np.float64)
    heights = (run_end - run_start).astype(np.float64)
    em = (heights - 1) / (LEADING * lines - (LEADING - EXTENT_PER_EM))  # in working pixels
    em = _across_strips(em, lines, run_strip, run_start, run_end, strips)
    cumulative = np.pad(np.cumsum(counts, axis=1), ((0, 0), (1, 0)))
    inks = (cumulative[run_strip, run_end] - cumulative[run_strip, run_start]).astype(np.float64)
    plausible = heights >= 3
    if not plausible.any():
        return _timed(EMPTY, started)
    median = weighted_quantile(em[plausible], inks[plausible], 0.5)
    gap = max(1, round(WORD_GAP_PER_EM * median / POOL))  # closes word spaces, not gutters
    widths = np.zeros(run_start.size)  # inked cells of each run, its word spaces closed
    for s in np.unique(run_strip):
        mine = np.flatnonzero(run_strip == s)
        bounds = np.stack([run_start[mine], run_end[mine]], axis=1).ravel()
        bounds = bounds[:-1] if bounds[-1] == height else bounds  # the last run ends there anyway
        columns = np.logical_or.reduceat(ink[:, s * strip:(s + 1) * strip], bounds, axis=0)[0::2]
        widths[mine] = _closed(columns, gap).sum(axis=1)
    density = inks / np.maximum(1.0, heights * widths)
    widths *= POOL  # in pixels of the working copy
    text = plausible & (em >= 0.4 * median) & (density <= SOLID) & (widths >= em)
    if not text.any():
        return _timed(EMPTY, started)
    chars = widths[text] * lines[text] / (ADVANCE_PER_EM * em[text])
    em_page = em[text] * factor
    total = float(chars.sum())
    estimate = PageText(
        chars=round(total), tokens=total / CHARS_PER_TOKEN,
        text_px=round(weighted_quantile(em_page, chars, SMALL_TYPE_SHARE) * SMALL_TYPE_BIAS, 1),
        median_px=round(weighted_quantile(em_page, chars, 0.5), 1),
        lines=int(lines[text].sum()), source="image")
    return _timed(estimate, started)


def _across_strips(em: np.ndarray, lines: np.ndarray, strip_of: np.ndarray, starts: np.ndarray,
                   ends: np.ndarray, strips: int) -> np.ndarray:
    """Each single line's em as the largest of its own and those of the same line's pieces in
    the neighbouring strips (a strip holds a few words: some have no descender, or no
    ascender, and would make the type look smaller than it is). A piece continues a line
    when it covers the line's middle row and is of a similar height."""
    out = em.copy()
    middles = (starts + ends) // 2
    single = lines == 1
    for s in range(strips - 1):
        here, there = np.flatnonzero(strip_of == s), np.flatnonzero(strip_of == s + 1)
        if here.size == 0 or there.size == 0:
            continue
        for a, b in ((here, there), (there, here)):
            j = np.searchsorted(starts[b], middles[a], side="right") - 1
            found = j >= 0
            other = b[np.where(found, j, 0)]
            ratio = em[other] / np.maximum(em[a], 1e-9)
            same = found & (ends[other] > middles[a]) & single[a] & single[other] & (ratio > 0.6) & (ratio < 1.7)
            out[a[same]] = np.maximum(out[a[same]], em[other[same]])
    return out


def _reduce_runs(ufunc: Any, values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """`ufunc` over values[start:end] for each (sorted, disjoint, non-empty) run."""
    bounds = np.stack([starts, ends], axis=1).ravel()
    bounds = bounds[:-1] if bounds[-1] == values.size else bounds
    return np.asarray(ufunc.reduceat(values, bounds)[0::2])


def _timed(estimate: PageText, started: float) -> PageText:
    return PageText(**{**estimate.__dict__, "ms": round((time.process_time() - started) * 1000, 2)})


# -- from a PDF page's text layer -------------------------------------------------------

MAX_SAMPLED_CHARS = 300
"""Characters whose boxes are read for the type size (evenly spread over the page)."""


def from_text_layer(page: Any, scale: float) -> PageText:
    """The text of a pypdfium2 page from its own text layer; `scale` = image pixels per PDF
    point of the rendered page. EMPTY (source "none") when the page has no text."""
    started = time.process_time()
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return _timed(EMPTY, started)
        raw = textpage.get_text_range(0, count)  # one UTF-16 unit a character index
        text = raw.replace("\r", "")
        visible = [i for i in range(0, min(count, len(raw)), max(1, count // MAX_SAMPLED_CHARS))
                   if not raw[i].isspace()]
        if not visible or not text.strip():
            return _timed(EMPTY, started)
        heights = np.array([_box_height(textpage.get_charbox(i, loose=True)) for i in visible])
        heights = heights[heights > 0]
    finally:
        textpage.close()
    collapsed = " ".join(text.split())
    em = heights * scale / LOOSE_BOX_PER_EM
    weights = np.ones_like(em)
    estimate = PageText(
        chars=len(collapsed), tokens=tokens_of(collapsed),
        text_px=round(weighted_quantile(em, weights, SMALL_TYPE_SHARE), 1),
        median_px=round(weighted_quantile(em, weights, 0.5), 1),
        lines=text.count("\n") + 1, source="text_layer")
    return _timed(estimate, started)


def _box_height(box: tuple[float, float, float, float]) -> float:
    left, bottom, right, top = box
    return abs(top - bottom)


LAYER_COVERS = 0.25
"""A text layer is believed when it holds at least this share of the characters the pixels
show (a scanned page with a page number as its only text is judged by its pixels)."""


def combined(layer: PageText, pixels: PageText) -> PageText:
    """The text layer's estimate where it covers the page's ink, else the pixels'."""
    if layer.source == "text_layer" and layer.chars >= LAYER_COVERS * pixels.chars:
        return PageText(**{**layer.__dict__, "ms": round(layer.ms + pixels.ms, 2)})
    return PageText(**{**pixels.__dict__, "ms": round(layer.ms + pixels.ms, 2)})


# -- an encoded image, and failures -----------------------------------------------------

def estimate_or_none(estimator: Callable[..., PageText], *args: Any) -> PageText | None:
    """`estimator(*args)`, or None where it fails: a page whose text cannot be estimated is
    read in the default mode, never refused."""
    try:
        return estimator(*args)
    except Exception:  # noqa: BLE001 - an estimate is an optimisation; the page is still read
        logger.warning("the text of a page could not be estimated; it is read in the default mode",
                       exc_info=True)
        return None



def estimate_encoded(data: bytes) -> PageText | None:
    """Decode an image (a JPEG at a reduced scale) and estimate its text: for pages that are
    otherwise sent on undecoded. Runs in a decoder process; the limits were checked before."""
    return estimate_or_none(_estimate_encoded, data)


def _estimate_encoded(data: bytes) -> PageText:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            full = image.size
            if image.format == "JPEG":  # DCT scaling: 1/2, 1/4 or 1/8, no smaller than asked
                factor = max(1, math.ceil(max(full) / WORK_SIDE))
                image.draft("L", (math.ceil(full[0] / factor), math.ceil(full[1] / factor)))
            reduced = image.size
            image.load()
            estimate = from_image(image)
    # the draft scale changes pixel sizes: report them in the page's own pixels
    zoom = full[1] / max(1, reduced[1])
    if zoom == 1:
        return estimate
    return PageText(**{**estimate.__dict__, "text_px": round(estimate.text_px * zoom, 1),
                       "median_px": round(estimate.median_px * zoom, 1)})
