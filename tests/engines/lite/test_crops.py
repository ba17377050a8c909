"""The lite engine's image steps: the paper's grey, check-box frames, line padding."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.helpers import require, require_file

np = require("numpy", "the lite extra")
require("cv2", "the lite extra")

from openai_ocr.engines.lite.crops import DETECTOR_STEP, check_box_frames, detector_input, pad_line, paper_grey  # noqa: E402

FONTS: dict[str, tuple[str, list[str]]] = {
    "fonts-dejavu-core": ("/usr/share/fonts/truetype/dejavu", [
        "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSerif",
        "DejaVuSerif-Bold"]),
    "fonts-dejavu-extra": ("/usr/share/fonts/truetype/dejavu", [
        "DejaVuMathTeXGyre", "DejaVuSans-BoldOblique", "DejaVuSans-ExtraLight", "DejaVuSans-Oblique",
        "DejaVuSansCondensed", "DejaVuSansCondensed-Bold", "DejaVuSansCondensed-BoldOblique",
        "DejaVuSansCondensed-Oblique", "DejaVuSansMono-BoldOblique", "DejaVuSansMono-Oblique",
        "DejaVuSerif-BoldItalic", "DejaVuSerif-Italic", "DejaVuSerifCondensed", "DejaVuSerifCondensed-Bold",
        "DejaVuSerifCondensed-BoldItalic", "DejaVuSerifCondensed-Italic"]),
    "fonts-liberation": ("/usr/share/fonts/truetype/liberation", [
        f"Liberation{family}-{face}" for family in ("Mono", "Sans", "SansNarrow", "Serif")
        for face in ("Regular", "Bold", "Italic", "BoldItalic")]),
}
"""The fonts the glyph test draws with, by the Debian package `make test` installs them from
(the Makefile's FONT_PACKAGES): a fixed list, so a missing font is a skip (a failure in CI),
never a silently shorter test."""
FONT_FILES = [(package, Path(folder) / f"{name}.ttf") for package, (folder, names) in FONTS.items()
              for name in names]
GLYPHS = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789 "
          "#%&@$[](){}<>/|\\=+*-_.,;:!? ÄÖÜßéèàçñøåæœ €£¥©®°§¶")


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size=size)


def _line(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, size: int) -> np.ndarray:
    """A grey line image cut as the detector cuts one: the ink with a little paper around it
    (so a capital is about 60% of the image's height, as on real crops)."""
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, size // 8)
    image = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 255)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=0)
    return np.asarray(image)


@pytest.mark.parametrize("package, font_path", [(None, None), *FONT_FILES],
                         ids=[path.stem if path else "default" for _, path in [(None, None), *FONT_FILES]])
def test_no_letter_digit_or_sign_is_taken_for_a_check_box(package: str | None, font_path: Path | None) -> None:
    """`B`, `8`, `0`, `O`, `D`, `#`, `[`, `]` fill the bands and corners a frame fills at
    small sizes; the frame rule must leave every one of them alone, at every size."""
    if package and font_path:
        require_file(font_path, package)
    for size in (12, 16, 20, 28, 40, 64):
        line = _line(GLYPHS, _font(font_path, size), size)
        assert check_box_frames(line, line.shape[0]) is None, f"{font_path} at {size} px: a glyph was taken"


