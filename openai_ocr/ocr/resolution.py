"""DeepSeek-OCR's resolution modes, their validation and their vision-token counts.

DeepSeek-OCR was trained for five modes (Tiny to Gundam) that trade speed for detail;
DeepSeek-OCR-2 has one (a 1024 global view plus 768 px tiles). A request names a mode or
gives the raw `base_size`/`image_size`/`crop_mode` of one; anything else is refused, because
arbitrary sizes change the engine's memory and compute per image.

The token formula mirrors vLLM 0.32's DeepSeek-OCR processor (`tokenize_with_images`,
`count_tiles`): it must, since the prompt's placeholder count has to equal what the vision
encoders produce. Pure: no I/O, used by the routes, the CLI and the vLLM plugin alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from openai_ocr.errors import excerpt
from openai_ocr.settings import ResolutionName

Family = Literal["deepseek-ocr", "deepseek-ocr-2"]

PATCH_SIZE: Final = 16
DOWNSAMPLE_RATIO: Final = 4
MIN_CROPS: Final = 2
MAX_CROPS: Final = 6
DEFAULT_RESOLUTION: Final[ResolutionName] = "gundam"
AUTO: Final = "auto"
"""Not a mode: the OCR routes pick each page's mode (`openai_ocr.ocr.auto_resolution`); it
never reaches the engine, which gets the chosen mode's three values."""
MM_KWARG_KEYS: Final = ("resolution", "base_size", "image_size", "crop_mode")
"""The `mm_processor_kwargs` keys a client may send without vLLM's trust flag."""


@dataclass(frozen=True)
class Resolution:
    """One mode's processor values: global view side, tile side, whether to tile."""

    base_size: int
    image_size: int
    crop_mode: bool

    def mm_processor_kwargs(self) -> dict[str, Any]:
        """The values as vLLM's per-request `mm_processor_kwargs`."""
        return {"base_size": self.base_size, "image_size": self.image_size,
                "crop_mode": self.crop_mode}

    def describe(self) -> str:
        if self.crop_mode:
            return f"{self.base_size} global + {self.image_size} tiles"
        return f"{self.base_size}, no tiles"


MODES: Final[dict[Family, dict[str, Resolution]]] = {
    "deepseek-ocr": {
        "tiny": Resolution(512, 512, False),
        "small": Resolution(640, 640, False),
        "base": Resolution(1024, 1024, False),
        "large": Resolution(1280, 1280, False),
        "gundam": Resolution(1024, 640, True),
    },
    # DeepSeek-OCR-2 was trained with one setting only (its repository's config.py).
    "deepseek-ocr-2": {"gundam": Resolution(1024, 768, True)},
}
assert set(MODES["deepseek-ocr"]) == set(ResolutionName.__args__)  # type: ignore[attr-defined]

class ResolutionError(ValueError):
    """A resolution the served model cannot take; the message lists what it can."""

    def __init__(self, message: str, param: str = "resolution") -> None:
        super().__init__(message)
        self.param = param


def family_of(model: str | None = None, architectures: list[str] | tuple[str, ...] = ()) -> Family:
    """The model family: by architecture when known (config.json), else by name."""
    if any("OCR2" in arch for arch in architectures):
        return "deepseek-ocr-2"
    if architectures:
        return "deepseek-ocr"
    name = (model or "").lower().replace("_", "-")
    return "deepseek-ocr-2" if "ocr-2" in name or "ocr2" in name else "deepseek-ocr"


def supported(family: Family) -> str:
    """The accepted modes of a family, for error messages and docs."""
    return "; ".join(f"{name} ({r.describe()}: base_size={r.base_size}, image_size={r.image_size}, "
                     f"crop_mode={str(r.crop_mode).lower()})" for name, r in MODES[family].items())


