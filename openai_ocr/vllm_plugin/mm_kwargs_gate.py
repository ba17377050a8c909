"""The API server's gate for per-request `mm_processor_kwargs`: the resolution modes pass.

vLLM refuses every per-request `mm_processor_kwargs` unless the server runs with
`--trust-request-mm-kwargs`, since arbitrary sizes change the memory and compute an image
costs. The five DeepSeek-OCR modes (or DeepSeek-OCR-2's one) are safe: this gate wraps vLLM's
check (`vllm.renderers.online_renderer.validate_request_mm_kwargs`, the one chat and
completion requests go through) so any client may send them; other kwargs still need the
flag. Installed by the endpoint plugin in each API server process.
"""

from __future__ import annotations

import logging
from typing import Any

from openai_ocr.ocr.resolution import Family, ResolutionError, resolve_mm_kwargs

logger = logging.getLogger(__name__)

_family: dict[str, Family] = {"name": "deepseek-ocr"}


def set_served_family(family: Family) -> None:
    """Which family's modes the gate accepts (set when the plugin binds to the engine)."""
    _family["name"] = family


def install_mm_kwargs_gate() -> None:
    """Let the five modes through vLLM's `validate_request_mm_kwargs`, untrusted clients too.

    Valid kwargs are rewritten in place to the mode's three values (a `resolution` name
    included), so vLLM's stock processors understand them; anything else without
    `--trust-request-mm-kwargs` is a 400 listing the modes.
    """
    from vllm.exceptions import VLLMValidationError
    from vllm.renderers import online_renderer

    original = online_renderer.validate_request_mm_kwargs
    if getattr(original, "openai_ocr_gate", False):
        return

    def validate_request_mm_kwargs(*, mm_processor_kwargs: dict[str, Any] | None,
                                   media_io_kwargs: dict[str, dict[str, Any]] | None,
                                   trust_request_mm_kwargs: bool) -> None:
        if mm_processor_kwargs:
            try:
                chosen = resolve_mm_kwargs(_family["name"], mm_processor_kwargs)
            except ResolutionError as exc:
                if not trust_request_mm_kwargs:
                    raise VLLMValidationError(
                        f"{exc}. Other mm_processor_kwargs need a server started with "
                        "--trust-request-mm-kwargs.", parameter="mm_processor_kwargs") from None
            else:
                if chosen is not None:
                    mm_processor_kwargs.clear()
                    mm_processor_kwargs.update(chosen[1].mm_processor_kwargs())
                    mm_processor_kwargs = None  # checked: nothing left for vLLM's own gate
        original(mm_processor_kwargs=mm_processor_kwargs, media_io_kwargs=media_io_kwargs,
                 trust_request_mm_kwargs=trust_request_mm_kwargs)

    validate_request_mm_kwargs.openai_ocr_gate = True  # type: ignore[attr-defined]
    online_renderer.validate_request_mm_kwargs = validate_request_mm_kwargs
    logger.info("openai_ocr: per-request resolution modes accepted in mm_processor_kwargs")
