"""`resolution: "auto"`: each page in the smallest mode that still holds its text.

The DeepSeek-OCR paper (section 4.1, Fox benchmark) measured how decoding precision falls as
text is compressed into fewer vision tokens: about 97% at up to 10 text tokens per vision
token, about 90% at 10 to 12, 60% at 20. A mode qualifies for a page when

* its vision tokens hold the page's estimated text tokens at no more than
  `max_compression` (10) to one, counted as the paper counts them: the tokens that carry the
  image (16 x 16 for a 1024 view, 8 x 8 for 512, 10 x 10 per 640 tile), not the row-end and
  separator tokens the prompt also holds; and
* the page's small type (the em below which a tenth of its characters lie) is still at least
  `min_text_px` (14) pixels in the view the encoder reads most finely: the square an untiled
  mode stretches the page to, or Gundam's tiles (the vertical scale; a page squeezed more
  across than down, such as a landscape slide, by the geometric mean of the two).

The smallest qualifying mode of tiny, small, base, large wins; Gundam otherwise (the default,
and the mode for dense pages). A page without text takes Tiny. DeepSeek-OCR-2 has one mode,
so `auto` is Gundam there. The estimate (`openai_ocr.inputs.text_density`) comes from a PDF
page's text layer or from the pixels; without one the page takes Gundam.

Pure: the service calls `page_plan` with each page's estimate, and a page that loops is read
again in the next larger mode (`PageReader.steps`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from openai_ocr.inputs.text_density import PageText
from openai_ocr.ocr.recovery import ORDER
from openai_ocr.ocr.resolution import (
    DEFAULT_RESOLUTION,
    DOWNSAMPLE_RATIO,
    MODES,
    PATCH_SIZE,
    Family,
    Resolution,
    tile_grid,
)
from openai_ocr.ocr.translation import SamplingPlan, mode_kwargs
from openai_ocr.settings import AutoResolutionSettings


@dataclass(frozen=True)
class Choice:
    """A page's mode and why: its text tokens per vision token and its small type at the
    mode's scale (0 for a page without text)."""

    resolution: str
    compression: float
    text_px: float


def _cells(size: int) -> int:
    return math.ceil(size / PATCH_SIZE / DOWNSAMPLE_RATIO)


def tiles(mode: Resolution, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) of Gundam's tiles for a page; (1, 1) where it is not tiled."""
    if mode.crop_mode and (width > mode.image_size or height > mode.image_size):
        return tile_grid(width, height, mode.image_size)
    return 1, 1


def paper_tokens(mode: Resolution, width: int, height: int) -> int:
    """Vision tokens as the paper counts them: the global view's q x q and each tile's."""
    cols, rows = tiles(mode, width, height)
    tokens = _cells(mode.base_size) ** 2
    if cols * rows > 1:
        tokens += cols * rows * _cells(mode.image_size) ** 2
    return tokens


def finest_scale(mode: Resolution, width: int, height: int) -> float:
    """Encoder pixels per page pixel for type in the view that shows the page largest (vLLM's
    DeepSeek-OCR processor: an untiled mode stretches the page to a square; Gundam pads it
    into its global view, or stretches it to its tile grid). The vertical scale, where the
    page is squeezed less across than down; else the geometric mean of the two: letters
    squeezed across (a landscape slide in a square) stay more legible than letters as short."""
    cols, rows = tiles(mode, width, height)
    if cols * rows > 1:
        across, down = cols * mode.image_size / width, rows * mode.image_size / height
    elif mode.crop_mode:  # a small page in Gundam: only the padded global view
        across = down = mode.base_size / max(width, height)
    else:
        across, down = mode.image_size / width, mode.image_size / height
    return min(down, math.sqrt(across * down))


def choose(family: Family, text: PageText | None, width: int, height: int,
           config: AutoResolutionSettings) -> Choice:
    """The smallest mode of `family` that holds the page's text (module doc)."""
    modes = MODES[family]
    fallback = DEFAULT_RESOLUTION if DEFAULT_RESOLUTION in modes else next(iter(modes))
    if text is None:
        return Choice(fallback, 0.0, 0.0)
    for name in ORDER:
        mode = modes.get(name)
        if mode is None:
            continue
        compression = text.tokens / paper_tokens(mode, width, height)
        scaled = text.text_px * finest_scale(mode, width, height)
        if name == fallback or (compression <= config.max_compression
                                and (text.chars == 0 or scaled >= config.min_text_px)):
            return Choice(name, round(compression, 2), round(scaled, 1))
    return Choice(fallback, 0.0, 0.0)  # unreachable: the fallback is one of the modes


def page_plan(plan: SamplingPlan, family: Family, text: PageText | None, width: int, height: int,
              config: AutoResolutionSettings) -> SamplingPlan:
    """An `auto` plan made concrete for one page (any other plan as it is)."""
    if not plan.auto:
        return plan
    name = choose(family, text, width, height, config).resolution
    return dataclasses.replace(plan, resolution=name, mm_processor_kwargs=mode_kwargs(name, MODES[family][name]))
