"""The OCR request options and per-page results: the vocabulary of the translation layer.

Pydantic models shared by every route family (legacy, OpenAI, Mistral) and the CLI; the
HTTP schemas in `openai_ocr.protocol` build on them.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel, ConfigDict, Field

from openai_ocr.ocr.prompts import MODE_DESCRIPTIONS, MODES
from openai_ocr.settings import ModeName

OutputFormat = Literal["text", "markdown", "json", "pdf", "hocr", "alto"]
assert set(get_args(ModeName)) == set(MODES) == set(MODE_DESCRIPTIONS)


class OCROptions(BaseModel):
    """Per-request options shared by every legacy route (JSON body or multipart form)."""

    model_config = ConfigDict(allow_inf_nan=False)  # JSON NaN/Infinity are refused, not forwarded

    prompt: str | None = Field(
        None, description="Raw DeepSeek-OCR prompt. A leading `<image>` placeholder is "
        "accepted and removed (the image is sent as its own content part). Wins over `mode`.",
        examples=["<image>\nFree OCR."])
    mode: ModeName | None = Field(
        None, description="Named official prompt: " + "; ".join(
            f"`{name}`: {text}" for name, text in MODE_DESCRIPTIONS.items()))
    ref: str | None = Field(None, description="Text to find, for mode `locate` (at most "
                            "`budget.max_prompt_chars` characters).")
    temperature: float | None = Field(None, ge=0.0, le=2.0,
                                      description="Sampling temperature; 0 (greedy) by default.")
    max_tokens: int | None = Field(None, ge=1, description="Output token limit; 8192 by default, "
                                   "at most the server's `ocr.max_tokens_cap`.")
    ngram_size: int | None = Field(None, ge=1, le=1000,
                                   description="Override of the n-gram repetition guard's n.")
    window_size: int | None = Field(None, ge=1, le=10000,
                                    description="Override of the n-gram guard's window.")
    pages: str | None = Field(None, max_length=1000, description="Pages of a PDF or multi-frame "
                              "TIFF, 1-based: \"1-3,7\", \"5-\"; all pages by default.",
                              examples=["1-3,7"])
    output: OutputFormat = Field("text", description="`text`: the raw model output (pages "
                                 "joined by the page separator); `markdown`: clean markdown; "
                                 "`json`: also `pages` with blocks and pixel boxes. Archival "
                                 "files, answered as the file itself by `/ocr` and `/ocr/file` "
                                 "(in a batch line: stored, named by `output_file`): `pdf` a searchable "
                                 "PDF (the input's pages with an invisible text layer), `hocr` "
                                 "hOCR 1.2, `alto` ALTO 4.4 XML.")
    include_images: bool = Field(False, description="Return figure crops (`image` blocks) as "
                                 "base64 PNG in `pages[].images`.")
    dpi: int | None = Field(None, ge=36, le=600, description="PDF render resolution "
                            "(default from config, 144).")
    include_page_images: bool = Field(False, description="Return each page as the model saw it "
                                      "(a PDF page rendered) as base64 PNG in "
                                      "`pages[].image_base64`, so a client can draw the boxes "
                                      "over it without rendering PDFs itself.")
    resolution: str | None = Field(
        None, max_length=100, description="Vision resolution mode: `tiny` (512, 73 image tokens), "
        "`small` (640, 111), `base` (1024, 273), `large` (1280, 421), `gundam` (1024 global view + "
        "640 tiles; the default); `auto`: each page in the smallest mode whose vision tokens hold its "
        "text (at most 10 text tokens per vision token, small type still legible), reported in the "
        "page's `quality.resolution`. DeepSeek-OCR-2 has only `gundam` (768 tiles). Default from config.",
        examples=["tiny", "gundam", "auto"])
    base_size: int | None = Field(None, description="Raw global-view size (the old server's "
                                  "BASE_SIZE); must be a mode's value.")
    image_size: int | None = Field(None, description="Raw tile size (the old server's "
                                   "IMAGE_SIZE); must be a mode's value.")
    crop_mode: bool | None = Field(None, description="Raw tiling switch (the old server's "
                                   "CROP_MODE); must be a mode's value.")
    confidence: bool | None = Field(None, description="Confidence (0..1) of each page and block "
                                    "in `pages` (token log-probabilities asked of the model; the "
                                    "lite engine's recogniser scores, with its words). Default: "
                                    "on with `output=json`.")
    word_boxes: bool = Field(False, description="Each block's `words` with pixel boxes (and "
                             "confidence), with `output=json`: the model's words aligned to the "
                             "words the lite engine's detector and reader find in the block "
                             "(needs the `lite` extra where another engine serves). Implies "
                             "`confidence`.")


class Usage(BaseModel):
    """Token counts as OpenAI's, plus what a page cost besides: its vision tokens, the engine
    calls made for it (tries after a loop included) and the engine's time."""

    prompt_tokens: int = Field(0, description="Prompt tokens of every engine call, the image's "
                               "vision tokens included.")
    completion_tokens: int = 0
    total_tokens: int = 0
    image_tokens: int = Field(0, description="Vision tokens of the page image(s) in the resolution "
                              "mode used (the lite engine counts what DeepSeek-OCR would).")
    attempts: int = Field(0, description="Engine calls made (more than one a page when a loop was "
                          "read again).")
    engine_ms: float = Field(0.0, description="Milliseconds the engine calls took.")

    def chat_usage(self) -> CompletionUsage:
        """As OpenAI's chat usage (its three counts)."""
        return CompletionUsage(prompt_tokens=self.prompt_tokens, total_tokens=self.total_tokens,
                               completion_tokens=self.completion_tokens)


