"""Token log-probabilities aligned to the answer text, turned into block, page and word
confidence; a block's words aligned to words a reader found, tolerant of differing readings.

Expected figures are worked out from the definitions (exp of the mean log-probability, the
least token's probability), never taken from the code under test.
"""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st
from pytest import approx

from openai_ocr.ocr.confidence import TokenScores, score_page
from openai_ocr.ocr.grounding import clean_offsets, parse_blocks
from openai_ocr.ocr.models import Usage
from openai_ocr.ocr.quality import judge
from openai_ocr.ocr.recovery import cleaned
from openai_ocr.ocr.translation import CompletionResult
from openai_ocr.ocr.words import FoundWord, align_words, split_line, word_spans

PAGE = ("<|ref|>title<|/ref|><|det|>[[100, 40, 899, 80]]<|/det|>\n# Quarterly report\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nSales rose sharply.\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 300, 899, 400]]<|/det|>\nCosts fell.")
TAG = re.compile(r"<\|/?(?:ref|det)\|>")


def tokens_of(text: str) -> list[str]:
    """A tokenizer's way to cut the text: special tags alone, words with their leading space."""
    return [t for t in re.split(r"(<\|/?(?:ref|det)\|>|\s*[A-Za-z]+|\s*\d+|[^\sA-Za-z\d])", text) if t]


def test_tokens_that_make_up_the_answer_get_the_characters_they_wrote() -> None:
    tokens = tokens_of(PAGE)
    assert "".join(tokens) == PAGE
    scores = TokenScores.align(PAGE, [(t, -0.1) for t in tokens])
    assert scores.exact and len(scores) == len(tokens)
    assert [PAGE[a:b] for a, b in zip(scores.starts, scores.ends, strict=True)] == tokens


def test_a_character_split_over_tokens_is_shared_by_them() -> None:
    """vLLM 0.32 gives a byte-fallback piece no text (its character comes with the token that
    completes it); other servers give U+FFFD. Either way the pieces share the character."""
    text = "café ok"
    fallback = TokenScores.align(text, [("caf", -0.1), ("", -3.0), ("é", -0.2), (" ok", -0.1)])
    assert fallback.exact
    assert [text[a:b] for a, b in zip(fallback.starts, fallback.ends, strict=True)] == ["caf", "é", "é", " ok"]
    replaced = TokenScores.align(text, [("caf", -0.1), ("\ufffd", -3.0), ("\ufffd", -0.2), (" ok", -0.1)])
    assert not replaced.exact
    assert [text[a:b] for a, b in zip(replaced.starts, replaced.ends, strict=True)] == ["caf", "é", "é", " ok"]
    e_acute = text.index("é")
    assert list(replaced.covering(e_acute, e_acute + 1)) == [1, 2]


def test_a_stop_token_outside_the_text_covers_nothing() -> None:
    scores = TokenScores.align("Hi there", [("Hi", -0.1), (" there", -0.2), ("<｜end▁of▁sentence｜>", -0.01)])
    assert not scores.exact
    assert list(scores.covering(0, 8)) == [0, 1]


def test_a_cut_loop_takes_its_tokens_with_it() -> None:
    """The kept answer's loop is cut out of the text: its tokens go, the later ones move back,
    and every token left still wrote what it says."""
    text = "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nStart " + "again and " * 80
    tokens = tokens_of(text)
    result = CompletionResult(text, "stop", Usage(), "m",
                              tokens=TokenScores.align(text, [(t, -0.01 * i) for i, t in enumerate(tokens)]))
    verdict = judge(text, "length")
    assert verdict.loop is not None
    kept = cleaned(result, verdict, cut=True)
    assert kept.tokens is not None and len(kept.text) < len(text) / 4
    spans = [(a, b, lp) for a, b, lp in zip(kept.tokens.starts, kept.tokens.ends, kept.tokens.logprobs, strict=True)]
    by_logprob = {-0.01 * i: t for i, t in enumerate(tokens)}
    assert all(kept.text[a:b] == by_logprob[lp] for a, b, lp in spans)
    assert kept.text.startswith(text[:60]) and len(spans) < len(tokens) / 4


def scored(logprob_of: dict[str, float], default: float = -0.01) -> list[tuple[str, float]]:
    return [(t, logprob_of.get(t.strip(), default)) for t in tokens_of(PAGE)]


def test_a_block_read_with_low_log_probabilities_is_less_sure_than_its_neighbours() -> None:
    tokens = scored({"Sales": -1.5, "rose": -0.7, "sharply": -2.5, "title": -0.3})
    blocks = parse_blocks(PAGE)
    page = score_page(PAGE, blocks, 999, 999, tokens=TokenScores.align(PAGE, tokens), found=None, words=True)
    title, sales, costs = page.blocks
    assert sales.confidence is not None and title.confidence is not None and costs.confidence is not None
    # "Sales rose sharply." : Sales, rose, sharply, "." ; "Costs fell." : Costs, fell, "."
    assert sales.confidence.average == approx(math.exp((-1.5 - 0.7 - 2.5 - 0.01) / 4))
    assert sales.confidence.minimum == approx(math.exp(-2.5))
    assert costs.confidence.average == approx(math.exp(-0.01))
    assert sales.confidence.average < min(title.confidence.average or 0, costs.confidence.average or 0)
    assert title.confidence.label == approx(math.exp(-0.3))
    assert costs.confidence.label == approx(math.exp(-0.01))
    assert sales.words is not None
    assert [(w.text, w.confidence) for w in sales.words] == [
        ("Sales", approx(math.exp(-1.5))), ("rose", approx(math.exp(-0.7))),
        ("sharply.", approx(math.exp(-2.5)))]
    assert all(w.box_px is None for w in sales.words)  # no reader found words: no boxes
    # the page: every token of the three blocks' text (# Quarterly report: 3 tokens)
    expected = (-1.5 - 0.7 - 2.5 - 0.01) + 3 * -0.01 + 3 * -0.01
    assert page.confidence is not None
    assert page.confidence.average == approx(math.exp(expected / 10))
    assert page.confidence.minimum == approx(math.exp(-2.5))


