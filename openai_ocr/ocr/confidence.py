"""How sure the engine was of each block, page and word: token log-probabilities (vLLM and
upstream engines) or the lite engine's recogniser scores, turned into 0..1 figures.

The model engines are asked for `logprobs` (`SamplingPlan.logprobs`): vLLM answers
`choices[0].logprobs.content[]`, one entry per generated token with its text and
log-probability. With `skip_special_tokens: false` the tokens' texts concatenate to the
answer (grounding tags included), so each token is given the character span it wrote
(`TokenScores.align`); an answer that differs (a server that decodes a token split inside a
multi-byte character as U+FFFD, or a stop token that is not in the text) is resynchronised
at the next token found in the text, and what lies between goes to the tokens in between.
A block's figures then come from the tokens that wrote its text (its words' characters: not
the whitespace, not grounding tags), its `label` from those of its label:

- `average`: the geometric mean of those tokens' probabilities (exp of the mean log-prob);
- `minimum`: the least sure of them;
- a word: the least sure token that wrote any of its characters;
- a page: `average` and `minimum` over the tokens of all its blocks' text.

The lite engine has no token probabilities: its words carry Tesseract's word confidence or
PP-OCR's line score (`ocr.words.FoundWord`); a block's `average` is then the arithmetic
mean of its words' scores and `minimum` the least. Pure: no I/O.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openai_ocr.ocr.grounding import Block, clean_offsets
from openai_ocr.ocr.models import BlockConfidence, Confidence, Word
from openai_ocr.ocr.words import Box, FoundWord, align_words, inside, word_spans

LOGPROB_FLOOR = -9999.0
"""vLLM's floor for a log-probability; what a missing or non-finite one becomes."""
RESYNC_CHARS = 64
"""How far ahead a token that does not follow on is looked for in the text."""


def probability(logprob: float) -> float:
    return min(1.0, max(0.0, math.exp(logprob)))


@dataclass(frozen=True)
class TokenScores:
    """Token log-probabilities aligned to an answer's text: token i wrote
    `text[starts[i]:ends[i]]` (spans never go back; a token of no characters of its own, such
    as a piece of a multi-byte character, shares the span of the token that completes it)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    logprobs: tuple[float, ...]
    #: the tokens' texts concatenate exactly to the answer
    exact: bool = True

    def __len__(self) -> int:
        return len(self.logprobs)

    @classmethod
    def align(cls, text: str, tokens: Iterable[tuple[str, float]]) -> TokenScores:
        """Each (token text, log-prob) given the span of `text` it wrote, in order."""
        starts: list[int] = []
        ends: list[int] = []
        logprobs: list[float] = []
        pending: list[int] = []  # tokens not yet placed: they get what lies before the next one
        cursor, exact = 0, True

        def place(upto: int) -> None:
            for index in pending:
                starts[index], ends[index] = cursor, upto
            pending.clear()

        for token, logprob in tokens:
            index = len(logprobs)
            starts.append(cursor)
            ends.append(cursor)
            logprobs.append(logprob if math.isfinite(logprob) else LOGPROB_FLOOR)
            if not token:  # a piece of a character: its text comes with the next token
                pending.append(index)
                continue
            at = cursor if text.startswith(token, cursor) else -1
            if at < 0 and "\ufffd" not in token:
                exact = False
                at = text.find(token, cursor, cursor + RESYNC_CHARS + len(token))
            if at < 0:
                exact = False
                pending.append(index)
                continue
            if at > cursor:
                place(at)
                cursor = at
            pending.append(index)
            place(at + len(token))
            cursor = at + len(token)
        place(len(text))
        return cls(tuple(starts), tuple(ends), tuple(logprobs), exact and cursor == len(text))

    def without(self, start: int, end: int) -> TokenScores:
        """The scores of the text with `[start, end)` cut out (a repetition loop): tokens
        inside it go, later ones move back."""
        cut = end - start
        if cut <= 0:
            return self
        starts: list[int] = []
        ends: list[int] = []
        logprobs: list[float] = []
        for a, b, logprob in zip(self.starts, self.ends, self.logprobs, strict=True):
            if a >= start and b <= end and b > a:
                continue
            starts.append(a if a <= start else max(start, a - cut))
            ends.append(b if b <= start else max(start, b - cut))
            logprobs.append(logprob)
        return TokenScores(tuple(starts), tuple(ends), tuple(logprobs), False)

    def covering(self, start: int, end: int) -> range:
        """Indices of the tokens that wrote any of `[start, end)`."""
        return range(bisect.bisect_right(self.ends, start), bisect.bisect_left(self.starts, end))


def token_pairs(entries: object) -> list[tuple[str, float]]:
    """(token, logprob) of an OpenAI `logprobs.content` list, as objects or dicts."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return []
    pairs: list[tuple[str, float]] = []
    for entry in entries:
        token = _get(entry, "token")
        logprob = _get(entry, "logprob")
        if not isinstance(token, str):
            token = ""
        if isinstance(logprob, bool) or not isinstance(logprob, int | float):
            logprob = LOGPROB_FLOOR
        pairs.append((token, float(logprob)))
    return pairs


