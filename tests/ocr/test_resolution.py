"""Resolution modes: validation, the token formula, and how requests carry them."""

import pytest

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.resolution import (
    MODES,
    Resolution,
    ResolutionError,
    family_of,
    image_tokens,
    resolve,
    resolve_mm_kwargs,
    tile_grid,
)
from openai_ocr.ocr.translation import apply_chat_defaults, build_chat_request, plan_request
from openai_ocr.settings import OCRSettings

V1, V2 = "deepseek-ocr", "deepseek-ocr-2"
IMAGE = ImageInput(data=b"x", mime="image/png", width=10, height=10)


@pytest.mark.parametrize(("mode", "tokens"), [("tiny", 73), ("small", 111), ("base", 273), ("large", 421)])
def test_untiled_modes_do_not_depend_on_the_image(mode: str, tokens: int) -> None:
    for size in ((100, 100), (1190, 1684), (4000, 500)):
        assert image_tokens(V1, MODES[V1][mode], *size) == tokens


@pytest.mark.parametrize(("size", "grid", "tokens"), [
    ((640, 640), None, 273),            # fits one tile: the global view only
    ((800, 1100), (2, 3), 903),         # FACTS.md: an A4-shaped page
    ((1190, 1684), (2, 3), 903),
    ((1600, 600), (3, 1), 273 + 10 * 31),
    ((2000, 2000), (2, 2), 273 + 20 * 21),
])
def test_gundam_tiles(size: tuple[int, int], grid: tuple[int, int] | None, tokens: int) -> None:
    if grid:
        assert tile_grid(*size, 640) == grid
    assert image_tokens(V1, MODES[V1]["gundam"], *size) == tokens


def test_ocr2_has_no_newline_tokens() -> None:
    mode = MODES[V2]["gundam"]
    assert image_tokens(V2, mode, 700, 700) == 16 * 16 + 1
    assert image_tokens(V2, mode, 1190, 1684) == 257 + 6 * 12 * 12


def test_resolve_by_name_raw_values_and_default() -> None:
    assert resolve(V1) == ("gundam", MODES[V1]["gundam"])
    assert resolve(V1, default="small")[0] == "small"
    assert resolve(V1, "large") == ("large", Resolution(1280, 1280, False))
    assert resolve(V1, base_size=512)[0] == "tiny"
    assert resolve(V1, base_size=1024)[0] == "gundam"    # the default wins a tie
    assert resolve(V1, base_size=1024, crop_mode=False)[0] == "base"
    assert resolve(V1, "tiny", base_size=512, image_size=512, crop_mode=False)[0] == "tiny"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"resolution": "huge"}, "resolution"),
    ({"base_size": 777}, "base_size"),
    ({"resolution": "tiny", "base_size": 640}, "base_size"),
    ({"crop_mode": False}, "crop_mode"),                 # four modes match: ambiguous
    ({"base_size": 1024, "image_size": 768, "crop_mode": True}, "base_size"),
])
def test_resolve_refuses_and_lists_the_modes(kwargs: dict, param: str) -> None:
    with pytest.raises(ResolutionError) as err:
        resolve(V1, **kwargs)
    assert err.value.param == param


def test_ocr2_supports_only_its_own_mode() -> None:
    assert resolve(V2) == ("gundam", Resolution(1024, 768, True))
    assert resolve(V2, default="tiny")[0] == "gundam"
    with pytest.raises(ResolutionError, match="768"):
        resolve(V2, "tiny")
    with pytest.raises(ResolutionError, match="768"):
        resolve(V2, base_size=1024, image_size=640, crop_mode=True)


def test_mm_processor_kwargs_validation() -> None:
    assert resolve_mm_kwargs(V1, None) is None
    assert resolve_mm_kwargs(V1, {"resolution": "small"})[0] == "small"
    assert resolve_mm_kwargs(V1, {"base_size": 1280, "image_size": 1280, "crop_mode": False})[0] == "large"
    for bad in ({"num_crops": 2}, {"base_size": "512"}, {"base_size": True}, {"crop_mode": "yes"},
                {"resolution": 3}, {"base_size": 2048, "image_size": 2048, "crop_mode": False}):
        with pytest.raises(ResolutionError) as err:
            resolve_mm_kwargs(V1, bad)
        assert err.value.param == "mm_processor_kwargs"


def test_family_by_architecture_then_name() -> None:
    assert family_of("anything", ["DeepseekOCR2ForCausalLM"]) == V2
    assert family_of("my-ocr-2-copy", ["DeepseekOCRForCausalLM"]) == V1
    assert family_of("deepseek-ai/DeepSeek-OCR-2") == V2
    assert family_of("deepseek-ai/DeepSeek-OCR") == V1


def test_plan_puts_non_default_modes_into_mm_processor_kwargs() -> None:
    plan = plan_request(OCROptions(resolution="tiny"), OCRSettings())
    body = build_chat_request("m", IMAGE, plan, stream=False)
    assert plan.resolution == "tiny"
    assert body["mm_processor_kwargs"] == {"base_size": 512, "image_size": 512, "crop_mode": False}
    # Gundam is vLLM's built-in: nothing sent, so a plain vLLM server takes the request
    default = plan_request(OCROptions(), OCRSettings())
    assert default.resolution == "gundam"
    assert "mm_processor_kwargs" not in build_chat_request("m", IMAGE, default, stream=False)
    configured = plan_request(OCROptions(), OCRSettings(resolution="base"))
    assert configured.mm_processor_kwargs == {"base_size": 1024, "image_size": 1024, "crop_mode": False}


def test_plan_answers_400_naming_the_modes() -> None:
    with pytest.raises(BadRequest) as err:
        plan_request(OCROptions(resolution="huge"), OCRSettings())
    assert err.value.param == "resolution" and "tiny" in err.value.message and "gundam" in err.value.message
    with pytest.raises(BadRequest) as err:
        plan_request(OCROptions(base_size=0), OCRSettings())
    assert err.value.param == "base_size"
    with pytest.raises(BadRequest, match="768"):
        plan_request(OCROptions(resolution="small"), OCRSettings(), family=V2)


def test_ocr2_accepts_its_two_official_prompts_only() -> None:
    assert plan_request(OCROptions(mode="free_ocr"), OCRSettings(), family=V2).prompt == "Free OCR."
    assert plan_request(OCROptions(), OCRSettings(), family=V2).prompt.startswith("<|grounding|>Convert")
    with pytest.raises(BadRequest) as err:
        plan_request(OCROptions(mode="describe"), OCRSettings(), family=V2)
    assert err.value.param == "mode" and "free_ocr" in err.value.message and "markdown" in err.value.message


def test_chat_defaults_validate_and_normalise_mm_processor_kwargs() -> None:
    out = apply_chat_defaults({"messages": [], "mm_processor_kwargs": {"resolution": "large"}},
                              OCRSettings(), "m")
    assert out["mm_processor_kwargs"] == {"base_size": 1280, "image_size": 1280, "crop_mode": False}
    gundam = apply_chat_defaults({"messages": [], "mm_processor_kwargs": {"resolution": "gundam"}},
                                 OCRSettings(), "m")
    assert "mm_processor_kwargs" not in gundam
    assert apply_chat_defaults({"messages": []}, OCRSettings(resolution="tiny"), "m")[
        "mm_processor_kwargs"]["base_size"] == 512
    with pytest.raises(BadRequest) as err:
        apply_chat_defaults({"messages": [], "mm_processor_kwargs": {"image_size": 300}}, OCRSettings(), "m")
    assert err.value.param == "mm_processor_kwargs" and "gundam" in err.value.message
