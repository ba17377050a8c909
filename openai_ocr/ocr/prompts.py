"""DeepSeek-OCR's official prompt templates and the named modes that select them.

Prompts are kept without the `<image>` placeholder: the image travels as an `image_url`
content part and the server's chat template puts the placeholder in front of the text.
"""

from __future__ import annotations

import re
from typing import Final

from openai_ocr.errors import excerpt

MODES: Final[dict[str, str]] = {
    "markdown": "<|grounding|>Convert the document to markdown.",
    "ocr": "<|grounding|>OCR this image.",
    "free_ocr": "Free OCR.",
    "figure": "Parse the figure.",
    "describe": "Describe this image in detail.",
    "locate": "Locate <|ref|>{ref}<|/ref|> in the image.",
}
"""Named modes -> prompt text (from the DeepSeek-OCR repository's examples)."""

MODE_DESCRIPTIONS: Final[dict[str, str]] = {  # what each mode is for, in the API schema
    "markdown": "document to markdown, with grounding boxes (the default)",
    "ocr": "OCR with grounding boxes for every text block",
    "free_ocr": "plain text, no layout",
    "figure": "parse a chart or figure",
    "describe": "describe the image in detail",
    "locate": "find the text given in `ref` and answer its boxes",
}

FAMILY_MODES: Final[dict[str, tuple[str, ...]]] = {
    "deepseek-ocr": tuple(MODES),
    # DeepSeek-OCR-2's repository documents two prompts only
    "deepseek-ocr-2": ("markdown", "free_ocr"),
}
"""The named modes each model family was trained for."""
_PLACEHOLDER_RE = re.compile(r"<image>[ \t]*\n?")


class PromptError(ValueError):
    """A prompt that cannot be built (unknown mode, missing `ref`)."""


def strip_image_placeholder(prompt: str) -> str:
    """Remove `<image>` placeholders (and the newline after each) from a user prompt.

    Old clients send the full DeepSeek-OCR prompt `"<image>\\n..."`; the placeholder is
    added again by the server's chat template, so keeping it would duplicate the image.
    """
    return _PLACEHOLDER_RE.sub("", prompt).strip()


def build_prompt(prompt: str | None, mode: str | None, ref: str | None, default_mode: str,
                 family: str = "deepseek-ocr") -> str:
    """The prompt text for one request: an explicit prompt wins, then `mode`, then the default."""
    if prompt is not None and prompt.strip():
        text = strip_image_placeholder(prompt)
        if not text:
            raise PromptError("prompt contains nothing besides the <image> placeholder")
        return text
    name = mode or default_mode
    template = MODES.get(name)
    if template is None:
        raise PromptError(f"unknown mode {excerpt(name)}; choose one of: {', '.join(MODES)}")
    allowed = FAMILY_MODES.get(family, tuple(MODES))
    if name not in allowed:
        raise PromptError(f"mode {excerpt(name)} is not one of {family}'s prompts; it supports: "
                          + ", ".join(f"{n} ({MODES[n]!r})" for n in allowed))
    if "{ref}" in template:
        if not ref or not ref.strip():
            raise PromptError(f"mode {excerpt(name)} needs a non-empty `ref` (the text to locate)")
        return template.format(ref=ref.strip())
    return template
