"""`resolution: "auto"`: the text estimate (pixels, a PDF's text layer) and the mode it picks,
planned per request and per page, never sent to the engine by name."""

from __future__ import annotations

import io
import random
import time

import pytest
from PIL import Image, ImageDraw, ImageFont

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import ImageInput, open_document, render_page
from openai_ocr.inputs.text_density import CHARS_PER_TOKEN, EMPTY, PageText, estimate_encoded, from_image
from openai_ocr.ocr.auto_resolution import choose, finest_scale, page_plan, paper_tokens
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.recovery import ORDER
from openai_ocr.ocr.resolution import MODES, ResolutionError, resolve_mm_kwargs
from openai_ocr.ocr.translation import apply_chat_defaults, plan_request
from openai_ocr.settings import AutoResolutionSettings, OCRSettings, Settings
from tests.helpers import pdf_of, require_file

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
A4 = (1190, 1684)  # 144 dpi
WORDS = ("the of and to in is that for it as was with be by on not this are or from at which but "
         "have an they you were her she there been one all we their has would when if so what").split()
CONFIG = AutoResolutionSettings()


def face(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(require_file(FONT, "fonts-dejavu-core")), px)


def page_of_lines(px: int, lines: int | None = None, size: tuple[int, int] = A4,
                  columns: int = 1) -> tuple[Image.Image, int]:
    """A page of random words at `px` pixels an em (every line full, `lines` of them, or as
    many as fit), and the number of characters drawn."""
    rng = random.Random(px * 7 + columns)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = face(px)
    margin, gutter = 60, 30
    width = (size[0] - 2 * margin - (columns - 1) * gutter) / columns
    chars = 0
    for col in range(columns):
        y, count = margin, 0
        while y < size[1] - margin - px and (lines is None or count < lines):
            line = ""
            while True:
                trial = f"{line} {rng.choice(WORDS)}".strip()
                if font.getlength(trial) > width and line:
                    break
                line = trial
            draw.text((margin + col * (width + gutter), y), line, font=font, fill="black")
            chars += len(line) + 1
            y, count = y + round(px * 1.2), count + 1
    return image, chars


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def smallest(family: str = "deepseek-ocr") -> str:
    return next(name for name in ORDER if name in MODES[family])  # type: ignore[index]


# -- the estimate ------------------------------------------------------------------------

@pytest.mark.parametrize(("px", "columns"), [(14, 2), (20, 1), (32, 1)])
def test_the_pixel_estimate_is_near_the_truth(px: int, columns: int) -> None:
    image, chars = page_of_lines(px, columns=columns)
    text = from_image(image)
    assert text.source == "image"
    assert 0.7 * chars <= text.chars <= 1.5 * chars, (text, chars)
    assert text.tokens == pytest.approx(text.chars / CHARS_PER_TOKEN, rel=0.01)
    assert 0.7 * px <= text.median_px <= 1.3 * px, text
    assert 0.7 * px <= text.text_px <= 1.3 * px, text


def test_small_type_on_part_of_a_page_is_what_counts() -> None:
    big, _ = page_of_lines(28)
    small, _ = page_of_lines(12, lines=10, size=(A4[0], 300))
    big.paste(small, (0, A4[1] - 300))  # footnotes: a fifth of the characters
    text = from_image(big)
    assert text.text_px < 18 < text.median_px, text


def test_light_text_on_a_dark_page_is_found() -> None:
    image, chars = page_of_lines(30, lines=4, size=(1280, 720))
    dark = Image.eval(image, lambda v: 255 - v)
    text = from_image(dark)
    assert 0.7 * chars <= text.chars <= 1.5 * chars, (text, chars)


def test_a_blank_page_holds_no_text() -> None:
    assert from_image(Image.new("RGB", A4, "white")).chars == 0
    assert choose("deepseek-ocr", from_image(Image.new("RGB", A4, "white")), *A4, CONFIG).resolution \
        == smallest()


def test_a_jpeg_is_estimated_at_a_reduced_scale_in_its_own_pixels() -> None:
    image, chars = page_of_lines(24, lines=20, size=(2400, 3400))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    text = estimate_encoded(out.getvalue())
    assert text is not None and 0.7 * chars <= text.chars <= 1.5 * chars, (text, chars)
    assert 0.7 * 24 <= text.median_px <= 1.3 * 24, text


def test_a_broken_image_gives_no_estimate_rather_than_an_error() -> None:
    assert estimate_encoded(b"\x89PNG\r\n\x1a\n broken") is None


