"""The logic of `POST /v1/ocr` (the Mistral OCR shape), shared by the route and batch lines.

A document (`document_url` or `image_url` as `data:` URLs, or an uploaded `file_id`) goes
through the same page pipeline as the legacy routes (markdown mode); pages are numbered from
0, as Mistral does.
"""

from __future__ import annotations

import re

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import decode_base64_payload, is_data_url
from openai_ocr.inputs.page_ranges import PageSpec
from openai_ocr.ocr.models import OCROptions, PageResult
from openai_ocr.protocol.mistral import (
    DocumentURLChunk,
    FileChunk,
    ImageURLChunk,
    MistralDimensions,
    MistralImage,
    MistralOCRRequest,
    MistralOCRResponse,
    MistralPage,
    MistralUsage,
)
from openai_ocr.service.serving import OCRService

_NUMBER_RE = re.compile(r"\d+")


def one_based_pages(pages: list[int] | str | None) -> PageSpec:
    """Mistral's 0-based page selection, 1-based as the page pipeline counts (same form)."""
    if pages is None:
        return None
    if isinstance(pages, list):
        return [p + 1 for p in pages] or None
    if not re.fullmatch(r"[\d\s,\-]*", pages):
        raise BadRequest(f"pages: cannot read {pages!r}", param="pages")
    return _NUMBER_RE.sub(lambda m: str(int(m.group()) + 1), pages) or None


def document_data_url(document: DocumentURLChunk | ImageURLChunk) -> str:
    if isinstance(document, DocumentURLChunk):
        url = document.document_url
    else:
        url = document.image_url if isinstance(document.image_url, str) else document.image_url.url
    if not is_data_url(url):
        raise BadRequest("only data: URLs are accepted; this server does not fetch remote "
                         "documents", param="document")
    return url


def mistral_page(page: PageResult, dpi: int, include_images: bool) -> MistralPage:
    images = [MistralImage(id=crop.name, top_left_x=round(crop.box_px[0]),
                           top_left_y=round(crop.box_px[1]), bottom_right_x=round(crop.box_px[2]),
                           bottom_right_y=round(crop.box_px[3]),
                           image_base64=f"data:image/png;base64,{crop.image_base64}"
                           if include_images else None)
              for crop in page.images or []]
    return MistralPage(index=page.index - 1, markdown=page.markdown, images=images,
                       dimensions=MistralDimensions(dpi=dpi, height=page.height, width=page.width))


async def mistral_ocr(service: OCRService, body: MistralOCRRequest,
                      owner: str | None = None) -> MistralOCRResponse:
    await service.models.check(body.model)
    if isinstance(body.document, FileChunk):
        data = await service.inputs.file_bytes(body.document.file_id, owner, param="document")
    else:
        data = decode_base64_payload(document_data_url(body.document),
                                     max_bytes=service.settings.limits.max_file_bytes, param="document")
    options = OCROptions(output="json", include_images=True, resolution=body.resolution,
                         base_size=body.base_size, image_size=body.image_size,
                         crop_mode=body.crop_mode)
    plan = service.recognizer.plan(options)
    with await service.inputs.open_bytes(data, pages=one_based_pages(body.pages),
                                         param="document") as document:
        dpi = service.settings.documents.dpi if document.kind == "pdf" else 72
        answer = await service.recognizer.recognize(document, options, plan)
    include = bool(body.include_image_base64)
    return MistralOCRResponse(
        pages=[mistral_page(p, dpi, include) for p in answer.pages or []], model=answer.model,
        usage_info=MistralUsage(pages_processed=answer.page_count, doc_size_bytes=len(data)),
        resolution=answer.resolution)
