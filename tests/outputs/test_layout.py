"""Where the archival writers put lines and words: the engine's word boxes where it has them,
else each block's lines spread over the block's box; and the text a reader of the page sees."""

from __future__ import annotations

from openai_ocr.ocr.models import BlockResult, PageResult, Usage, Word
from openai_ocr.outputs.layout import block_layout, page_layout, plain_lines, plain_word, xml_safe


def page(blocks: list[BlockResult], width: int = 1000, height: int = 800) -> PageResult:
    return PageResult(index=1, width=width, height=height, text="", markdown="", blocks=blocks,
                      finish_reason="stop", usage=Usage())


def contains(outer: tuple[float, ...], inner: tuple[float, ...]) -> bool:
    e = 1e-6
    return outer[0] - e <= inner[0] <= inner[2] <= outer[2] + e and outer[1] - e <= inner[1] <= inner[3] <= outer[3] + e


def test_a_line_is_spread_over_its_block_in_reading_order() -> None:
    block = block_layout(BlockResult(label="text", boxes_px=[(100, 100, 700, 140)], text="one two three"),
                         1000, 800)
    assert block.placed == "estimated" and [w.text for w in block.words] == ["one", "two", "three"]
    lefts = [w.box[0] for w in block.words]
    assert lefts == sorted(lefts) and lefts[0] == 100
    assert all(contains(block.box, w.box) for w in block.words)
    assert block.words[-1].box[2] == 700  # the one line fills its box


def test_a_paragraph_written_on_one_line_fills_its_box_line_by_line() -> None:
    text = " ".join(f"word{n}" for n in range(60))
    block = block_layout(BlockResult(label="text", boxes_px=[(50, 50, 650, 350)], text=text), 1000, 800)
    assert len(block.lines) > 3
    assert [w.text for w in block.words] == text.split()
    tops = [line.box[1] for line in block.lines]
    assert tops == sorted(tops) and tops[0] == 50 and block.lines[-1].box[3] == 350
    assert all(contains(block.box, w.box) for w in block.words)


def test_the_engines_word_boxes_are_used_and_grouped_into_lines() -> None:
    words = [Word(text="Total", box_px=(10, 10, 60, 30), confidence=0.9),
             Word(text="due", box_px=(70, 12, 100, 30), confidence=0.8),
             Word(text="37.50", box_px=(10, 50, 60, 70), confidence=0.95),
             Word(text="EUR", box_px=None, confidence=None),
             Word(text="today", box_px=(120, 50, 170, 70), confidence=0.7)]
    block = block_layout(BlockResult(label="text", boxes_px=[(5, 5, 200, 80)], text="Total due\n37.50 EUR today",
                                     words=words), 1000, 800)
    assert block.placed == "words"
    assert [line.text for line in block.lines] == ["Total due", "37.50 EUR today"]
    placed = {w.text: w for w in block.words}
    assert placed["Total"].box == (10, 10, 60, 30) and placed["Total"].confidence == 0.9
    eur = placed["EUR"].box  # no box of its own: in the gap between its neighbours, on their line
    assert 60 < eur[0] < eur[2] < 120 and eur[1] >= 50 and eur[3] <= 70


def test_markdown_and_html_are_not_part_of_the_text() -> None:
    assert plain_lines("# **Annual** report", "title") == ["Annual report"]
    assert plain_lines("<table><tr><td>Item</td><td>Price</td></tr><tr><td>Tea &amp; milk</td>"
                       "<td>3</td></tr></table>", "table") == ["Item Price", "Tea & milk 3"]
    assert plain_lines("a<br>b\n\n```python\nx = 1\n```", "paragraph") == ["a", "b", "x = 1"]
    assert plain_word("##") == "" and plain_word("**bold**") == "bold" and plain_word("&lt;x&gt;") == "<x>"
    assert xml_safe("a\x00b\x1bc\ud800d") == "abcd"


def test_a_block_without_a_box_covers_the_page_and_figures_carry_no_text() -> None:
    layout = page_layout(page([BlockResult(label="text", boxes_px=[], text="free text"),
                               BlockResult(label="image", boxes_px=[(10, 10, 90, 90)], text="")]))
    first, figure = layout.blocks
    assert first.box == (0.0, 0.0, 1000.0, 800.0) and [w.text for w in first.words] == ["free", "text"]
    assert figure.role == "figure" and figure.lines == () and figure.placed == "none"


def test_labels_become_roles() -> None:
    roles = [b.role for b in page_layout(page([
        BlockResult(label=label, boxes_px=[(0, y, 100, y + 20)], text=text)
        for y, (label, text) in enumerate([("title", "T"), ("sub_title", "S"), ("text", "- a\n- b"),
                                            ("table", "<table><tr><td>x</td></tr></table>"),
                                            ("image_caption", "c"), ("page_number", "3"),
                                            ("equation", "x^2")])])).blocks]
    assert roles == ["title", "heading", "list", "table", "caption", "page_number", "equation"]


def test_boxes_outside_the_page_are_clamped() -> None:
    block = block_layout(BlockResult(label="text", boxes_px=[(-50, 700, 1200, 900)], text="edge"), 1000, 800)
    assert block.box == (0.0, 700.0, 1000.0, 800.0)
    assert contains((0, 0, 1000, 800), block.words[0].box)