def resolve(family: Family, resolution: str | None = None, base_size: int | None = None,
            image_size: int | None = None, crop_mode: bool | None = None,
            default: str = DEFAULT_RESOLUTION) -> tuple[str, Resolution]:
    """The mode a request asks for, as (name, values); raises ResolutionError otherwise.

    `resolution` picks a mode; raw values must then agree with it. Raw values alone must be
    those of exactly one mode (missing ones are taken from the default mode when that fits,
    else from the only mode they match). Nothing given: the server's default.
    """
    modes = MODES[family]
    if resolution is not None:
        mode = modes.get(resolution)
        if mode is None:
            raise ResolutionError(f"resolution {excerpt(resolution)} is not supported by {family}; "
                                  f"choose one of: {supported(family)}")
        name = resolution
    else:
        name = default if default in modes else next(iter(modes))
        mode = modes[name]
    raw = {"base_size": base_size, "image_size": image_size, "crop_mode": crop_mode}
    given = {k: v for k, v in raw.items() if v is not None}
    if not given:
        return name, mode
    if resolution is None:
        matches = [(n, r) for n, r in modes.items()
                   if all(getattr(r, k) == v for k, v in given.items())]
        preferred = [m for m in matches if m[0] == name]
        if len(preferred) == 1 or len(matches) == 1:
            return (preferred or matches)[0]
        which = ", ".join(f"{k}={excerpt(v, quote=False)}" for k, v in given.items())
        if matches:
            raise ResolutionError(f"{which} matches several modes ({', '.join(n for n, _ in matches)});"
                                  f" give `resolution` or all three values", param=next(iter(given)))
        raise ResolutionError(f"{which} is not a resolution {family} supports; choose one of: "
                              f"{supported(family)}", param=next(iter(given)))
    for key, value in given.items():
        if getattr(mode, key) != value:
            raise ResolutionError(f"{key}={excerpt(value, quote=False)} contradicts resolution "
                                  f"{excerpt(name)} ({mode.describe()}); choose one of: "
                                  f"{supported(family)}", param=key)
    return name, mode


def resolve_mm_kwargs(family: Family, kwargs: dict[str, Any] | None) -> tuple[str, Resolution] | None:
    """Validate a client's `mm_processor_kwargs`: None when it has none, else its mode.

    Only the four keys of MM_KWARG_KEYS are accepted, with exactly a mode's values; booleans
    and integers must have their JSON types.
    """
    if not kwargs:
        return None
    unknown = [k for k in kwargs if k not in MM_KWARG_KEYS]
    if unknown:
        raise ResolutionError(f"mm_processor_kwargs may only hold {', '.join(MM_KWARG_KEYS)} (a "
                              f"resolution mode); got {', '.join(excerpt(k) for k in unknown[:5])}. Modes: "
                              f"{supported(family)}", param="mm_processor_kwargs")
    for key in ("base_size", "image_size"):
        value = kwargs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ResolutionError(f"mm_processor_kwargs.{key} must be an integer",
                                  param="mm_processor_kwargs")
    crop = kwargs.get("crop_mode")
    if crop is not None and not isinstance(crop, bool):
        raise ResolutionError("mm_processor_kwargs.crop_mode must be a boolean",
                              param="mm_processor_kwargs")
    name = kwargs.get("resolution")
    if name is not None and not isinstance(name, str):
        raise ResolutionError("mm_processor_kwargs.resolution must be a string",
                              param="mm_processor_kwargs")
    if name == AUTO:
        raise ResolutionError("resolution auto picks a mode per page on the OCR routes (/ocr, "
                              "/v1/ocr); one image sent to the model names its mode: "
                              f"{supported(family)}", param="mm_processor_kwargs")
    try:
        return resolve(family, name, kwargs.get("base_size"), kwargs.get("image_size"), crop)
    except ResolutionError as exc:
        raise ResolutionError(str(exc), param="mm_processor_kwargs") from None


# -- the token formula (vLLM's DeepSeek-OCR processor) --------------------------------------

def _aspect_ratios(min_num: int = MIN_CROPS, max_num: int = MAX_CROPS) -> list[tuple[int, int]]:
    ratios = {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1)
              for j in range(1, n + 1) if min_num <= i * j <= max_num}
    return sorted(ratios, key=lambda r: r[0] * r[1])


def tile_grid(width: int, height: int, image_size: int) -> tuple[int, int]:
    """(columns, rows) of tiles for an image larger than one tile (vLLM's `count_tiles`)."""
    aspect = width / height
    area = width * height
    best_diff = float("inf")
    best = (1, 1)
    for ratio in _aspect_ratios():
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def _side(size: int) -> int:
    return math.ceil((size // PATCH_SIZE) / DOWNSAMPLE_RATIO)


def image_tokens(family: Family, mode: Resolution, width: int, height: int) -> int:
    """Vision tokens of one image: global view, tiles, separators (vLLM's placeholder count).

    DeepSeek-OCR: h*(w+1) for the global view (a newline token per row), plus
    (rows*h2)*(cols*w2+1) for the tiles, plus the view separator. DeepSeek-OCR-2 has no
    newline tokens: h*w + rows*h2*cols*w2 + 1.
    """
    cols = rows = 1
    if mode.crop_mode and (width > mode.image_size or height > mode.image_size):
        cols, rows = tile_grid(width, height, mode.image_size)
    q_base, q_tile = _side(mode.base_size), _side(mode.image_size)
    newline = 1 if family == "deepseek-ocr" else 0
    tokens = q_base * (q_base + newline) + 1
    if cols > 1 or rows > 1:
        tokens += (rows * q_tile) * (cols * q_tile + newline)
    return tokens
