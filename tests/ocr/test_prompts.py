import pytest

from openai_ocr.ocr.prompts import MODES, PromptError, build_prompt, strip_image_placeholder


@pytest.mark.parametrize("raw, expected", [
    ("<image>\nFree OCR.", "Free OCR."),
    ("<image>\n<|grounding|>Convert the document to markdown.",
     "<|grounding|>Convert the document to markdown."),
    ("Free OCR.", "Free OCR."),
    ("<image>Free OCR.", "Free OCR."),
    ("  <image>  \n  Parse the figure. ", "Parse the figure."),
])
def test_strip_image_placeholder(raw: str, expected: str) -> None:
    assert strip_image_placeholder(raw) == expected


def test_default_mode_is_markdown_with_grounding() -> None:
    assert build_prompt(None, None, None, "markdown") == "<|grounding|>Convert the document to markdown."


@pytest.mark.parametrize("mode, expected", [
    ("free_ocr", "Free OCR."),
    ("ocr", "<|grounding|>OCR this image."),
    ("figure", "Parse the figure."),
    ("describe", "Describe this image in detail."),
])
def test_named_modes_use_official_templates(mode: str, expected: str) -> None:
    assert build_prompt(None, mode, None, "markdown") == expected


def test_locate_inserts_ref() -> None:
    assert build_prompt(None, "locate", " Total ", "markdown") == "Locate <|ref|>Total<|/ref|> in the image."


def test_locate_without_ref_is_an_error() -> None:
    with pytest.raises(PromptError, match="ref"):
        build_prompt(None, "locate", None, "markdown")


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(PromptError, match="unknown mode"):
        build_prompt(None, "poetry", None, "markdown")


def test_explicit_prompt_wins_over_mode() -> None:
    assert build_prompt("<image>\nFree OCR.", "describe", None, "markdown") == "Free OCR."


def test_placeholder_only_prompt_is_an_error() -> None:
    with pytest.raises(PromptError):
        build_prompt("<image>\n", None, None, "markdown")


def test_blank_prompt_falls_back_to_mode() -> None:
    assert build_prompt("   ", "free_ocr", None, "markdown") == "Free OCR."


def test_no_template_contains_the_placeholder() -> None:
    assert all("<image>" not in t for t in MODES.values())
