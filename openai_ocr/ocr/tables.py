"""Tables between the two forms OCR answers carry: HTML `<table>`s and markdown pipe tables.

DeepSeek-OCR writes a table block as an HTML `<table>` (cells with `colspan`/`rowspan`);
Mistral's OCR API returns tables as markdown or HTML on request (`table_format`). Pure
functions; a table that cannot be read is returned as it came, never dropped.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Literal

TableFormat = Literal["markdown", "html"]

MAX_SPAN = 100
"""Largest `colspan`/`rowspan` honoured; a larger one counts as this (model output is not
trusted to size the grid)."""
MAX_CELLS = 100_000
"""A table whose grid would hold more cells is left as it came."""

_TABLE_RE = re.compile(r"<table\b.*</table\s*>", re.S | re.I)
_SEPARATOR_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_CELL_SPLIT_RE = re.compile(r"(?<!\\)\|")


class _Cell:
    def __init__(self, colspan: int, rowspan: int, header: bool) -> None:
        self.parts: list[str] = []
        self.colspan, self.rowspan, self.header = colspan, rowspan, header

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split()).replace(" <br> ", "<br>").replace("<br> ", "<br>")


def _span(value: str | None) -> int:
    try:
        return max(1, min(MAX_SPAN, int(value or 1)))
    except ValueError:
        return 1


class _TableReader(HTMLParser):
    """Rows of cells of the first `<table>` (a nested table's text joins its cell)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[_Cell]] = []
        self.depth = 0
        self.cell: _Cell | None = None
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag == "table":
            self.depth += 1
        elif self.depth != 1:
            if tag == "br" and self.cell is not None:
                self.cell.parts.append(" <br> ")
        elif tag == "tr":
            self.rows.append([])
            self.cell = None
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            values = dict(attrs)
            self.cell = _Cell(_span(values.get("colspan")), _span(values.get("rowspan")), tag == "th")
            self.rows[-1].append(self.cell)
        elif tag == "br" and self.cell is not None:
            self.cell.parts.append(" <br> ")

    def handle_endtag(self, tag: str) -> None:
        if self.done:
            return
        if tag == "table":
            self.depth -= 1
            self.done = self.depth <= 0
        elif tag in ("td", "th") and self.depth == 1:
            self.cell = None

    def handle_data(self, data: str) -> None:
        if not self.done and self.cell is not None:
            self.cell.parts.append(data)


def html_table_rows(text: str) -> list[list[str]] | None:
    """The grid of the first HTML table in `text`, spans filled (the text in a spanned
    region's first cell, the rest empty); None when there is no table or it is too big."""
    if "<table" not in text.lower():
        return None
    reader = _TableReader()
    reader.feed(text)
    reader.close()
    rows = [row for row in reader.rows if row]
    if not rows:
        return None
    grid: dict[tuple[int, int], str] = {}
    width = 0
    for r, row in enumerate(rows):
        c = 0
        for cell in row:
            while (r, c) in grid:
                c += 1
            if len(grid) + cell.colspan * cell.rowspan > MAX_CELLS:
                return None
            for dr in range(cell.rowspan):
                for dc in range(cell.colspan):
                    grid[(r + dr, c + dc)] = cell.text if (dr, dc) == (0, 0) else ""
            c += cell.colspan
            width = max(width, c)
    height = len(rows)  # a rowspan past the last row adds no row
    if width * height > MAX_CELLS:
        return None
    return [[grid.get((r, c), "") for c in range(width)] for r in range(height)]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def rows_to_markdown(rows: list[list[str]]) -> str:
    """A GitHub pipe table; the first row is its header row."""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(_md_cell(cell) for cell in row + [""] * (width - len(row))) + " |"
             for row in rows]
    lines.insert(1, "| " + " | ".join(["---"] * width) + " |")
    return "\n".join(lines)


def markdown_table_rows(text: str) -> list[list[str]] | None:
    """The rows of a markdown pipe table (its separator line left out), or None when `text`
    is not one: every line a `|` row and the second line the `---` separator."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 2 or not all("|" in line for line in lines) or not _SEPARATOR_RE.match(lines[1]):
        return None
    rows = []
    for line in lines[:1] + lines[2:]:
        inner = line[1:] if line.startswith("|") else line
        inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
        rows.append([cell.strip().replace("\\|", "|").replace("\\\\", "\\")
                     for cell in _CELL_SPLIT_RE.split(inner)])
    return rows


def rows_to_html(rows: list[list[str]]) -> str:
    """An HTML table; the first row's cells are `<th>`s. `<br>` in a cell stays a line break."""
    def cell(tag: str, text: str) -> str:
        return f"<{tag}>" + "<br>".join(html.escape(part, quote=False) for part in text.split("<br>")) + f"</{tag}>"

    head = "<tr>" + "".join(cell("th", c) for c in rows[0]) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows[1:])
    return f"<table>{head}{body}</table>"


def table_as(text: str, table_format: TableFormat) -> str:
    """A table block's text in `table_format`: an HTML table as markdown or the other way
    round; text that is neither (or cannot be converted) is returned stripped, as it came."""
    text = text.strip()
    if table_format == "html":
        if (match := _TABLE_RE.search(text)) is not None:
            return match.group(0)
        rows = markdown_table_rows(text)
        return rows_to_html(rows) if rows else text
    rows = html_table_rows(text)
    return rows_to_markdown(rows) if rows else text
