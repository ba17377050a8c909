"""DeepSeek-OCR in vLLM with per-request resolution modes (Tiny to Gundam).

vLLM 0.32's DeepSeek-OCR processor builds the image for any `base_size`/`image_size`/
`crop_mode` it is given, and its vision encoders read the size from the pixel tensors, but
the placeholder count uses the module constants (Gundam). These subclasses count with the
request's values, so the prompt holds exactly as many `<image>` tokens as the encoders
produce, and they are registered over vLLM's own classes by `register_models` (a
`vllm.general_plugins` entry point, run in every vLLM process before models load).

Also here:
* mixed resolutions in one encoder batch: vLLM stacks `pixel_values` only when every image
  has the same size and passes a list otherwise, which the stock model asserts against;
* encoder CUDA graphs (opt-in in vLLM, GPU only) are switched off for this class: their
  capture buffers and token budgets are built from the Gundam constants;
The API server's gate for per-request kwargs is `openai_ocr.vllm_plugin.mm_kwargs_gate`.

Imports vLLM: loaded only inside vLLM processes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from vllm.model_executor.models.deepseek_ocr import (
    DeepseekOCRDummyInputsBuilder,
    DeepseekOCRForCausalLM,
    DeepseekOCRMultiModalProcessor,
    DeepseekOCRProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.parse import ImageEmbeddingItems, ImageProcessorItems
from vllm.multimodal.processing import PromptReplacement, PromptUpdate

from openai_ocr.ocr.resolution import (
    MODES,
    PATCH_SIZE,
    Family,
    Resolution,
    ResolutionError,
    image_tokens,
    resolve,
    supported,
)

logger = logging.getLogger(__name__)

FAMILY: Family = "deepseek-ocr"
GUNDAM = MODES[FAMILY]["gundam"]
#: sizes a trusted client (`--trust-request-mm-kwargs`) may ask for beyond the five modes
CUSTOM_MIN, CUSTOM_MAX, CUSTOM_STEP = 256, 1280, 64
#: tiles share one flat tensor across an encoder batch: one tile size keeps it rectangular
TILE_SIZE = GUNDAM.image_size
_KEYS = ("resolution", "base_size", "image_size", "crop_mode")


def effective_resolution(kwargs: Mapping[str, object]) -> Resolution:
    """The values one request's (already merged) processor kwargs stand for.

    The five modes and any `resolution` name are resolved; other values reach here only from
    a trusted client and must still be sizes the encoders can take.
    """
    given = {k: kwargs.get(k) for k in _KEYS if kwargs.get(k) is not None}
    if not given:
        return GUNDAM
    name = given.get("resolution")
    try:
        return resolve(FAMILY, str(name) if name is not None else None, given.get("base_size"),  # type: ignore[arg-type]
                       given.get("image_size"), given.get("crop_mode"))[1]  # type: ignore[arg-type]
    except ResolutionError:
        if name is not None:
            raise ValueError(f"resolution {name!r} is unknown; choose one of: {supported(FAMILY)}") from None
    base = int(given.get("base_size", GUNDAM.base_size))  # type: ignore[call-overload]
    tile = int(given.get("image_size", GUNDAM.image_size))  # type: ignore[call-overload]
    crop = bool(given.get("crop_mode", GUNDAM.crop_mode))
    for key, value in (("base_size", base), ("image_size", tile)):
        if not CUSTOM_MIN <= value <= CUSTOM_MAX or value % CUSTOM_STEP:
            raise ValueError(f"{key}={value} cannot be encoded: sizes are multiples of {CUSTOM_STEP} "
                             f"from {CUSTOM_MIN} to {CUSTOM_MAX}; modes: {supported(FAMILY)}")
    if crop and tile != TILE_SIZE:
        raise ValueError(f"crop_mode needs image_size={TILE_SIZE} (the tile size); modes: {supported(FAMILY)}")
    return Resolution(base, tile, crop)


class ResolutionProcessingInfo(DeepseekOCRProcessingInfo):
    """Builds the processor, and counts its tokens, with the request's resolution."""

    def resolution_of(self, kwargs: Mapping[str, object]) -> Resolution:
        return effective_resolution(self.ctx.get_merged_mm_kwargs(kwargs))

    def get_hf_processor(self, **kwargs: object):  # type: ignore[no-untyped-def]
        mode = self.resolution_of(kwargs)
        rest = {k: v for k, v in kwargs.items() if k not in _KEYS}
        return super().get_hf_processor(**rest, base_size=mode.base_size,
                                         image_size=mode.image_size, crop_mode=mode.crop_mode)

    def get_num_image_tokens(self, *, image_width: int, image_height: int,
                             cropping: bool = True, mode: Resolution = GUNDAM) -> int:
        if not cropping:
            mode = Resolution(mode.base_size, mode.image_size, False)
        return image_tokens(FAMILY, mode, image_width, image_height)


