"""The one entry point of the archival writers, run in a worker process: page results in,
one file out, written page by page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openai_ocr.ocr.models import PageResult
from openai_ocr.outputs import FORMATS
from openai_ocr.outputs.alto import write_alto
from openai_ocr.outputs.hocr import write_hocr
from openai_ocr.outputs.layout import page_layouts


def write_archive(output: str, pages: list[PageResult], path: str, *, source: bytes, kind: str,
                  name: str, model: str, version: str, dpi: float | None = None) -> dict[str, Any]:
    """Write `pages` (the selected pages of `source`, a `kind` "pdf", "image" or "frames"
    document named `name`) as `output` (pdf, hocr, alto) to `path`; returns what was made
    (`bytes`, and for PDFs `pdfa`)."""
    software = f"openai-ocr {version}"
    made: dict[str, Any] = {"format": output, "pages": len(pages)}
    if output == "pdf":
        from openai_ocr.outputs.pdf import write_pdf

        made.update(write_pdf(page_layouts(pages), [p.index for p in pages], Path(path), source=source,
                              kind=kind, title=name, creator=f"{software} ({model})"))
    elif output in FORMATS:
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            if output == "hocr":
                write_hocr(page_layouts(pages), out, count=len(pages), title=name,
                           system=f"{software} ({model})", image=name, dpi=dpi if kind == "pdf" else None)
            else:
                write_alto(page_layouts(pages), out, source=name, software=software, version=version,
                           model=model)
    else:
        raise ValueError(f"not an archival format: {output}")
    made["bytes"] = os.path.getsize(path)
    return made
