"""Reading order and DeepSeek-OCR-shaped output of `openai_ocr.engines.lite.layout` (pure, no engine)."""

from __future__ import annotations

import math
import re

import pytest

from openai_ocr.engines.lite.layout import (
    TextLine,
    deskewed,
    grid_box,
    locate_boxes,
    page_blocks,
    page_skew,
    reading_order,
    to_blocks,
    to_grounding,
    to_locate,
    to_plain_text,
)
from tests.helpers import column

W, H = 1000, 1400


def two_column_page(title: bool) -> list[TextLine]:
    lines = column(60, 480, 200, [f"L{i}" for i in range(8)]) + column(520, 940, 200, [f"R{i}" for i in range(8)])
    if title:
        lines.append(TextLine(150, 80, 850, 130, "Title"))
    return lines[::-1]  # engines answer in any order


def texts(lines: list[TextLine]) -> list[str]:
    return [ln.text for ln in lines]


def test_two_columns_read_left_then_right() -> None:
    ordered = reading_order(two_column_page(title=False), W, H)
    assert texts(ordered) == [f"L{i}" for i in range(8)] + [f"R{i}" for i in range(8)]


def test_title_spanning_columns_stays_first() -> None:
    ordered = reading_order(two_column_page(title=True), W, H)
    assert texts(ordered) == ["Title"] + [f"L{i}" for i in range(8)] + [f"R{i}" for i in range(8)]


def test_full_width_paragraph_between_two_column_bands() -> None:
    top = column(60, 480, 100, ["a0", "a1", "a2"]) + column(520, 940, 100, ["b0", "b1", "b2"])
    middle = [TextLine(60, 260, 940, 288, "wide0"), TextLine(60, 300, 940, 328, "wide1")]
    bottom = column(60, 480, 400, ["c0", "c1", "c2"]) + column(520, 940, 400, ["d0", "d1", "d2"])
    ordered = reading_order(bottom + middle + top, W, H)
    assert texts(ordered) == ["a0", "a1", "a2", "b0", "b1", "b2", "wide0", "wide1",
                              "c0", "c1", "c2", "d0", "d1", "d2"]


def test_single_column_with_ragged_lines_keeps_top_to_bottom() -> None:
    lines = [TextLine(60, 100 + 40 * i, 900 - 97 * (i % 5), 128 + 40 * i, f"s{i}") for i in range(10)]
    lines.append(TextLine(700, 520, 940, 548, "right-aligned date"))
    ordered = reading_order(lines[::-1], W, H)
    assert texts(ordered) == [f"s{i}" for i in range(10)] + ["right-aligned date"]


def test_pieces_of_one_row_are_read_left_to_right_and_joined() -> None:
    lines = [TextLine(500, 102, 700, 130, "world"), TextLine(60, 100, 300, 128, "hello"),
             TextLine(60, 150, 700, 178, "next line")]
    ordered = reading_order(lines, W, H)
    assert texts(ordered) == ["hello world", "next line"]
    assert to_plain_text(page_blocks(lines, W, H)) == "hello world\nnext line"


def test_plain_text_separates_paragraphs_by_a_blank_line() -> None:
    lines = column(60, 900, 100, ["p1 a", "p1 b"]) + column(60, 900, 260, ["p2 a", "p2 b"])
    assert to_plain_text(page_blocks(lines, W, H)) == "p1 a\np1 b\n\np2 a\np2 b"


def test_grid_scaling() -> None:
    assert grid_box((0, 0, W, H), W, H) == [0, 0, 999, 999]
    # 100/1000*999 = 99.9 -> 100; 700/1400*999 = 499.5 -> 500 (half to even); 500/1000*999 = 499.5 -> 500
    assert grid_box((100, 700, 500, 1400), W, H) == [100, 500, 500, 999]
    assert grid_box((-5, -5, W + 20, H + 20), W, H) == [0, 0, 999, 999]


def test_grounding_format_with_title_and_paragraph() -> None:
    para = column(100, 900, 200, ["first line of a para-", "graph goes on"])
    lines = [TextLine(100, 50, 900, 110, "Big Title"), *para]
    out = to_grounding(page_blocks(lines, W, H, paragraphs=True), W, H, markdown=True)
    blocks = out.split("\n\n")
    # (100, 50, 900, 110) px on 1000 x 1400: 99.9, 35.7, 899.1, 78.5 on the 0..999 grid
    assert blocks[0] == "<|ref|>title<|/ref|><|det|>[[100, 36, 899, 78]]<|/det|>\n# Big Title"
    head, text = blocks[1].split("\n")
    assert re.fullmatch(r"<\|ref\|>text<\|/ref\|><\|det\|>\[\[\d+, \d+, \d+, \d+\]\]<\|/det\|>", head)
    assert text == "first line of a paragraph goes on"