def _get(obj: object, name: str) -> object:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def of_logprobs(logprobs: Sequence[float]) -> tuple[float, float] | None:
    """(geometric-mean probability, least probability) of some tokens; None for none."""
    if not logprobs:
        return None
    return probability(statistics.fmean(logprobs)), probability(min(logprobs))


def of_scores(scores: Sequence[float]) -> tuple[float, float] | None:
    """(mean, least) of recogniser scores; None for none."""
    if not scores:
        return None
    return min(1.0, max(0.0, statistics.fmean(scores))), min(1.0, max(0.0, min(scores)))


@dataclass(frozen=True)
class ScoredBlock:
    confidence: BlockConfidence | None
    words: list[Word] | None


@dataclass(frozen=True)
class ScoredPage:
    blocks: list[ScoredBlock]
    confidence: Confidence | None


def score_page(text: str, blocks: Sequence[Block], width: int, height: int, *,
               tokens: TokenScores | None, found: Sequence[FoundWord] | None,
               words: bool) -> ScoredPage:
    """Each block's confidence and (with `words`, or where the engine found words) its words,
    and the page's confidence. `text` is the answer the blocks were parsed from, `tokens`
    its token scores (model engines), `found` the words a line reader found on the page
    (the lite engine's own, or read for word boxes), in its reading order."""
    scored: list[ScoredBlock] = []
    page_tokens: set[int] = set()
    page_scores: list[float] = []
    for block in blocks:
        clean, offsets = clean_offsets(text, *block.span)
        if clean != block.text:  # not the parse this text gives: nothing to say about it
            scored.append(ScoredBlock(None, None))
            continue
        spans = word_spans(block.text, table=block.label == "table")
        boxes: list[tuple[Box | None, float | None]] = [(None, None)] * len(spans)
        if found is not None:
            pixels = block.boxes_px(width, height)
            candidates = [w for w in found if not pixels or inside(w.box, pixels)]
            boxes = align_words([block.text[a:b] for a, b in spans], candidates)
        block_words: list[Word] = []
        confidence: BlockConfidence | None = None
        if tokens is not None:
            content: set[int] = set()
            for (a, b), (box, _) in zip(spans, boxes, strict=True):
                covering = _covering(tokens, offsets, a, b)
                content.update(covering)
                least = of_logprobs([tokens.logprobs[i] for i in covering])
                block_words.append(Word(text=block.text[a:b], box_px=box,
                                        confidence=None if least is None else least[1]))
            page_tokens.update(content)
            figures = of_logprobs([tokens.logprobs[i] for i in sorted(content)])
            label = of_logprobs([tokens.logprobs[i] for i in tokens.covering(*block.label_span)])
            if figures is not None or label is not None:
                confidence = BlockConfidence(average=figures[0] if figures else None,
                                             minimum=figures[1] if figures else None,
                                             label=label[0] if label else None)
        elif found is not None:
            block_words = [Word(text=block.text[a:b], box_px=box, confidence=score)
                           for (a, b), (box, score) in zip(spans, boxes, strict=True)]
            scores = [w.confidence for w in block_words if w.confidence is not None]
            page_scores += scores
            figures = of_scores(scores)
            if figures is not None:
                confidence = BlockConfidence(average=figures[0], minimum=figures[1])
        keep_words = found is not None or (tokens is not None and words)
        scored.append(ScoredBlock(confidence, block_words if keep_words else None))
    page: tuple[float, float] | None = None
    if tokens is not None:
        page = of_logprobs([tokens.logprobs[i] for i in sorted(page_tokens)])
    elif found is not None:
        page = of_scores(page_scores)
    return ScoredPage(scored, None if page is None else Confidence(average=page[0], minimum=page[1]))


def _covering(tokens: TokenScores, offsets: Sequence[int], start: int, end: int) -> list[int]:
    """The tokens that wrote characters `start..end` of a block's clean text, whose raw
    offsets are `offsets` (consecutive unless a tag was taken out between them)."""
    found: set[int] = set()
    run_start = previous = offsets[start]
    for raw in offsets[start + 1:end]:
        if raw != previous + 1:
            found.update(tokens.covering(run_start, previous + 1))
            run_start = raw
        previous = raw
    found.update(tokens.covering(run_start, previous + 1))
    return sorted(found)
