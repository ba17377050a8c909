"""Page selection, PDF/TIFF opening, limits and answer assembly (no server)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from openai_ocr.errors import OCRError
from openai_ocr.inputs.documents import ImageInput, open_document
from openai_ocr.inputs.page_ranges import parse_pages
from openai_ocr.ocr.assembly import PageOutcome, assemble, merge_assembled
from openai_ocr.ocr.models import Usage
from openai_ocr.ocr.translation import CompletionResult
from tests.helpers import blank_pdf, encrypted_pdf, png_bytes, sample_lines, sample_pdf, text_pdf

LIMITS = {"dpi": 144, "max_pages": 1000, "max_pixels": 64_000_000, "max_bytes": 50 * 2**20}


@pytest.mark.parametrize("spec, expected", [
    (None, [1, 2, 3, 4, 5]), ("", [1, 2, 3, 4, 5]), ("all", [1, 2, 3, 4, 5]),
    ("1-3,5", [1, 2, 3, 5]), (" 4 - ", [4, 5]), ("2,2,1", [2, 1]), ("5", [5]),
])
def test_parse_pages(spec: str | None, expected: list[int]) -> None:
    assert parse_pages(spec, 5) == expected


@pytest.mark.parametrize("spec", ["0", "6", "3-2", "a-b", "1;2", "-3", "1-9"])
def test_bad_page_specs_are_400(spec: str) -> None:
    with pytest.raises(OCRError) as err:
        parse_pages(spec, 5)
    assert err.value.status_code == 400


def test_pdf_pages_render_at_the_configured_dpi() -> None:
    with open_document(sample_pdf(), pages="2-3", **LIMITS) as doc:
        assert (doc.kind, doc.page_count, doc.pages) == ("pdf", 17, [2, 3])
        image = doc.page_image(2)
    # page 2 is 620 x 800 points: x 2 at 144 dpi
    assert (image.width, image.height, image.mime) == (1240, 1600, "image/png")
    with open_document(sample_pdf(), pages="1", **{**LIMITS, "dpi": 72}) as doc:
        assert (doc.page_image(1).width, doc.page_image(1).height) == (610, 800)


def test_fractional_page_sizes_round_up() -> None:
    """609.71 x 789.04 pt (a real document's page) at 144 dpi: 1219.42 x 1578.08, rounded up."""
    with open_document(text_pdf([(609.71, 789.04, ["x"])]), pages=None, **LIMITS) as doc:
        assert (doc.page_image(1).width, doc.page_image(1).height) == (1220, 1579)


def test_the_rendered_page_is_the_selected_one() -> None:
    """The text drawn on page 5 is what the rendered image of page 5 shows: black pixels where
    page 5's first line is, in a band that is blank on a page with one short line."""
    with open_document(sample_pdf(), pages="5", **{**LIMITS, "dpi": 72}) as doc:
        image = Image.open(io.BytesIO(doc.page_image(5).data))
    assert image.size == (650, 800)  # page 5: 650 x 800 pt
    gray = image.convert("L")
    # first line: baseline 72 pt below the top, 20 pt Helvetica -> ink between y ~57 and ~77
    band = [gray.getpixel((x, y)) for x in range(72, 400) for y in range(57, 78)]
    assert min(band) < 100 and sample_lines(5)[0].startswith("Sample document, page 5")
    below = [gray.getpixel((x, y)) for x in range(0, 650, 7) for y in range(200, 790, 7)]
    assert min(below) > 200  # nothing drawn below the two lines


def test_pdf_page_over_pixel_cap_renders_smaller() -> None:
    with open_document(blank_pdf(1, 2000, 2000), pages=None,
                       **{**LIMITS, "max_pixels": 1_000_000}) as doc:
        image = doc.page_image(1)
    assert image.width * image.height <= 1_000_000 and image.width > 900


@pytest.mark.parametrize("data, status, needle", [
    (encrypted_pdf(), 400, "password"),
    (b"%PDF-1.7\n garbage that is not a pdf", 400, "cannot be read"),
    (blank_pdf(1001), 413, "1000"),
])
def test_bad_pdfs(data: bytes, status: int, needle: str) -> None:
    with pytest.raises(OCRError) as err:
        open_document(data, pages=None, **LIMITS)
    assert err.value.status_code == status and needle in err.value.message


def test_page_cap_counts_selected_pages() -> None:
    with open_document(blank_pdf(1001), pages="1-10", **LIMITS) as doc:
        assert len(doc.pages) == 10


def test_image_accepts_only_page_one() -> None:
    with open_document(png_bytes(), pages="1", **LIMITS) as doc:
        assert doc.pages == [1] and doc.kind == "image"
    with pytest.raises(OCRError):
        open_document(png_bytes(), pages="2", **LIMITS)


def test_multi_frame_tiff_is_one_page_per_frame() -> None:
    frames = [Image.new("RGB", (40 + i, 30), "white") for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    with open_document(out.getvalue(), pages="2-3", **LIMITS) as doc:
        assert (doc.kind, doc.page_count, doc.pages) == ("frames", 3, [2, 3])
        assert [doc.page_image(n).width for n in doc.pages] == [41, 42]


GROUNDED = ("<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Title\n\n"
            "<|ref|>image<|/ref|><|det|>[[0, 0, 499, 499]]<|/det|>\n\n"
            "<|ref|>text<|/ref|><|det|>[[100, 600, 899, 700]]<|/det|>\nBody [1].")


def outcome(number: int, text: str, reason: str = "stop") -> PageOutcome:
    out = io.BytesIO()
    Image.new("RGB", (1000, 2000), "white").save(out, format="PNG")
    return PageOutcome(number, ImageInput(out.getvalue(), "image/png", 1000, 2000),
                       CompletionResult(text, reason, Usage(prompt_tokens=10, completion_tokens=5,
                                                            total_tokens=15), "m"))


def test_assemble_json_pages_with_pixel_boxes_and_warnings() -> None:
    done = assemble([outcome(2, GROUNDED), outcome(5, "cut <table><tr>", "length")], "json",
                    include_images=True, max_tokens=8192)
    assert done.text == GROUNDED + "\n\n<--- Page Split --->\n\n" + "cut <table><tr>"
    assert done.finish_reason == "length"
    assert done.usage == Usage(prompt_tokens=20, completion_tokens=10, total_tokens=30)
    assert done.pages is not None
    first, second = done.pages
    assert (first.index, first.width, first.height) == (2, 1000, 2000)
    assert first.blocks[0].boxes_px == [(100 / 999 * 1000, 50 / 999 * 2000, 899 / 999 * 1000,
                                         90 / 999 * 2000)]
    assert first.markdown == "# Title\n\n![](images/2_0.png)\n\nBody [1]."
    assert first.images is not None and first.images[0].name == "images/2_0.png"
    crop = Image.open(io.BytesIO(base64.b64decode(first.images[0].image_base64)))
    assert crop.size == (round(499 / 999 * 1000), round(499 / 999 * 2000))
    assert first.warning is None and second.warning and "page 5" in second.warning
    assert done.warnings == [second.warning]


def test_assemble_markdown_joins_clean_pages() -> None:
    done = assemble([outcome(1, GROUNDED), outcome(2, "plain")], "markdown", include_images=False)
    assert done.text == "# Title\n\n![](images/1_0.png)\n\nBody [1].\n\n<--- Page Split --->\n\nplain"
    assert done.pages is None


@pytest.mark.parametrize("output", ["json", "markdown", "text"])
def test_pages_assembled_one_by_one_join_into_the_whole_answer(output: str) -> None:
    """What the server does with each page as it is read, and the CLI with a long document's
    page ranges: parts merged in page order are the answer of all the pages at once."""
    outcomes = [outcome(1, GROUNDED), outcome(2, "cut <table><tr>", "length"), outcome(3, "plain"),
                outcome(4, GROUNDED)]
    whole = assemble(outcomes, output, include_images=True, max_tokens=99)  # type: ignore[arg-type]
    one_by_one = merge_assembled([assemble([o], output, include_images=True, max_tokens=99)  # type: ignore[arg-type]
                                  for o in outcomes])
    ranges = merge_assembled([assemble(outcomes[:3], output, include_images=True, max_tokens=99),  # type: ignore[arg-type]
                              assemble(outcomes[3:], output, include_images=True, max_tokens=99)])  # type: ignore[arg-type]
    assert one_by_one == whole == ranges
    assert whole.page_count == 4 and whole.finish_reason == "length" and whole.model == "m"
    assert whole.usage.total_tokens == 60 and len(whole.warnings) == 1


def test_rendered_pages_keep_their_colours() -> None:
    """pdfium renders in RGB byte order here (no conversion pass): red stays red."""
    out = io.BytesIO()
    Image.new("RGB", (200, 100), (220, 30, 40)).save(out, format="PDF", resolution=72)
    with open_document(out.getvalue(), pages=None, **LIMITS) as doc:
        page = doc.page_image(1)
    pixel = Image.open(io.BytesIO(page.data)).convert("RGB").getpixel((100, 50))
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, (220, 30, 40), strict=True)), pixel
