"""Images for the lite engine's networks: the detector's input size, the paper's grey,
check-box frames, padded lines.

Pure numpy/OpenCV, no engine state. Why each step exists:
- `detector_input`: a few input shapes, so a server fed pages of every size does not grow
  by OpenVINO's per-shape kernels and buffers.
- `check_box_frames`: a form's check boxes are read by Tesseract as glyphs (`L]`, `|`,
  `O`); Tesseract's page mode drops them as non-text, and so do we (the caller paints
  them paper-white).
- `pad_line`: Tesseract reads a line with white above and below it faster (10-20% less
  CPU, measured on 150-dpi pages) and no worse than a crop cut tight to the text.
"""

from __future__ import annotations

import cv2
import numpy as np

DETECTOR_STEP = 128
"""The detector's input sides are multiples of this: few input shapes, since OpenVINO keeps
compiled kernels and buffers for each shape it has seen (about 3 MB each, measured)."""


def _detector_side(length: int, scale: float) -> tuple[int, int]:
    """A side's length after scaling and rounding to 32 pixels exactly as rapidocr's own
    resize did (boxes depend on the input to the pixel: a US letter page resized to 990
    instead of 992 wide read a code line out of order), and its length once padded with
    paper to a multiple of `DETECTOR_STEP`. 0 for a side under 16 pixels once scaled, as
    rapidocr had it: no text line fits there."""
    kept = round(length * scale / 32) * 32
    return kept, -(-kept // DETECTOR_STEP) * DETECTOR_STEP


def detector_input(page: np.ndarray, max_side: int,
                   paper: int) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The page as the text detector takes it, and the factors (x, y) from its pixels back to
    the page's; None for a page too thin to hold a line (a 3000 x 5 strip). Scaled so its
    long side is at most `max_side`; each side then a multiple of `DETECTOR_STEP` (padding,
    if any, on the right and bottom), so pages of every size map to a few shapes. An A4 page
    at any dpi is 896 x 1280 as before (905 -> 896), a US letter page 992 x 1280 as before,
    padded to 1024 x 1280.
    """
    height, width = page.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    (scaled_w, padded_w), (scaled_h, padded_h) = _detector_side(width, scale), _detector_side(height, scale)
    if not scaled_w or not scaled_h:
        return None
    resized = cv2.resize(page, (scaled_w, scaled_h)) if (scaled_w, scaled_h) != (width, height) else page
    if (padded_w, padded_h) != (scaled_w, scaled_h):
        resized = cv2.copyMakeBorder(resized, 0, padded_h - scaled_h, 0, padded_w - scaled_w,
                                     cv2.BORDER_CONSTANT, value=(paper, paper, paper))
    return resized, (width / scaled_w, height / scaled_h)


def paper_grey(gray: np.ndarray) -> int:
    """The page's paper grey, which lines are padded and frames painted with: the median of
    the pixels Otsu's threshold puts on the light side, sampled every 4th pixel and row."""
    sample = np.ascontiguousarray(gray[::4, ::4])
    threshold, _ = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    light = sample[sample > threshold]
    return int(np.median(light if light.size else sample))


def _is_frame(labels: np.ndarray, stat: np.ndarray, index: int) -> bool:
    """Whether a component is a box's frame: nothing inside, ink in each corner and along
    85% of each side. At 10-20 px, `B`, `8` and `0` fill their sides' bands and corners,
    but their bars and curves cross the inside (checked first: most glyphs stop there)."""
    x, y, w, h = (int(v) for v in stat[:4])
    part, band = labels[y:y + h, x:x + w] == index, max(1, round(h * 0.15))
    inside = part[band + 1:h - band - 1, band + 1:w - band - 1]
    if not inside.size or inside.any():
        return False
    corners = (part[:band, :band], part[:band, -band:], part[-band:, :band], part[-band:, -band:])
    sides = (part[:band].any(axis=0), part[-band:].any(axis=0), part[:, :band].any(axis=1), part[:, -band:].any(axis=1))
    return all(corner.any() for corner in corners) and min(side.mean() for side in sides) >= 0.85


def check_box_frames(gray: np.ndarray, line_height: float) -> np.ndarray | None:
    """A mask of the page's check-box frames (grown by a pixel), or None when it has none.

    A check box is a component about as wide as it is tall, between 0.45 and 2 text line
    heights (`line_height`: the detector's boxes, which hold a line with some paper), whose
    frame `_is_frame` recognises: no letter of a Latin script is one (`O` and `D` have
    round sides, `H` and `E` open ones). Found on the whole page, not per line: the
    detector often cuts a line's box through the frame in front of it (`| Business`).
    Only the frame is marked: a cross or tick drawn inside it apart from the frame is still
    read (`X Resident`), and so is a letter written in a box. CJK scripts have box-shaped
    characters, so the caller skips this for them.
    """
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    widths, heights = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    square = ((heights >= max(7.0, 0.45 * line_height)) & (heights <= 2 * line_height)
              & (widths >= 0.7 * heights) & (widths <= 1.4 * heights))
    frames = [int(i) for i in np.flatnonzero(square) + 1 if _is_frame(labels, stats[i], int(i))]
    if not frames:
        return None
    return cv2.dilate(np.isin(labels, frames).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def pad_line(line: np.ndarray, paper: int) -> np.ndarray:
    """The line with a quarter of its height of paper added above and below."""
    pad = max(2, line.shape[0] // 4)
    return np.pad(line, ((pad, pad), (0, 0)), constant_values=paper)