def test_the_estimate_costs_milliseconds() -> None:
    image, _ = page_of_lines(16, columns=3)
    from_image(image)
    started = time.process_time()
    for _ in range(5):
        from_image(image)
    per_page = (time.process_time() - started) / 5
    assert per_page < 0.1, f"{per_page * 1000:.0f} ms of CPU for one A4 page"  # about 5 ms here


def text_layer_pdf(lines: int, size_pt: float, columns: int = 1) -> bytes:
    """An A4 page of Helvetica text: `lines` lines a column at `size_pt`."""
    rng = random.Random(lines)
    ops = []
    width = (595 - 72) / columns
    for col in range(columns):
        for n in range(lines):
            text = " ".join(rng.choice(WORDS) for _ in range(int(width / size_pt * 1.8 / 5)))
            ops.append(f"BT /F1 {size_pt:g} Tf {36 + col * width:.1f} {800 - n * size_pt * 1.2:.1f} Td ({text}) Tj ET")
    return pdf_of([(595, 842, "\n".join(ops).encode())], font=True)


def rendered(data: bytes) -> ImageInput:
    document = open_document(data, pages=None, dpi=144, max_pages=10, max_pixels=64_000_000,
                             max_bytes=len(data) + 1)
    return render_page(data, document.info, 1, max_pixels=64_000_000, max_bytes=len(data) + 1,
                       estimate=True)


def test_a_pdf_page_is_estimated_from_its_text_layer() -> None:
    data = text_layer_pdf(40, 10)
    page = rendered(data)
    text = page.text_estimate
    assert text is not None and text.source == "text_layer"
    assert text.text_px == pytest.approx(10 * 2, rel=0.1)  # 10 pt at 2 px a point
    layer_chars = sum(len(part.split(") Tj")[0]) + 1 for part in data.decode("latin-1").split("(")[1:])
    assert abs(text.chars - layer_chars) < 0.1 * layer_chars


def test_a_pdf_page_without_a_text_layer_is_estimated_from_its_pixels() -> None:
    image, chars = page_of_lines(20, lines=30, size=(1190, 1684))
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=144)  # Pillow writes the page as one image
    text = rendered(out.getvalue()).text_estimate
    assert text is not None and text.source == "image"
    assert 0.7 * chars <= text.chars <= 1.5 * chars


def test_no_estimate_is_made_unless_asked() -> None:
    data = text_layer_pdf(2, 30)
    document = open_document(data, pages=None, dpi=144, max_pages=10, max_pixels=64_000_000,
                             max_bytes=len(data) + 1)
    assert document.page_image(1).text_estimate is None


# -- the choice ----------------------------------------------------------------------------

def test_one_line_of_large_type_takes_a_small_mode_and_a_dense_page_gundam() -> None:
    one_line, _ = page_of_lines(48, lines=1, size=(1280, 720))
    assert choose("deepseek-ocr", from_image(one_line), 1280, 720, CONFIG).resolution in ("tiny", "small")
    dense, _ = page_of_lines(15, columns=4)
    assert choose("deepseek-ocr", from_image(dense), *A4, CONFIG).resolution == "gundam"
    assert choose("deepseek-ocr", rendered(text_layer_pdf(1, 36)).text_estimate, *A4,
                  CONFIG).resolution in ("tiny", "small")
    assert choose("deepseek-ocr", rendered(text_layer_pdf(60, 7, columns=4)).text_estimate, *A4,
                  CONFIG).resolution == "gundam"


def test_the_compression_line_decides_between_modes() -> None:
    """Large type everywhere: only the text tokens per vision token tell the modes apart."""
    for tokens in (50, 500, 1500, 3000, 20000):
        text = PageText(chars=round(tokens * CHARS_PER_TOKEN), tokens=tokens, text_px=200,
                        median_px=200, lines=1, source="image")
        picked = choose("deepseek-ocr", text, *A4, CONFIG)
        mode = MODES["deepseek-ocr"][picked.resolution]
        assert picked.resolution == "gundam" or tokens / paper_tokens(mode, *A4) <= 10
        for smaller in ORDER[:ORDER.index(picked.resolution)]:
            assert tokens / paper_tokens(MODES["deepseek-ocr"][smaller], *A4) > 10, (tokens, smaller)


