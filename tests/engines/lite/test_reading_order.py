"""The reading-order rule of `page_blocks` on synthetic layouts: spans over columns, floats
across the gutter, side captions, headers and footers, unequal columns, tables."""

from __future__ import annotations

from openai_ocr.engines.lite.layout import LineBlock, Region, TextLine, page_blocks, to_grounding, to_plain_text
from tests.helpers import column

W, H = 1000, 1400


def read(blocks: list[LineBlock]) -> list[str]:
    return [ln.text for block in blocks for ln in block.lines]


def labels(blocks: list[LineBlock]) -> list[str]:
    return [block.label for block in blocks]


def test_full_width_title_over_two_columns() -> None:
    left = column(60, 480, 200, [f"L{i}" for i in range(10)])
    right = column(520, 940, 200, [f"R{i}" for i in range(10)])
    title = TextLine(60, 150, 900, 190, "Headline across the page")  # no white strip: the span rule
    blocks = page_blocks([*right, title, *left], W, H)
    assert read(blocks) == ["Headline across the page", *(f"L{i}" for i in range(10)), *(f"R{i}" for i in range(10))]
    assert blocks[0].label == "title"


def test_full_width_title_over_three_unequal_columns() -> None:
    cols = [column(40, 250, 220, [f"A{i}" for i in range(12)]),       # a narrow column
            column(290, 700, 220, [f"B{i}" for i in range(12)]),      # a wide one
            column(740, 960, 220, [f"C{i}" for i in range(12)])]
    title = TextLine(40, 160, 960, 205, "Three columns")
    blocks = page_blocks([title, *cols[2], *cols[0], *cols[1]], W, H)
    assert read(blocks) == ["Three columns", *(ln.text for col in cols for ln in col)]


def test_a_short_heading_across_the_gutter_still_spans_the_columns() -> None:
    left = column(60, 480, 200, [f"L{i}" for i in range(10)])
    right = column(520, 940, 200, [f"R{i}" for i in range(10)])
    heading = TextLine(380, 150, 640, 192, "Short")  # narrow, but set large: a heading, not a float
    assert read(page_blocks([*left, *right, heading], W, H))[0] == "Short"


def test_photo_across_the_gutter_and_its_caption_between_the_columns() -> None:
    """The magazine case: text runs around a photo set across the gutter; the caption under
    the photo lies between the columns. Both columns are read whole; photo and caption after."""
    photo = Region("image", 330, 500, 670, 760)
    caption = [TextLine(380, 772, 620, 792, "Caption line one"), TextLine(400, 798, 600, 818, "caption two")]
    left = [TextLine(60, 100 + 40 * i, 480 if not 470 <= 100 + 40 * i <= 830 else 310, 128 + 40 * i, f"L{i:02}")
            for i in range(24)]
    right = [TextLine(520 if not 470 <= 100 + 40 * i <= 830 else 690, 100 + 40 * i, 940, 128 + 40 * i, f"R{i:02}")
             for i in range(24)]
    regions = [photo, Region("image_caption", 375, 768, 625, 822)]
    blocks = page_blocks([*caption, *right, *left], W, H, regions)
    assert read(blocks) == [*(ln.text for ln in left), *(ln.text for ln in right), "Caption line one", "caption two"]
    assert labels(blocks)[-2:] == ["image", "image_caption"]
    # without the layout model the caption lines are floats all the same
    assert read(page_blocks([*caption, *right, *left], W, H)) == read(blocks)


def test_side_caption_in_the_margin_goes_with_its_figure() -> None:
    above = column(300, 940, 100, [f"a{i}" for i in range(6)])
    figure = Region("image", 300, 360, 940, 700)
    side = column(60, 260, 400, ["Figure 1: a side", "caption in the", "margin"], step=30, h=20)
    below = column(300, 940, 730, [f"b{i}" for i in range(6)])
    regions = [figure, Region("image_caption", 55, 395, 265, 475)]
    blocks = page_blocks([*below, *side, *above], W, H, regions)
    assert read(blocks) == [*(f"a{i}" for i in range(6)), "Figure 1: a side", "caption in the", "margin",
                            *(f"b{i}" for i in range(6))]
    assert labels(blocks) == ["text", "image", "image_caption", "text"]