def _form_line(box: int, stroke: int, tick: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A form line: a check box, then its label; the detector's line height is 1.5 boxes."""
    package, path = FONT_FILES[0]
    font = _font(require_file(path, package), box)
    image = Image.new("L", (box * 12, box * 2), 245)  # grey paper, as on a scan
    draw = ImageDraw.Draw(image)
    frame = (box // 2, box // 2, box // 2 + box, box // 2 + box)
    draw.rectangle(frame, outline=20, width=stroke)
    if tick:
        inset = stroke + max(2, box // 5)
        draw.line((frame[0] + inset, frame[1] + inset, frame[2] - inset, frame[3] - inset), fill=20, width=stroke)
        draw.line((frame[0] + inset, frame[3] - inset, frame[2] - inset, frame[1] + inset), fill=20, width=stroke)
    draw.text((frame[2] + box // 2, box // 2), "Resident", font=font, fill=20)
    return np.asarray(image), frame


@pytest.mark.parametrize(("box", "stroke"), [(12, 1), (16, 1), (20, 2), (30, 2), (40, 3), (60, 4)])
def test_a_check_box_frame_is_found_and_the_label_left_alone(box: int, stroke: int) -> None:
    line, (x1, y1, x2, y2) = _form_line(box, stroke)
    frames = check_box_frames(line, 1.5 * box)
    assert frames is not None
    frame_ink = (line < 128)[y1:y2 + 1, x1:x2 + 1]
    assert frame_ink.any() and frames[y1:y2 + 1, x1:x2 + 1][frame_ink].all(), "part of the frame is not marked"
    assert not frames[:, x2 + 2:].any(), "the label was marked"


def test_boxes_far_bigger_than_the_text_are_not_check_boxes() -> None:
    """An empty square table cell or a framed area is not a check box: at most 2 line heights."""
    line, _ = _form_line(60, 2)
    assert check_box_frames(line, 20) is None


def test_a_cross_inside_a_box_is_kept_for_the_reader() -> None:
    """Only the frame goes: a crossed box reads as its cross (`X Resident`), not as nothing."""
    line, (x1, y1, x2, y2) = _form_line(40, 3, tick=True)
    frames = check_box_frames(line, 60)
    assert frames is not None
    cross = (line < 128)[y1 + 6:y2 - 5, x1 + 6:x2 - 5]
    assert cross.any() and not frames[y1 + 6:y2 - 5, x1 + 6:x2 - 5][cross].any(), "the cross was marked"
    assert frames[y1:y1 + 3, x1:x2 + 1].any() and frames[y1:y2 + 1, x1:x1 + 3].any()


def test_the_paper_grey_of_a_scan_is_its_background_not_its_ink_or_noise() -> None:
    page = Image.new("L", (1240, 1754), 214)  # grey paper, as scanned
    draw = ImageDraw.Draw(page)
    for row in range(60):
        draw.text((100, 100 + row * 26), "Running text " * 12, font=_font(None, 20), fill=30)
    noisy = np.asarray(page).astype(int) + np.random.default_rng(1).normal(0, 12, (1754, 1240))
    assert abs(paper_grey(np.clip(noisy, 0, 255).astype(np.uint8)) - 214) <= 3


def test_a_padded_line_has_paper_above_and_below() -> None:
    line = _line("Pad me", _font(None, 20), 20)
    padded = pad_line(line, 240)
    pad = (padded.shape[0] - line.shape[0]) // 2
    assert pad >= line.shape[0] // 4 and (padded[pad:-pad] == line).all()
    assert (padded[:pad] == 240).all() and (padded[-pad:] == 240).all()


def test_pages_of_every_size_give_the_detector_a_few_input_shapes() -> None:
    """OpenVINO keeps kernels and buffers per input shape: sizes must not follow the pages'."""
    rng = np.random.default_rng(3)
    shapes = set()
    for width, height in rng.integers(40, 6000, size=(400, 2)):
        page = np.zeros((int(height), int(width), 3), np.uint8)
        prepared = detector_input(page, 1280, 255)
        scale = min(1.0, 1280 / max(width, height))
        if prepared is None:  # a side under 16 pixels once scaled: no line fits, as rapidocr had it
            assert min(width, height) * scale < 16, (width, height)
            continue
        found, (to_x, to_y) = prepared
        shapes.add(found.shape[:2])
        assert found.shape[0] % DETECTOR_STEP == 0 and found.shape[1] % DETECTOR_STEP == 0
        assert max(found.shape[:2]) <= 1280 + DETECTOR_STEP
        for length, factor in ((width, to_x), (height, to_y)):  # rapidocr's own 32-pixel rounding, no more
            assert abs(length / factor - round(length * scale / 32) * 32) < 1e-6, (width, height)
    assert len(shapes) <= 60, len(shapes)


def test_an_a4_page_at_any_dpi_is_one_shape_without_padding() -> None:
    for dpi in (150, 200, 300, 600):  # pages larger than the detector's 1280 pixels
        page = np.zeros((round(11.69 * dpi), round(8.27 * dpi), 3), np.uint8)
        prepared = detector_input(page, 1280, 255)
        assert prepared is not None and prepared[0].shape[:2] == (1280, 896)


def test_a_small_image_is_padded_with_paper_not_stretched_to_the_step() -> None:
    line = np.zeros((40, 600, 3), np.uint8)  # one text line, photographed
    prepared = detector_input(line, 1280, 230)
    assert prepared is not None
    found, factors = prepared
    assert found.shape[:2] == (128, 640) and factors == (600 / 608, 40 / 32)  # rapidocr's rounding, then paper
    assert (found[32:] == 230).all() and (found[:, 608:] == 230).all() and (found[:32, :608] == 0).all()


def test_a_us_letter_page_is_padded_to_the_next_step() -> None:
    page = np.zeros((1650, 1275, 3), np.uint8)  # 8.5 x 11 in at 150 dpi
    prepared = detector_input(page, 1280, 255)
    assert prepared is not None
    found, (to_x, to_y) = prepared
    assert found.shape[:2] == (1280, 1024) and (to_x, to_y) == (1275 / 992, 1650 / 1280)  # 992 wide, as before


def test_a_page_too_thin_for_a_line_gives_the_detector_nothing() -> None:
    """A 3000 x 5 strip is 2 pixels high at the detector's scale: no input (rapidocr gave
    none either), rather than a 16-fold stretched one whose boxes cut empty crops."""
    assert detector_input(np.zeros((5, 3000, 3), np.uint8), 1280, 255) is None
    assert detector_input(np.zeros((3000, 5, 3), np.uint8), 1280, 255) is None
    assert detector_input(np.zeros((40, 40, 3), np.uint8), 1280, 255) is not None
