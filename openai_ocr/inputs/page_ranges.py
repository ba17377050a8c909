"""Page selections such as "1-3,7" or "5-" (1-based, inclusive, in the order given), or a list
of page numbers (what Mistral's API sends, once made 1-based)."""

from __future__ import annotations

import re

from openai_ocr.errors import BadRequest, excerpt

_PART_RE = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d+)?\s*)?$")

PageSpec = str | list[int] | None
"""A selection as a request gives it: text ("1-3,7"), page numbers, or None for all."""


def parse_pages(spec: PageSpec, page_count: int) -> list[int]:
    """The selected page numbers (1-based), duplicates removed, order kept.

    `None`, "" and "all" select every page. A page beyond the document is a 400, not a
    silent skip: the caller asked for something that is not there.
    """
    if isinstance(spec, list):
        return _listed(spec, page_count)
    if spec is None or spec.strip().lower() in ("", "all"):
        return list(range(1, page_count + 1))
    pages: list[int] = []
    for part in spec.split(","):
        match = _PART_RE.match(part)
        if match is None:
            raise BadRequest(f"pages: cannot read {excerpt(part.strip())}; use e.g. \"1-3,7\" or \"5-\"",
                             param="pages")
        first = int(match.group(1))
        last = first if match.group(2) is None else int(match.group(3) or page_count)
        if first < 1 or last < first:
            raise BadRequest(f"pages: {excerpt(part.strip())} is not a valid range", param="pages")
        if last > page_count:
            raise BadRequest(f"pages: {excerpt(part.strip())} is beyond the document's {page_count} "
                             "page(s)", param="pages")
        pages.extend(range(first, last + 1))
    return list(dict.fromkeys(pages))


def _listed(numbers: list[int], page_count: int) -> list[int]:
    for number in numbers:
        if not 1 <= number <= page_count:
            raise BadRequest(f"pages: page {excerpt(number, quote=False)} is beyond the document's {page_count} "
                             "page(s)", param="pages")
    return list(dict.fromkeys(numbers))
