"""A block's words, and where they are on the page: the block's text aligned to the words a
line reader found inside the block's box.

The words of a block are its text cut at whitespace (a table's HTML also at its tags), so
they join again, with single spaces or the text's line breaks, to the text. The words the
lite engine's detector and reader found (`FoundWord`: text, pixel box, score) rarely read
exactly as the model's: the two word lists are aligned, normalised (Unicode NFKC, case
folded, only letters and digits compared), by `difflib.SequenceMatcher` (no junk
heuristic), and then:

- equal words: the found word's box and score;
- a stretch read differently (a replaced stretch): as many words on both sides are paired
  one to one; otherwise the stretch is aligned again character by character (difflib,
  lower case), and each model word takes the parts of the found words its characters
  matched, the box cut by character proportions within a found word (interpolated: a word
  the reader split or joined, "e-mail" against "e-" "mail"), when at least half of its
  characters matched (on one line; across a line break the larger part);
- model words the reader did not see at all get no box (`null`): boxes are never invented
  where nothing was found; found words the model did not write are dropped.

Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]

_WORD = re.compile(r"\S+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")

MAX_SHARED_CELLS = 4_000_000
"""A differing stretch is aligned character by character up to this many character pairs
(about 2,000 characters a side); a longer one gets no boxes."""


@dataclass(frozen=True)
class FoundWord:
    """A word a line reader found: its text, its box in page pixels, its score (0..1)."""

    text: str
    box: Box
    confidence: float | None = None


def word_spans(text: str, *, table: bool = False) -> list[tuple[int, int]]:
    """`[start, end)` of each word of a block's text."""
    if not table:
        return [m.span() for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    at = 0
    for tag in [*_HTML_TAG.finditer(text), None]:
        upto = len(text) if tag is None else tag.start()
        spans += [m.span() for m in _WORD.finditer(text, at, upto)]
        at = upto if tag is None else tag.end()
    return spans


def normalised(word: str) -> str:
    folded = unicodedata.normalize("NFKC", word).casefold()
    kept = "".join(ch for ch in folded if ch.isalnum())
    return kept or folded


def inside(box: Box, blocks: Sequence[Box]) -> bool:
    """Whether a word's centre lies in one of a block's boxes, grown by half the word's
    height (model boxes are on a 0..999 grid and drawn loosely)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    grow = max(2.0, (box[3] - box[1]) / 2)
    return any(x1 - grow <= cx <= x2 + grow and y1 - grow <= cy <= y2 + grow for x1, y1, x2, y2 in blocks)


Placed = tuple[Box | None, float | None]


def align_words(texts: Sequence[str], found: Sequence[FoundWord]) -> list[Placed]:
    """(box, score) for each of `texts` (a block's words, in order) from the found words
    (in reading order); (None, None) where no box can be given."""
    out: list[Placed] = [(None, None)] * len(texts)
    if not texts or not found:
        return out
    matcher = difflib.SequenceMatcher(None, [normalised(t) for t in texts],
                                      [normalised(f.text) for f in found], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out[i1:i2] = [(f.box, f.confidence) for f in found[j1:j2]]
        elif tag == "replace":
            out[i1:i2] = shared(texts[i1:i2], found[j1:j2])
    return out


def shared(texts: Sequence[str], found: Sequence[FoundWord]) -> list[Placed]:
    """Boxes for a stretch of model words read differently by the reader (see the module)."""
    if len(texts) == len(found):
        return [(f.box, f.confidence) for f in found]
    model, model_word = _chars([len(t) for t in texts], " ".join(texts))
    reader, reader_word = _chars([len(f.text) for f in found], " ".join(f.text for f in found))
    if len(model) * len(reader) > MAX_SHARED_CELLS:
        return [(None, None)] * len(texts)
    hits: list[dict[int, list[int]]] = [{} for _ in texts]  # model word -> found word -> offsets
    matcher = difflib.SequenceMatcher(None, model, reader, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            mine, theirs = model_word[a + k], reader_word[b + k]
            if mine is not None and theirs is not None:
                hits[mine[0]].setdefault(theirs[0], []).append(theirs[1])
    out: list[Placed] = []
    for text, parts in zip(texts, hits, strict=True):
        if sum(len(offsets) for offsets in parts.values()) * 2 < len(text):
            out.append((None, None))  # less than half of it matched: not the same word
            continue
        pieces = [(found[j], _part(found[j].box, min(offsets) / len(found[j].text),
                                   (max(offsets) + 1) / len(found[j].text))) for j, offsets in sorted(parts.items())]
        row = [p for p in pieces if _same_row(p[1], pieces[0][1])]
        if len(row) < len(pieces):  # across a line break: the larger part alone
            row = [max(pieces, key=lambda p: p[1][2] - p[1][0])]
        boxes = [box for _, box in row]
        scores = [w.confidence for w, _ in row if w.confidence is not None]
        out.append(((min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes)), min(scores) if scores else None))
    return out


def _chars(lengths: Sequence[int], joined: str) -> tuple[list[str], list[tuple[int, int] | None]]:
    """The characters of words joined by spaces, lower-cased one by one, and for each its
    (word, offset in the word); None for the spaces."""
    owners: list[tuple[int, int] | None] = []
    for index, length in enumerate(lengths):
        if index:
            owners.append(None)
        owners += [(index, offset) for offset in range(length)]
    chars = [c.lower() if len(c.lower()) == 1 else c for c in joined]
    return chars, owners


def _part(box: Box, left: float, right: float) -> Box:
    """The horizontal slice `left..right` (fractions of its width) of a word's box."""
    x1, y1, x2, y2 = box
    return (x1 + (x2 - x1) * left, y1, x1 + (x2 - x1) * right, y2)


def _same_row(a: Box, b: Box) -> bool:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap > 0.5 * min(a[3] - a[1], b[3] - b[1])


def split_line(text: str, box: Box, score: float | None) -> list[FoundWord]:
    """A line read as a whole (PP-OCR gives a line score only): its words, the line's box
    split by character proportions, each with the line's score."""
    length = max(len(text), 1)
    x1, y1, x2, y2 = box
    return [FoundWord(text[a:b], (x1 + (x2 - x1) * a / length, y1, x1 + (x2 - x1) * b / length, y2), score)
            for a, b in word_spans(text)]