def test_small_type_is_never_given_a_mode_too_coarse_for_it() -> None:
    for em in (8, 14, 20, 30, 45, 80):
        text = PageText(chars=200, tokens=57, text_px=em, median_px=em, lines=5, source="text_layer")
        picked = choose("deepseek-ocr", text, *A4, CONFIG)
        if picked.resolution != "gundam":
            assert em * finest_scale(MODES["deepseek-ocr"][picked.resolution], *A4) >= CONFIG.min_text_px
        for smaller in ORDER[:ORDER.index(picked.resolution)]:
            assert em * finest_scale(MODES["deepseek-ocr"][smaller], *A4) < CONFIG.min_text_px


def test_thresholds_come_from_the_settings() -> None:
    text = PageText(chars=3500, tokens=1000, text_px=60, median_px=60, lines=40, source="image")
    assert choose("deepseek-ocr", text, *A4, CONFIG).resolution != "tiny"
    loose = AutoResolutionSettings(max_compression=20, min_text_px=1)
    assert choose("deepseek-ocr", text, *A4, loose).resolution == "tiny"


def test_without_an_estimate_or_on_deepseek_ocr_2_the_page_takes_gundam() -> None:
    assert choose("deepseek-ocr", None, *A4, CONFIG).resolution == "gundam"
    assert choose("deepseek-ocr-2", EMPTY, *A4, CONFIG).resolution == "gundam"


# -- planning ------------------------------------------------------------------------------

def test_auto_is_planned_per_page_and_never_named_to_the_engine() -> None:
    plan = plan_request(OCROptions(resolution="auto"), OCRSettings())
    assert (plan.resolution, plan.auto, plan.mm_processor_kwargs) == ("auto", True, None)
    image, _ = page_of_lines(48, lines=1, size=(1280, 720))
    page = ImageInput(png(image), "image/png", 1280, 720, text_estimate=from_image(image))
    concrete = page_plan(plan, "deepseek-ocr", page.text_estimate, 1280, 720, CONFIG)
    assert concrete.auto and concrete.resolution in MODES["deepseek-ocr"]
    assert concrete.mm_processor_kwargs == MODES["deepseek-ocr"][concrete.resolution].mm_processor_kwargs()
    assert "auto" not in str(concrete.mm_processor_kwargs)
    fixed = plan_request(OCROptions(resolution="small"), OCRSettings())
    assert page_plan(fixed, "deepseek-ocr", page.text_estimate, 1280, 720, CONFIG) is fixed


def test_auto_with_raw_sizes_is_a_clear_400() -> None:
    for raw in ({"base_size": 512}, {"crop_mode": True}, {"image_size": 640, "crop_mode": False}):
        with pytest.raises(BadRequest) as refused:
            plan_request(OCROptions(resolution="auto", **raw), OCRSettings())
        assert refused.value.param == next(iter(raw)) and "auto" in str(refused.value)
    with pytest.raises(BadRequest) as refused:
        plan_request(OCROptions(resolution="automatic"), OCRSettings())
    assert "auto" in str(refused.value) and "gundam" in str(refused.value)


def test_a_configured_auto_default() -> None:
    config = OCRSettings(resolution="auto")
    assert plan_request(OCROptions(), config).auto
    assert plan_request(OCROptions(base_size=512), config).resolution == "tiny"  # raw values still name a mode
    assert plan_request(OCROptions(resolution="large"), config).resolution == "large"
    # DeepSeek-OCR-2 has one mode: auto is it
    ocr2 = plan_request(OCROptions(resolution="auto", mode="free_ocr"), OCRSettings(), family="deepseek-ocr-2")
    assert (ocr2.resolution, ocr2.auto, ocr2.mm_processor_kwargs) == ("gundam", False, None)
    # a chat request names its mode or gets the model's own: auto is not sent on
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert "mm_processor_kwargs" not in apply_chat_defaults(body, config, "m")
    with pytest.raises(ValueError, match="gundam"):
        OCRSettings(resolution="automatic")  # type: ignore[arg-type]
    assert Settings.model_validate({"ocr": {"resolution": "auto"}}).ocr.resolution == "auto"


def test_auto_in_mm_processor_kwargs_is_refused_with_the_reason() -> None:
    with pytest.raises(ResolutionError) as refused:
        resolve_mm_kwargs("deepseek-ocr", {"resolution": "auto"})
    assert refused.value.param == "mm_processor_kwargs" and "per page" in str(refused.value)
    with pytest.raises(BadRequest) as bad:
        apply_chat_defaults({"messages": [], "mm_processor_kwargs": {"resolution": "auto"}}, OCRSettings(), "m")
    assert bad.value.param == "mm_processor_kwargs"