class ResolutionMultiModalProcessor(DeepseekOCRMultiModalProcessor):
    """Calls the processor with the request's `crop_mode` and counts placeholders to match."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]):  # type: ignore[no-untyped-def]
        mode = self.info.resolution_of(hf_kwargs)  # type: ignore[attr-defined]
        kwargs = {k: v for k, v in hf_kwargs.items() if k not in _KEYS}
        kwargs.update(base_size=mode.base_size, image_size=mode.image_size, crop_mode=mode.crop_mode)
        return super()._call_hf_processor(hf_data, kwargs)

    def _get_prompt_updates(self, mm_items: Any, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: Any) -> Sequence[PromptUpdate]:
        info: ResolutionProcessingInfo = self.info  # type: ignore[assignment]
        mode = info.resolution_of(hf_processor_mm_kwargs)
        image_token_id = info.get_hf_processor(**hf_processor_mm_kwargs).image_token_id

        def replacement(item_idx: int) -> list[int]:
            images = mm_items.get_items("image", (ImageEmbeddingItems, ImageProcessorItems))
            if isinstance(images, ImageEmbeddingItems):
                count = images.get_feature_size(item_idx)
            else:
                size = images.get_image_size(item_idx)
                count = info.get_num_image_tokens(image_width=size.width, image_height=size.height,
                                                  cropping=mode.crop_mode, mode=mode)
            return [image_token_id] * count

        return [PromptReplacement(modality="image", target=[image_token_id], replacement=replacement)]


@MULTIMODAL_REGISTRY.register_processor(ResolutionMultiModalProcessor, info=ResolutionProcessingInfo,
                                        dummy_inputs=DeepseekOCRDummyInputsBuilder)
class ResolutionDeepseekOCRForCausalLM(DeepseekOCRForCausalLM):
    """vLLM's DeepSeek-OCR with the processor above; no encoder CUDA graphs (see module doc)."""

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        compilation = vllm_config.compilation_config
        if getattr(compilation, "cudagraph_mm_encoder", False):
            # Opt-in in vLLM (`-cc.cudagraph_mm_encoder=true`). The graph manager runs every
            # encoder batch through buffers of BASE_SIZE/IMAGE_SIZE pixels and budgets of
            # Gundam's token counts, which other modes' images do not fit. Read before the
            # model runner builds the manager, after this constructor.
            logger.warning("openai_ocr: encoder CUDA graphs disabled: per-request resolution "
                           "modes need the eager vision encoder (decoder graphs unaffected)")
            compilation.cudagraph_mm_encoder = False

    def embed_multimodal(self, **kwargs: object) -> Any:
        pixel_values = kwargs.get("pixel_values")
        if not isinstance(pixel_values, list | tuple):
            return super().embed_multimodal(**kwargs)
        # Images of different sizes in one batch: encode them one by one.
        spatial = kwargs["images_spatial_crop"]
        if not isinstance(spatial, torch.Tensor):
            spatial = torch.stack(list(spatial))  # type: ignore[arg-type,call-overload]
        spatial = spatial.reshape(-1, 2).to(torch.long)
        tiled = (spatial[:, 0] > 1) | (spatial[:, 1] > 1)
        per_image = torch.where(tiled, spatial.prod(dim=-1), 0).tolist()
        crops = kwargs.get("images_crop")
        if isinstance(crops, torch.Tensor):
            crop_parts = list(crops.split(per_image))
        else:
            crop_parts = list(crops or [])  # type: ignore[call-overload]
        out: list[torch.Tensor] = []
        for index, pixels in enumerate(pixel_values):
            batch = pixels.unsqueeze(0) if pixels.dim() == 3 else pixels
            part = crop_parts[index] if index < len(crop_parts) else batch.new_zeros(
                (0, 3, TILE_SIZE, TILE_SIZE))
            out.extend(self._pixel_values_to_embedding(batch, part, spatial[index:index + 1]))
        return out


assert PATCH_SIZE == 16  # the encoders' patch size, as in vLLM's processor