def test_footer_and_header_are_kept_labelled_and_placed_last_and_first() -> None:
    left = column(60, 480, 150, [f"L{i}" for i in range(25)])
    right = column(520, 940, 150, [f"R{i}" for i in range(25)])
    footer = TextLine(60, 1340, 200, 1365, "Page 7")
    header = TextLine(700, 30, 940, 55, "Annual report 2026")
    blocks = page_blocks([footer, *right, header, *left], W, H)
    assert read(blocks) == ["Annual report 2026", *(f"L{i}" for i in range(25)), *(f"R{i}" for i in range(25)),
                            "Page 7"]
    assert labels(blocks)[0] == "header" and labels(blocks)[-1] == "footer"


def test_a_title_at_the_top_of_the_page_is_not_a_header() -> None:
    title = TextLine(60, 40, 900, 100, "Big title")
    blocks = page_blocks([title, *column(60, 900, 200, ["x", "y"])], W, H)
    assert labels(blocks) == ["title", "text"]


def test_letterhead_beside_invoice_data_then_a_table_with_html_cells() -> None:
    sender = column(60, 330, 100, ["12 Harbour Street", "Bristol BS1 4QA", "VAT GB 123"], step=30, h=22)
    info = column(650, 940, 100, ["Invoice no. 2026-1", "Date: 28 November", "Due: 28 December"], step=30, h=22)
    rows = [["Description", "Qty", "Amount"], ["Blue widgets", "3", "12.00"], ["Red widgets", "10", "7.50"],
            ["Green widgets", "1", "99.90"]]
    cells = [TextLine(x, 300 + 45 * r, x + 20 + 12 * len(text), 322 + 45 * r, text)
             for r, row in enumerate(rows) for x, text in zip((60, 600, 800), row, strict=True)]
    blocks = page_blocks([*cells[::-1], *info, *sender], W, H)
    assert read(blocks)[:6] == [*(ln.text for ln in sender), *(ln.text for ln in info)]
    table = blocks[-1]
    assert table.label == "table"
    assert [list(r) for r in table.rows] == rows
    grounding = to_grounding(blocks, W, H)
    assert "<table><tr><td>Description</td><td>Qty</td><td>Amount</td></tr><tr><td>Blue widgets</td>" in grounding
    assert to_plain_text(blocks).endswith("Green widgets 1 99.90")


def test_table_region_from_the_model_gives_a_grid_even_with_single_cell_rows() -> None:
    lines = [TextLine(100, 100, 200, 120, "Name"), TextLine(400, 100, 500, 120, "Score"),
             TextLine(100, 140, 200, 160, "Ann"), TextLine(400, 140, 440, 160, "7"),
             TextLine(100, 180, 200, 200, "Bo")]
    blocks = page_blocks(lines, W, H, [Region("table", 90, 90, 510, 210)])
    assert [list(r) for r in blocks[0].rows] == [["Name", "Score"], ["Ann", "7"], ["Bo", ""]]


def test_a_column_the_model_also_calls_a_figure_keeps_its_last_line_last() -> None:
    """A layout model found the right column twice, as `text` and as `image` reaching a little
    lower (a tilted scan): the last line overlaps the image more, but the image covers a
    whole column of running text, so it is no figure and the line stays where it is."""
    left = column(60, 480, 200, [f"L{i:02}" for i in range(20)])
    right = column(520, 940, 200, [f"R{i:02}" for i in range(20)])
    regions = [Region("text", 515, 195, 945, 968, 0.67), Region("image", 518, 196, 945, 990, 0.71)]
    blocks = page_blocks([*right, *left], W, H, regions)
    assert read(blocks) == [*(ln.text for ln in left), *(ln.text for ln in right)]
    assert "image" not in labels(blocks)
