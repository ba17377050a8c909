from openai_ocr.ocr.grounding import Block, parse_blocks, scale_box, to_markdown

PAGE = """<|ref|>title<|/ref|><|det|>[[84, 52, 912, 97]]<|/det|>
# Quarterly Report [Draft]

<|ref|>text<|/ref|><|det|>[[84, 120, 912, 240]]<|/det|>
Revenue grew [see table 2] by 12% (from [1.2] to [1.35]).

<|ref|>image<|/ref|><|det|>[[100, 300, 500, 600], [520, 300, 900, 600]]<|/det|>


<|ref|>image_caption<|/ref|><|det|>[[100, 610, 900, 640]]<|/det|>
Figure 1: sales.

<|ref|>table<|/ref|><|det|>[[84, 660, 912, 900]]<|/det|>
<table><tr><td>Q1</td><td>1.2</td></tr><tr><td>Q2</td><td>1.35</td></tr></table>"""


def test_blocks_labels_boxes_and_text() -> None:
    blocks = parse_blocks(PAGE)
    assert [b.label for b in blocks] == ["title", "text", "image", "image_caption", "table"]
    assert blocks[0].boxes == [(84, 52, 912, 97)]
    assert blocks[0].text == "# Quarterly Report [Draft]"
    assert blocks[1].text == "Revenue grew [see table 2] by 12% (from [1.2] to [1.35])."
    assert blocks[2].boxes == [(100, 300, 500, 600), (520, 300, 900, 600)]
    assert blocks[2].text == ""
    assert blocks[4].text.startswith("<table>") and blocks[4].text.endswith("</table>")


def test_pixel_boxes_are_grid_over_999_times_size() -> None:
    block = parse_blocks(PAGE)[0]
    (box,) = block.boxes_px(1240, 1754)
    assert box == (84 / 999 * 1240, 52 / 999 * 1754, 912 / 999 * 1240, 97 / 999 * 1754)
    assert scale_box((999, 999, 999, 999), 100, 50) == (100, 50, 100, 50)


def test_markdown_drops_tags_and_references_images() -> None:
    md = to_markdown(parse_blocks(PAGE))
    assert "<|" not in md and "[[" not in md
    assert md.split("\n\n") == [
        "# Quarterly Report [Draft]",
        "Revenue grew [see table 2] by 12% (from [1.2] to [1.35]).",
        "![](images/0.jpg)",
        "Figure 1: sales.",
        "<table><tr><td>Q1</td><td>1.2</td></tr><tr><td>Q2</td><td>1.35</td></tr></table>",
    ]


def test_truncated_mid_table_keeps_what_arrived() -> None:
    cut = PAGE[: PAGE.index("<td>Q2")]  # max_tokens hit inside the table
    blocks = parse_blocks(cut)
    assert blocks[-1].label == "table"
    assert blocks[-1].text == "<table><tr><td>Q1</td><td>1.2</td></tr><tr>"


def test_truncated_inside_the_det_tag() -> None:
    blocks = parse_blocks("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nok\n<|ref|>text<|/ref|><|det|>[[10, 20, 3")
    assert [b.boxes for b in blocks] == [[(1, 2, 3, 4)], []]
    assert blocks[0].text == "ok" and blocks[1].text == ""


def test_missing_closing_tags_and_whitespace_variants() -> None:
    out = "<|ref|>sub_title <|det|>[[ 1 ,2, 3,4 ]]\nHello\n<|ref|>text<|/ref|>\n<|det|>[[5, 6, 7, 8]]<|/det|>\nWorld"
    blocks = parse_blocks(out)
    assert [(b.label, b.boxes, b.text) for b in blocks] == [
        ("sub_title", [(1, 2, 3, 4)], "Hello"), ("text", [(5, 6, 7, 8)], "World")]


def test_plain_text_without_grounding_is_one_text_block() -> None:
    assert parse_blocks("Just text\nwith [brackets] and [[1, 2]]") == [
        Block(label="text", text="Just text\nwith [brackets] and [[1, 2]]")]
    assert parse_blocks("") == []