QualityFlag = Literal["repetition_loop", "truncated", "recovered", "fallback_engine"]


class PageQuality(BaseModel):
    """What became of a page's model output: loops found and cut, tries made, whose text it is."""

    flags: list[QualityFlag] = Field([], description="`repetition_loop` / `truncated`: the first "
                                     "answer held a repetition loop / was cut by max_tokens; "
                                     "`recovered`: a later try was clean and is the text given; "
                                     "`fallback_engine`: that try was the lite engine's. A loop "
                                     "not recovered is cut out of the text (one copy kept).")
    attempts: int = Field(1, description="Engine calls made for this page.")
    engine: str = Field(description="The engine whose answer is given: vllm, upstream or lite.")
    resolution: str | None = Field(None, description="The resolution mode of that answer.")
    loop_chars_removed: int = Field(0, description="Characters of repetition cut out of the text.")


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Word(BaseModel):
    """One word of a block's text, in reading order, where it was found on the page."""

    text: str = Field(description="The word as it is in the block's text.")
    box_px: tuple[float, float, float, float] | None = Field(
        None, description="[x1, y1, x2, y2] in page pixels; null where no box was found.")
    confidence: Probability | None = None


class Confidence(BaseModel):
    """How sure the engine was, 0..1: token probabilities (vLLM, upstream) or the lite
    engine's recogniser scores."""

    average: Probability | None = Field(None, description="Geometric mean of the token "
                                        "probabilities (recogniser scores, averaged).")
    minimum: Probability | None = Field(None, description="The least sure token (word).")


class BlockConfidence(Confidence):
    label: Probability | None = Field(None, description="Of the block's label tokens.")


class BlockResult(BaseModel):
    label: str = Field(description="DeepSeek-OCR's block label: title, text, table, image, ...")
    boxes_px: list[tuple[float, float, float, float]] = Field(
        description="[x1, y1, x2, y2] in page pixels (grid value / 999 * page size).")
    text: str
    confidence: BlockConfidence | None = None
    words: list[Word] | None = Field(None, description="The block's words with boxes and "
                                     "confidence, where they were asked for or the engine has them.")


class ImageCrop(BaseModel):
    name: str = Field(description="The reference used in the markdown, e.g. images/1_0.png.")
    box_px: tuple[float, float, float, float]
    image_base64: str = Field(description="The crop as base64 PNG.")


class PageResult(BaseModel):
    index: int = Field(description="Page number in the document, 1-based.")
    width: int
    height: int
    text: str = Field(description="Raw model output for this page.")
    markdown: str
    blocks: list[BlockResult]
    finish_reason: str | None
    usage: Usage
    warning: str | None = Field(None, description="Set when the page hit max_tokens or held a loop.")
    quality: PageQuality | None = Field(None, description="Loops found, tries made, and which engine "
                                        "and mode produced the text.")
    confidence: Confidence | None = None
    images: list[ImageCrop] | None = None
    image_base64: str | None = Field(None, description="The page image as base64 PNG, with "
                                     "`include_page_images`; `width` x `height` pixels.")
