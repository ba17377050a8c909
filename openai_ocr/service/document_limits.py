"""How much one document may cost: an interactive request's limits, or a batch line's.

A client waits on an interactive request, so it reads at most `limits.max_pages` pages
within `limits.request_timeout_s`. Nobody waits on a Batch API line: it may read a whole
long document (`batches.max_document_pages`, `..._pixels`, `..._bytes`) until its batch's
window closes. The batch runner opens a line's scope (`batch_line_scope`, a context
variable), so the code of every route below it (`/ocr`, `/v1/ocr`, chat) opens documents
under the batch limits without a parameter passed through each call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from openai_ocr.service.budget import INTERACTIVE, Priority
from openai_ocr.settings import Settings


@dataclass(frozen=True)
class DocumentLimits:
    max_pages: int
    """Pages one document may select."""
    max_pixels: int
    """Decoded pixels of all its selected pages."""
    max_bytes: int
    """Size of the document (an uploaded file, or one decoded from base64)."""
    timeout_s: float
    """Time to read it, from when it starts."""
    priority: Priority = INTERACTIVE
    """Its pages' place in the queue for the pixel/page budget (`CostBudget`)."""
    budget_wait_s: float | None = None
    """How long a page may wait for the budget before a 429 (None: `budget.max_wait_s`)."""


_SCOPE: ContextVar[DocumentLimits | None] = ContextVar("document_limits", default=None)


def interactive_limits(settings: Settings) -> DocumentLimits:
    return DocumentLimits(max_pages=settings.limits.max_pages,
                          max_pixels=settings.budget.max_request_pixels,
                          max_bytes=settings.limits.max_file_bytes,
                          timeout_s=settings.limits.request_timeout_s)


def batch_line_limits(settings: Settings, time_left_s: float, order: Priority = ()) -> DocumentLimits:
    """Never below the interactive limits: a setting made smaller than those is ignored.
    `order`: the line's place among batch lines (its pages queue behind interactive pages and
    earlier lines'); its pages wait for the budget as long as the line may take."""
    batch, interactive = settings.batches, interactive_limits(settings)
    timeout = max(time_left_s, interactive.timeout_s)
    return DocumentLimits(max_pages=max(batch.max_document_pages, interactive.max_pages),
                          max_pixels=max(batch.max_document_pixels, interactive.max_pixels),
                          max_bytes=max(batch.max_document_bytes, interactive.max_bytes),
                          timeout_s=timeout, priority=(1.0, *order), budget_wait_s=timeout)


def current_limits(settings: Settings) -> DocumentLimits:
    """The limits of the document being opened now: a batch line's inside its scope."""
    return _SCOPE.get() or interactive_limits(settings)


@contextlib.contextmanager
def limits_scope(limits: DocumentLimits) -> Iterator[DocumentLimits]:
    """Documents opened inside the block (tasks it starts included) get these limits."""
    token = _SCOPE.set(limits)
    try:
        yield limits
    finally:
        _SCOPE.reset(token)


def batch_line_scope(settings: Settings, time_left_s: float,
                     order: Priority = ()) -> contextlib.AbstractContextManager[DocumentLimits]:
    """A batch line's limits for the block; `time_left_s`: until its batch's window closes;
    `order`: (the batch's creation time, the line's index)."""
    return limits_scope(batch_line_limits(settings, time_left_s, order))
