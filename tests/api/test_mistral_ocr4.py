"""`POST /v1/ocr`'s Mistral OCR 4 fields through the real `mistralai` SDK: blocks, tables,
headers and footers, image filters, page ranges, usage, hyperlinks, confidence scores.

The fake upstream answers with a scripted DeepSeek-OCR page; the expected answers below are
written out by hand from that page (grid value / 999 * size: on a 999 x 1998 image a box's x
is its grid value and its y twice that), never computed with the code under test.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest

from openai_ocr.ocr.block_types import mistral_block_type
from openai_ocr.ocr.models import BlockResult, PageResult, Usage
from openai_ocr.ocr.tables import html_table_rows, table_as
from openai_ocr.protocol.mistral import MistralOCRRequest
from openai_ocr.service.mistral_ocr import MistralRun, mistral_page, one_based_pages
from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, png_bytes, require, sample_pdf

mistralai = require("mistralai", "the dev extra")
from mistralai.client import Mistral, models  # noqa: E402

WIDTH, HEIGHT = 999, 1998
TABLE_HTML = ("<table><tr><td>Region</td><td>Q1</td></tr><tr><td>North</td><td>1.2</td></tr>"
              "<tr><td colspan=\"2\">Total: 2.4</td></tr></table>")
TABLE_MD = "| Region | Q1 |\n| --- | --- |\n| North | 1.2 |\n| Total: 2.4 |  |"
PAGE = f"""<|ref|>header<|/ref|><|det|>[[100, 10, 899, 30]]<|/det|>
ACME Corp annual report

<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>
# Results

<|ref|>sub_title<|/ref|><|det|>[[100, 100, 500, 120]]<|/det|>
## Revenue

<|ref|>text<|/ref|><|det|>[[100, 130, 899, 200]]<|/det|>
Revenue grew by 12%.

<|ref|>text<|/ref|><|det|>[[100, 210, 899, 260]]<|/det|>
- north
- south

<|ref|>table<|/ref|><|det|>[[100, 300, 899, 500]]<|/det|>
{TABLE_HTML}

<|ref|>table_caption<|/ref|><|det|>[[100, 505, 899, 520]]<|/det|>
Table 1: revenue by region.

<|ref|>image<|/ref|><|det|>[[100, 550, 499, 850]]<|/det|>


<|ref|>image_caption<|/ref|><|det|>[[100, 855, 499, 870]]<|/det|>
Figure 1: growth.

<|ref|>image<|/ref|><|det|>[[600, 550, 620, 570]]<|/det|>


<|ref|>equation<|/ref|><|det|>[[300, 880, 700, 920]]<|/det|>
\\[E = mc^2\\]

<|ref|>footer<|/ref|><|det|>[[100, 950, 899, 970]]<|/det|>
Confidential

