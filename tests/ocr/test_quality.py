"""Repetition loops found in model output and cut out; ordinary pages left alone."""

from __future__ import annotations

import random

import pytest

from openai_ocr.ocr.quality import WHEN_CUT, WHEN_ENDED, find_loop, judge, without_loop, z_function
from tests.helpers import sample_lines

PAGE = ("<|ref|>title<|/ref|><|det|>[[100, 40, 899, 80]]<|/det|>\n# Quarterly report\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 300]]<|/det|>\n"
        + " ".join(sample_lines(3)) * 3 + "\n\n")


def table_loop(rows: int) -> str:
    header = "<table><tr><td>Item</td><td>Qty</td></tr>"
    return header + "".join(f"<tr><td>{n}</td><td>{n * 2}</td></tr>" for n in range(rows))


@pytest.mark.parametrize("loop", [
    "| 1 | 2 |\n" * 200,                                      # markdown row, identical
    "".join(f"| {n} | {n + 1} |\n" for n in range(300)),     # rows that count
    "<td></td>" * 400,                                        # one long line of empty cells
    "".join(f"<|ref|>text<|/ref|><|det|>[[100, {n}, 899, {n + 9}]]<|/det|>\n" for n in range(150)),
    "The the the " * 120,                                     # a phrase
])
def test_a_loop_that_ran_into_max_tokens_is_found_and_cut(loop: str) -> None:
    text = PAGE + loop
    verdict = judge(text, "length")
    assert verdict.loop is not None and verdict.truncated
    assert verdict.flags == ["repetition_loop", "truncated"]
    cut = without_loop(text, verdict.loop)
    assert cut.startswith(PAGE)
    assert len(cut) < len(PAGE) + len(loop) / 20  # one copy of the unit is left
    assert find_loop(cut, WHEN_CUT) is None


def test_a_table_that_counts_to_the_limit_is_a_loop() -> None:
    text = PAGE + table_loop(400)
    loop = judge(text, "length").loop
    assert loop is not None and loop.repeats >= 300
    assert "<td>Item</td>" in without_loop(text, loop)


def test_a_loop_in_the_middle_is_cut_and_the_rest_kept() -> None:
    text = PAGE + "| a | b |\n" * 400 + "Closing paragraph after the table.\n"
    verdict = judge(text, "stop")
    assert verdict.loop is not None and not verdict.truncated
    cut = without_loop(text, verdict.loop)
    assert cut == PAGE + "| a | b |\n" + "Closing paragraph after the table.\n"


@pytest.mark.parametrize("text, reason", [
    (PAGE, "stop"),
    (PAGE, "length"),
    (PAGE + "| Name | |\n" * 20, "stop"),          # a form's blank rows, ended on its own
    (PAGE + "Contents " + "." * 150 + " 5\n", "length"),  # a dotted leader
    ("", "stop"),
    ("x", "length"),
])
def test_ordinary_pages_are_not_loops(text: str, reason: str) -> None:
    assert judge(text, reason).loop is None


def test_a_short_repeat_is_a_loop_only_when_it_ran_into_the_limit() -> None:
    text = PAGE + "| | |\n" * 40
    assert find_loop(text, WHEN_CUT) is not None
    assert find_loop(text, WHEN_ENDED) is None


def test_the_z_function() -> None:
    assert z_function("aabxaab") == [7, 1, 0, 0, 3, 1, 0]
    assert z_function("") == []


def test_a_table_of_other_numbers_is_not_a_loop() -> None:
    """Rows of the same shape are a loop only when their numbers stay or count by one step."""
    rng = random.Random(7)
    rows = "".join(f"| {rng.randint(1, 9999)} | {rng.randint(1, 9999)} | {rng.randint(1, 99)}.{rng.randint(10, 99)} |\n"
                   for _ in range(80))
    assert judge(PAGE + rows, "length").loop is None
    counting = "".join(f"| {n} | {n * 3} | 0.50 |\n" for n in range(80))
    assert judge(PAGE + counting, "length").loop is not None


def test_tokens_that_differ_only_in_their_numbers_are_a_loop_only_when_they_repeat() -> None:
    rng = random.Random(3)
    varied = "".join(f"<unused_{rng.randint(1, 120000)}>" for _ in range(400))
    assert judge(varied, "length").loop is None
    assert judge("<unused_20185><unused_88477>" * 200, "length").loop is not None