def test_without_words_asked_only_the_figures_are_given() -> None:
    page = score_page(PAGE, parse_blocks(PAGE), 999, 999, tokens=TokenScores.align(PAGE, scored({})),
                      found=None, words=False)
    assert all(b.words is None and b.confidence is not None for b in page.blocks)


def test_found_words_give_boxes_inside_the_block_and_the_model_keeps_its_confidence() -> None:
    found = [FoundWord("Sales", (100, 110, 150, 130), 0.9), FoundWord("rose", (160, 110, 200, 130), 0.8),
             FoundWord("sharply.", (210, 110, 290, 130), 0.7),
             FoundWord("Costs", (300, 160, 350, 180), 0.9), FoundWord("fell.", (360, 160, 400, 180), 0.9),
             FoundWord("Costs", (100, 310, 150, 330), 0.6), FoundWord("fell.", (160, 310, 200, 330), 0.5)]
    page = score_page(PAGE, parse_blocks(PAGE), 999, 999, tokens=TokenScores.align(PAGE, scored({"rose": -0.5})),
                      found=found, words=True)
    sales = page.blocks[1]
    assert sales.words is not None
    assert [(w.text, w.box_px) for w in sales.words] == [
        ("Sales", (100, 110, 150, 130)), ("rose", (160, 110, 200, 130)), ("sharply.", (210, 110, 290, 130))]
    assert sales.words[1].confidence == approx(math.exp(-0.5))  # the model's, not the reader's
    costs = page.blocks[2]  # the same words read inside the block above are not its words
    assert costs.words is not None
    assert [w.box_px for w in costs.words] == [(100, 310, 150, 330), (160, 310, 200, 330)]
    title = page.blocks[0]
    assert title.words is not None and all(w.box_px is None for w in title.words)  # nothing found in it


def test_differing_readings_are_aligned_not_matched_by_position() -> None:
    found = [FoundWord("lnvoice", (0, 0, 70, 10), 0.6), FoundWord("num-", (80, 0, 120, 10), 0.9),
             FoundWord("ber", (130, 0, 160, 10), 0.8), FoundWord("extra", (0, 20, 50, 30), 0.5),
             FoundWord("2041", (170, 0, 210, 10), 0.95)]
    placed = align_words(["Invoice", "number", "2041", "total"], found)
    # Invoice/number against lnvoice/num-/ber/extra: aligned again character by character
    invoice, number, year, total = placed
    assert invoice == ((10, 0, 70, 10), 0.6)  # "nvoice": the last 6 of lnvoice's 7 characters
    assert number == ((80, 0, 160, 10), 0.8)  # "num" of num- and all of "ber"; the least score
    assert year == ((170, 0, 210, 10), 0.95)  # "extra" (only the reader saw it) skipped
    assert total == (None, None)  # the reader never saw it: no box invented


def test_equal_counts_in_a_differing_stretch_pair_one_to_one() -> None:
    found = [FoundWord("Tota1", (0, 0, 50, 10), 0.4), FoundWord("dve", (60, 0, 90, 10), 0.5)]
    assert align_words(["Total", "due"], found) == [((0, 0, 50, 10), 0.4), ((60, 0, 90, 10), 0.5)]


def test_table_words_are_the_cells_words() -> None:
    text = "<table><tr><td>Region</td><td>Q1 total</td></tr></table>"
    assert [text[a:b] for a, b in word_spans(text, table=True)] == ["Region", "Q1", "total"]
    plain = "a  b\nc"
    assert [plain[a:b] for a, b in word_spans(plain)] == ["a", "b", "c"]


def test_a_line_scored_as_a_whole_is_split_by_character_proportions() -> None:
    words = split_line("ab cde", (0, 0, 60, 10), 0.7)  # 6 characters: 10 px each
    assert [(w.text, w.box, w.confidence) for w in words] == [("ab", (0, 0, 20, 10), 0.7),
                                                             ("cde", (30, 0, 60, 10), 0.7)]


pieces = st.sampled_from(["<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "\n", " ", "a", "é", "[[1, 2]]", "xy"])


@given(st.lists(pieces, max_size=30), st.integers(0, 5), st.integers(0, 5))
def test_clean_offsets_agree_with_the_parser(parts: list[str], cut_start: int, cut_end: int) -> None:
    output = "".join(parts)
    start, end = min(cut_start, len(output)), max(min(cut_start, len(output)), len(output) - cut_end)
    text, offsets = clean_offsets(output, start, end)
    assert text == TAG.sub("", output[start:end]).strip("\n").rstrip()  # parse_blocks' cleaning
    assert len(offsets) == len(text) and all(output[o] == ch for o, ch in zip(offsets, text, strict=True))
    assert offsets == sorted(offsets) and all(start <= o < end for o in offsets)