def test_grounding_ocr_mode_has_one_block_per_row() -> None:
    lines = column(100, 900, 200, ["one", "two", "three"])
    out = to_grounding(page_blocks(lines, W, H, paragraphs=False), W, H, markdown=False)
    assert out.count("<|ref|>text<|/ref|>") == 3
    assert [part.split("\n")[1] for part in out.split("\n\n")] == ["one", "two", "three"]


def test_blocks_label_larger_later_lines_as_sub_title() -> None:
    lines = [*column(100, 900, 100, ["a", "b"]), TextLine(100, 250, 600, 300, "Section"), *column(100, 900, 340, ["c"])]
    labels = [b.label for b in to_blocks(reading_order(lines, W, H))]
    assert labels == ["text", "sub_title", "text"]


def test_locate_whole_line_and_part_of_line() -> None:
    lines = [TextLine(100, 100, 500, 130, "Invoice"), TextLine(100, 200, 900, 230, "Total invoice amount")]
    # "invoice" is characters 6..13 of the 20 in line two: x 100 + 800 * 6/20 .. 100 + 800 * 13/20
    assert locate_boxes(lines, "INVOICE") == [(100, 100, 500, 130), (340, 200, 620, 230)]
    assert to_locate(lines, "invoice", W, H) == (
        "<|ref|>invoice<|/ref|><|det|>[[100, 71, 500, 93], [340, 143, 619, 164]]<|/det|>")


def test_locate_absent_text_answers_nothing() -> None:
    assert to_locate([TextLine(0, 0, 10, 10, "abc")], "xyz", W, H) == ""


def test_table_cells_in_aligned_rows_are_read_row_by_row() -> None:
    cells = []
    for i in range(6):
        y = 100 + 30 * i
        cells += [TextLine(100, y, 115, y + 20, "4"), TextLine(140, y, 215, y + 20, "CARD32"),
                  TextLine(230, y, 400, y + 20, f"FIELD_{i}")]
    assert to_plain_text(page_blocks(cells[::-1], W, H)).splitlines() == [f"4 CARD32 FIELD_{i}" for i in range(6)]


def test_sparse_notes_to_the_right_are_not_a_column() -> None:
    lines = [TextLine(100, 100 + 30 * i, 600, 120 + 30 * i, f"code line {i}") for i in range(20)]
    lines += [TextLine(700, 211, 900, 229, "note one"), TextLine(700, 511, 900, 529, "note two")]
    ordered = texts(reading_order(lines[::-1], W, H))
    assert ordered.index("note one") == ordered.index("code line 3") + 1
    assert ordered.index("note two") == ordered.index("code line 13") + 1


def tilted(lines: list[TextLine], degrees: float) -> list[TextLine]:
    """The lines of a page scanned `degrees` askew: rotated about the page centre, boxed again."""
    theta = math.radians(degrees)
    out = []
    for ln in lines:
        corners = [(ln.x1, ln.y1), (ln.x2, ln.y1), (ln.x2, ln.y2), (ln.x1, ln.y2)]
        turned = [(W / 2 + (x - W / 2) * math.cos(theta) - (y - H / 2) * math.sin(theta),
                   H / 2 + (x - W / 2) * math.sin(theta) + (y - H / 2) * math.cos(theta)) for x, y in corners]
        xs, ys = [p[0] for p in turned], [p[1] for p in turned]
        out.append(TextLine(min(xs), min(ys), max(xs), max(ys), ln.text, angle=degrees))
    return out


@pytest.mark.parametrize("degrees", [-2.5, 2.5])
def test_a_tilted_scan_is_straightened_before_its_columns_are_found(degrees: float) -> None:
    left = column(60, 480, 200, [f"L{i:02}" for i in range(24)], step=36)
    right = column(520, 940, 200, [f"R{i:02}" for i in range(24)], step=36)
    page = tilted([TextLine(150, 80, 850, 130, "Title"), *left, *right], degrees)
    expected = ["Title", *texts(left), *texts(right)]
    assert abs(page_skew(page) - degrees) < 1e-9
    assert texts(reading_order(page, W, H)) == expected
    # the same boxes without their angle: the gutter is closed and rows merge
    unaware = [TextLine(ln.x1, ln.y1, ln.x2, ln.y2, ln.text) for ln in page]
    assert texts(reading_order(unaware, W, H)) != expected


def test_a_straight_page_is_left_as_it_is() -> None:
    page = [TextLine(ln.x1, ln.y1, ln.x2, ln.y2, ln.text, angle=0.1) for ln in two_column_page(title=True)]
    assert deskewed(page, W, H) == page