<|ref|>page_number<|/ref|><|det|>[[480, 975, 520, 990]]<|/det|>
7"""

BLOCKS = [  # (type, box in pixels, content) in reading order
    ("header", (100, 20, 899, 60), "ACME Corp annual report"),
    ("title", (100, 100, 899, 180), "# Results"),
    ("title", (100, 200, 500, 240), "## Revenue"),
    ("text", (100, 260, 899, 400), "Revenue grew by 12%."),
    ("list", (100, 420, 899, 520), "- north\n- south"),
    ("table", (100, 600, 899, 1000), TABLE_HTML),
    ("caption", (100, 1010, 899, 1040), "Table 1: revenue by region."),
    ("image", (100, 1100, 499, 1700), ""),
    ("caption", (100, 1710, 499, 1740), "Figure 1: growth."),
    ("image", (600, 1100, 620, 1140), ""),
    ("equation", (300, 1760, 700, 1840), "\\[E = mc^2\\]"),
    ("footer", (100, 1900, 899, 1940), "Confidential"),
    ("footer", (480, 1950, 520, 1980), "7"),
]
SDK_CLASSES = {"header": models.OCRHeaderBlock, "title": models.OCRTitleBlock, "text": models.OCRTextBlock,
               "list": models.OCRListBlock, "table": models.OCRTableBlock, "caption": models.OCRCaptionBlock,
               "image": models.OCRImageBlock, "equation": models.OCREquationBlock,
               "footer": models.OCRFooterBlock}


def markdown(*paragraphs: str) -> str:
    return "\n\n".join(paragraphs)


BODY = ["# Results", "## Revenue", "Revenue grew by 12%.", "- north\n- south"]
AFTER_TABLE = ["Table 1: revenue by region.", "![](images/1_0.png)", "Figure 1: growth.",
               "![](images/1_1.png)", "\\[E = mc^2\\]"]


def image_document() -> dict[str, str]:
    return {"type": "image_url", "image_url": "data:image/png;base64," + b64(png_bytes(WIDTH, HEIGHT))}


def pdf_document(data: bytes) -> dict[str, str]:
    return {"type": "document_url", "document_url": "data:application/pdf;base64," + b64(data)}


def ocr(gateway: str, document: dict[str, str], **fields: Any) -> models.OCRResponse:
    """The SDK's call: its answer is parsed into the SDK's models (every new field included)."""
    return Mistral(api_key="unused", server_url=gateway).ocr.process(model=SERVED_NAME, document=document,
                                                                      **fields)


def box(block: Any) -> tuple[int, int, int, int]:
    return block.top_left_x, block.top_left_y, block.bottom_right_x, block.bottom_right_y


def test_blocks_in_reading_order_with_mistral_types_and_pixel_boxes(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document()).pages  # the SDK sends include_blocks=true by default
    assert page.blocks is not None
    assert [(b.type, box(b), b.content) for b in page.blocks] == BLOCKS
    for block, (kind, _, _) in zip(page.blocks, BLOCKS, strict=True):
        assert type(block) is SDK_CLASSES[kind]  # parsed as the SDK's block, not UnknownBlock
    images = [b for b in page.blocks if isinstance(b, models.OCRImageBlock)]
    assert [b.image_id for b in images] == [i.id for i in page.images] == ["images/1_0.png", "images/1_1.png"]
    assert [(i.top_left_x, i.top_left_y, i.bottom_right_x, i.bottom_right_y) for i in page.images] == [
        (100, 1100, 499, 1700), (600, 1100, 620, 1140)]
    table = next(b for b in page.blocks if isinstance(b, models.OCRTableBlock))
    assert table.table_id is None  # table_format null: the table stays in the markdown
    # nothing asked for: the markdown as the legacy routes give it, the rest empty
    assert page.markdown == markdown("ACME Corp annual report", *BODY, TABLE_HTML, *AFTER_TABLE, "Confidential", "7")
    assert (page.tables, page.hyperlinks, page.header, page.footer) == ([], [], None, None)
    assert page.confidence_scores is None
    assert page.dimensions is not None and (page.dimensions.width, page.dimensions.height) == (WIDTH, HEIGHT)


def test_include_blocks_false_and_the_raw_default(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document(), include_blocks=False).pages
    assert page.blocks is None
    raw = httpx.post(f"{gateway}/v1/ocr", json={"document": image_document()}, timeout=30)
    assert raw.status_code == 200, raw.text
    (page_json,) = raw.json()["pages"]  # omitted: on, as Mistral's API schema has it
    assert [b["type"] for b in page_json["blocks"]] == [kind for kind, _, _ in BLOCKS]


@pytest.mark.parametrize("table_format, content, link", [
    ("markdown", TABLE_MD, "[tbl-0.md](tbl-0.md)"),
    ("html", TABLE_HTML, "[tbl-0.html](tbl-0.html)"),
])
def test_table_format_returns_tables_separately(gateway: str, upstream: FakeUpstream, table_format: str,
                                                content: str, link: str) -> None:
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document(), table_format=table_format).pages
    table_id = link[1:link.index("]")]
    assert [(t.id, t.content, t.format_) for t in page.tables] == [(table_id, content, table_format)]
    assert page.markdown == markdown("ACME Corp annual report", *BODY, link, *AFTER_TABLE, "Confidential", "7")
    assert "<table" not in page.markdown
    assert page.blocks is not None
    (table,) = [b for b in page.blocks if isinstance(b, models.OCRTableBlock)]
    assert (table.table_id, table.content, box(table)) == (table_id, content, (100, 600, 899, 1000))


def test_a_markdown_table_from_the_model_becomes_html(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = ("<|ref|>table<|/ref|><|det|>[[0, 0, 999, 100]]<|/det|>\n"
                              "| A | B |\n|---|---|\n| x & y | 1 \\| 2 |")
    (page,) = ocr(gateway, image_document(), table_format="html").pages
    assert [t.content for t in page.tables] == [
        "<table><tr><th>A</th><th>B</th></tr><tr><td>x &amp; y</td><td>1 | 2</td></tr></table>"]
    (page,) = ocr(gateway, image_document(), table_format="markdown").pages
    assert [t.content for t in page.tables] == ["| A | B |\n|---|---|\n| x & y | 1 \\| 2 |"]


def test_tables_are_numbered_over_the_document(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    response = ocr(gateway, pdf_document(sample_pdf()), pages="3,5", table_format="html")
    assert [[t.id for t in p.tables] for p in response.pages] == [["tbl-0.html"], ["tbl-1.html"]]
    assert ["[tbl-1.html](tbl-1.html)" in p.markdown for p in response.pages] == [False, True]


def test_header_and_footer_are_extracted_out_of_the_markdown(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document(), extract_header=True, extract_footer=True).pages
    assert page.header == "ACME Corp annual report"
    assert page.footer == "Confidential\n\n7"  # the page number at the bottom is footer
    assert page.markdown == markdown(*BODY, TABLE_HTML, *AFTER_TABLE)
    assert page.blocks is not None  # the blocks still list them, typed
    assert [b.type for b in page.blocks if b.type in ("header", "footer")] == ["header", "footer", "footer"]
    (page,) = ocr(gateway, image_document(), extract_footer=True).pages
    assert (page.header, page.footer) == (None, "Confidential\n\n7")
    assert page.markdown.startswith("ACME Corp annual report\n\n# Results") and "Confidential" not in page.markdown


def test_image_min_size_and_image_limit(gateway: str, upstream: FakeUpstream) -> None:
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document(), image_min_size=30).pages  # the second is 20 x 40 px
    assert [i.id for i in page.images] == ["images/1_0.png"]
    assert "images/1_1.png" not in page.markdown and "![](images/1_0.png)" in page.markdown
    assert page.blocks is not None
    assert [b.image_id for b in page.blocks if isinstance(b, models.OCRImageBlock)] == ["images/1_0.png"]
    (page,) = ocr(gateway, image_document(), image_min_size=20).pages  # 20 wide is enough
    assert len(page.images) == 2
    (page,) = ocr(gateway, image_document(), image_limit=0).pages
    assert page.images == [] and "![" not in page.markdown
    assert page.markdown == markdown("ACME Corp annual report", *BODY, TABLE_HTML, "Table 1: revenue by region.",
                                     "Figure 1: growth.", "\\[E = mc^2\\]", "Confidential", "7")
    assert page.blocks is not None and not any(b.type == "image" for b in page.blocks)
    # the limit counts over the document, in page order
    response = ocr(gateway, pdf_document(sample_pdf()), pages=[0, 1, 2], image_limit=3)
    assert [[i.id for i in p.images] for p in response.pages] == [
        ["images/1_0.png", "images/1_1.png"], ["images/2_0.png"], []]


@pytest.mark.parametrize("pages, indices", [("0,2-3", [0, 2, 3]), ("15-", [15, 16]), (" 4 ", [4]),
                                            ([16, 0], [16, 0]), ("1-1", [1])])
def test_page_ranges_and_usage(gateway: str, upstream: FakeUpstream, pages: Any, indices: list[int]) -> None:
    pdf = sample_pdf()
    response = ocr(gateway, pdf_document(pdf), pages=pages)
    assert [p.index for p in response.pages] == indices
    # page n of the sample is (600 + 10 n) pt wide: (1200 + 20 n) px at 144 dpi; index = n - 1
    assert [p.dimensions.width for p in response.pages if p.dimensions] == [1220 + 20 * i for i in indices]
    assert response.usage_info.pages_processed == len(indices)
    assert response.usage_info.doc_size_bytes == len(pdf)
    assert len(upstream.requests) == len(indices)


def test_usage_of_an_image(gateway: str, upstream: FakeUpstream) -> None:
    image = png_bytes(WIDTH, HEIGHT)
    response = ocr(gateway, {"type": "image_url", "image_url": "data:image/png;base64," + b64(image)})
    assert (response.usage_info.pages_processed, response.usage_info.doc_size_bytes) == (1, len(image))


def link_pdf() -> bytes:
    """Two pages; the second has two links to one address and one to another."""
    from pypdf import PdfWriter
    from pypdf.annotations import Link

    writer = PdfWriter()
    for _ in range(2):
        writer.add_blank_page(300, 200)
    for rect, url in [((10, 10, 90, 30), "https://example.com/spec"), ((10, 40, 90, 60), "https://example.org/b"),
                      ((10, 70, 90, 90), "https://example.com/spec")]:
        writer.add_annotation(page_number=1, annotation=Link(rect=rect, url=url))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_hyperlinks_are_the_pdf_pages_links(gateway: str, upstream: FakeUpstream) -> None:
    response = ocr(gateway, pdf_document(link_pdf()))
    assert [p.hyperlinks for p in response.pages] == [[], ["https://example.com/spec", "https://example.org/b"]]
    assert ocr(gateway, pdf_document(link_pdf()), pages="1").pages[0].hyperlinks == [
        "https://example.com/spec", "https://example.org/b"]
    assert ocr(gateway, image_document()).pages[0].hyperlinks == []


@pytest.mark.parametrize("granularity", ["page", "block", "word"])
def test_confidence_granularity_is_accepted(gateway: str, upstream: FakeUpstream, granularity: str) -> None:
    """The engines behind the fake report no confidences: the answer says none (null), not a guess."""
    upstream.default_reply = PAGE
    (page,) = ocr(gateway, image_document(), confidence_scores_granularity=granularity).pages
    assert page.confidence_scores is None
    assert page.blocks is not None and all(b.confidence_scores is None for b in page.blocks)


@pytest.mark.parametrize("field, value, status, says", [
    ("table_format", "csv", 422, "table_format"),
    ("table_format", "HTML", 422, "table_format"),
    ("confidence_scores_granularity", "token", 422, "confidence_scores_granularity"),
    ("image_limit", -1, 422, "image_limit"),
    ("image_min_size", "big", 422, "image_min_size"),
    ("include_blocks", "perhaps", 422, "include_blocks"),
    ("extract_header", [], 422, "extract_header"),
    ("pages", "3-1", 400, "'3-1' is not a valid range"),
    ("pages", "0;2", 400, "cannot read '0;2'"),
    ("pages", "1-x", 400, "cannot read"),
    ("pages", "0,2-40", 400, "17 page(s): pages count from 0, the last one is 16"),
    ("pages", [17], 400, "the last one is 16"),
    ("pages", [-1], 422, "pages"),
])
def test_invalid_values_are_json_errors(gateway: str, upstream: FakeUpstream, field: str, value: Any,
                                        status: int, says: str) -> None:
    r = httpx.post(f"{gateway}/v1/ocr", json={"document": pdf_document(sample_pdf()), field: value}, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert upstream.requests == []


def test_zero_based_string_pages_become_one_based() -> None:
    assert one_based_pages("0, 2-4,9-") == "1, 3-5,10-"
    assert one_based_pages("") is None and one_based_pages(" ") is None


# ------------------------------------------------------------------ confidences, once the engine reports them

class ScoredBlock(BlockResult):
    """A block as the recognition pipeline is to give it, with `confidence`."""

    confidence: dict[str, Any] | None = None


class ScoredPage(PageResult):
    confidence: dict[str, Any] | None = None


def words(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"text": text, "confidence": score} for text, score in pairs]


def scored_page() -> ScoredPage:
    """Confidences on blocks (`confidence`) and on their `words`, as the engines give them."""
    head = ScoredBlock(label="header", boxes_px=[(0, 0, 100, 10)], text="Annual report",
                       confidence={"average": 0.9, "minimum": 0.8, "label": 0.99},
                       words=words(("Annual", 0.8), ("report", 1.0)))
    title = ScoredBlock(label="title", boxes_px=[(0, 20, 100, 30)], text="# Growth is good",
                        confidence={"label": 0.97}, words=words(("Growth", 0.5), ("is", 0.9), ("good", 0.7)))
    table = ScoredBlock(label="table", boxes_px=[(0, 40, 100, 60)],
                        text="<table><tr><td>Q1</td><td>good</td></tr></table>",
                        confidence={"average": -0.2, "minimum": 0.4}, words=words(("Q1", 0.4), ("good", 0.6)))
    plain = ScoredBlock(label="text", boxes_px=[(0, 70, 100, 80)], text="good and is",
                        confidence={}, words=words(("good", 0.95), ("is", 0.85)))
    foot = ScoredBlock(label="footer", boxes_px=[(0, 90, 100, 99)], text="p. 4")
    return ScoredPage(index=3, width=100, height=100, text="", markdown="", finish_reason="stop", usage=Usage(),
                      blocks=[head, title, table, plain, foot], confidence={"average": 0.75, "minimum": 0.3})


def run_for(**fields: Any) -> MistralRun:
    return MistralRun(body=MistralOCRRequest.model_validate({"document": image_document(), **fields}), dpi=72)


def sdk_page(page: Any) -> models.OCRPageObject:
    return models.OCRPageObject.model_validate(page.model_dump(mode="json", by_alias=True))


def test_word_scores_point_into_the_markdown_and_the_tables() -> None:
    page = sdk_page(mistral_page(scored_page(), run_for(confidence_scores_granularity="word", extract_header=True,
                                                        table_format="markdown")))
    assert page.markdown == "# Growth is good\n\n[tbl-0.md](tbl-0.md)\n\ngood and is\n\np. 4"
    scores = page.confidence_scores
    assert scores is not None and scores.word_confidence_scores is not None
    # the header's words are not in the markdown (it was extracted); the table's are the table's
    assert [(w.text, w.confidence, w.start_index) for w in scores.word_confidence_scores] == [
        ("Growth", 0.5, 2), ("is", 0.9, 9), ("good", 0.7, 12), ("good", 0.95, 40), ("is", 0.85, 49)]
    for word in scores.word_confidence_scores:
        assert page.markdown[word.start_index:word.start_index + len(word.text)] == word.text
    (table,) = page.tables
    assert table.content == "| Q1 | good |\n| --- | --- |"
    assert [(w.text, w.start_index) for w in table.word_confidence_scores or []] == [("Q1", 2), ("good", 7)]
    # for `word`, the page's figures are the words' (all nine given)
    assert scores.average_page_confidence_score == pytest.approx(
        (0.8 + 1.0 + 0.5 + 0.9 + 0.7 + 0.4 + 0.6 + 0.95 + 0.85) / 9)
    assert scores.minimum_page_confidence_score == 0.4
    assert page.blocks is not None and all(b.confidence_scores is None for b in page.blocks)


def test_block_scores_come_from_each_block() -> None:
    page = sdk_page(mistral_page(scored_page(), run_for(confidence_scores_granularity="block")))
    scores = page.confidence_scores
    assert scores is not None and scores.word_confidence_scores is None
    assert (scores.average_page_confidence_score, scores.minimum_page_confidence_score) == (0.75, 0.3)
    assert page.blocks is not None
    found = [None if b.confidence_scores is None else (
        b.confidence_scores.average_content_confidence_score, b.confidence_scores.minimum_content_confidence_score,
        b.confidence_scores.block_type_confidence_score) for b in page.blocks]
    assert found[0] == (0.9, 0.8, 0.99)
    assert found[1] == (pytest.approx((0.5 + 0.9 + 0.7) / 3), 0.5, 0.97)  # from its words
    assert found[2] == (pytest.approx(0.5), 0.4, None)  # a log-probability (-0.2) is not a score
    assert found[3] == (pytest.approx(0.9), 0.85, None)
    assert found[4] is None  # no confidence given for it


def test_page_granularity_gives_the_page_figures_only() -> None:
    page = sdk_page(mistral_page(scored_page(), run_for(confidence_scores_granularity="page")))
    assert page.confidence_scores is not None
    assert (page.confidence_scores.average_page_confidence_score, page.confidence_scores.word_confidence_scores) == (
        0.75, None)
    assert page.blocks is not None and all(b.confidence_scores is None for b in page.blocks)
    assert sdk_page(mistral_page(scored_page(), run_for())).confidence_scores is None


# ------------------------------------------------------------------ the pure parts

def test_html_tables_with_spans_become_pipe_tables() -> None:
    html = ("<table><thead><tr><th rowspan=\"2\">Region</th><th colspan=\"2\">2024</th></tr>"
            "<tr><th>H1</th><th>H2</th></tr></thead>"
            "<tr><td>North &amp; East</td><td>1|2</td><td>a<br>b</td></tr></table>")
    assert table_as(html, "markdown") == ("| Region | 2024 |  |\n| --- | --- | --- |\n|  | H1 | H2 |\n"
                                          "| North & East | 1\\|2 | a<br>b |")
    assert html_table_rows("<table><tr><td colspan=\"1000000\">x</td></tr></table>") == [["x"] + [""] * 99]
    assert table_as("not a table", "markdown") == "not a table" == table_as("not a table", "html")
    assert table_as("<table><tr>", "markdown") == "<table><tr>"  # cut before a cell: as it came


@pytest.mark.parametrize("label, text, center_y, kind", [
    ("sub_title", "## A", 10.0, "title"),
    ("page_number", "3", 40.0, "header"),
    ("page_number", "3", 60.0, "footer"),
    ("table_footnote", "* est.", 50.0, "caption"),
    ("text", "1. one\n2. two", 50.0, "list"),
    ("text", "1. Introduction", 50.0, "text"),
    ("text", "```python\nx = 1\n```", 50.0, "code"),
    ("something_new", "x", 50.0, "text"),
])
def test_block_types(label: str, text: str, center_y: float, kind: str) -> None:
    assert mistral_block_type(label, text, center_y, 100) == kind
