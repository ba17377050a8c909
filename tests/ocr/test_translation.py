import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.translation import (
    apply_chat_defaults,
    build_chat_request,
    chunk_delta,
    completion_result,
    plan_request,
)
from openai_ocr.settings import NgramGuardSettings, OCRSettings

IMAGE = ImageInput(data=b"\x89PNG-bytes", mime="image/png", width=10, height=10)
GUARD = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}


def test_default_request_follows_the_recipe() -> None:
    plan = plan_request(OCROptions(), OCRSettings())
    body = build_chat_request("deepseek-ai/DeepSeek-OCR", IMAGE, plan, stream=False)
    assert body == {
        "model": "deepseek-ai/DeepSeek-OCR",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORy1ieXRlcw=="}},
            {"type": "text", "text": "<|grounding|>Convert the document to markdown."},
        ]}],
        "temperature": 0.0,
        "max_tokens": 8192,
        "skip_special_tokens": False,
        "stream": False,
        "vllm_xargs": GUARD,
    }


def test_xargs_are_integers() -> None:
    plan = plan_request(OCROptions(ngram_size=20, window_size=50), OCRSettings())
    assert plan.vllm_xargs == {"ngram_size": 20, "window_size": 50, "whitelist_token_ids": [128821, 128822]}
    assert all(type(v) is int for v in plan.vllm_xargs.values() if not isinstance(v, list))


def test_guard_can_be_disabled_in_config() -> None:
    config = OCRSettings(ngram_guard=NgramGuardSettings(enabled=False))
    plan = plan_request(OCROptions(mode="free_ocr"), config)
    body = build_chat_request("m", IMAGE, plan, stream=False)
    assert "vllm_xargs" not in body


def test_configured_guard_values_are_sent() -> None:
    config = OCRSettings(ngram_guard=NgramGuardSettings(ngram_size=20, window_size=50,
                                                        whitelist_token_ids=[7]))
    assert plan_request(OCROptions(), config).vllm_xargs == {
        "ngram_size": 20, "window_size": 50, "whitelist_token_ids": [7]}


def test_stream_request_asks_for_usage() -> None:
    plan = plan_request(OCROptions(mode="free_ocr"), OCRSettings())
    body = build_chat_request("m", IMAGE, plan, stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_prompt_placeholder_is_not_duplicated() -> None:
    plan = plan_request(OCROptions(prompt="<image>\nFree OCR."), OCRSettings())
    body = build_chat_request("m", IMAGE, plan, stream=False)
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "Free OCR."}


def test_max_tokens_over_cap_is_rejected() -> None:
    with pytest.raises(BadRequest, match="max_tokens"):
        plan_request(OCROptions(max_tokens=9000), OCRSettings())
    assert plan_request(OCROptions(max_tokens=100), OCRSettings()).max_tokens == 100


def test_explicit_sampling_values_are_kept() -> None:
    plan = plan_request(OCROptions(temperature=0.3, max_tokens=17), OCRSettings())
    assert (plan.temperature, plan.max_tokens) == (0.3, 17)


def test_unknown_mode_is_bad_request() -> None:
    with pytest.raises(BadRequest) as err:
        plan_request(OCROptions.model_construct(mode="nope"), OCRSettings())
    assert err.value.status_code == 400


def test_chat_defaults_fill_only_missing_fields() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "temperature": 0.5}
    out = apply_chat_defaults(body, OCRSettings(), "served")
    assert out == {"messages": body["messages"], "model": "served", "temperature": 0.5,
                   "skip_special_tokens": False, "vllm_xargs": GUARD, "max_tokens": 8192}
    kept = apply_chat_defaults({**body, "vllm_xargs": {"ngram_size": 5}, "max_tokens": 3,
                                "skip_special_tokens": True}, OCRSettings(), "served")
    assert kept["vllm_xargs"] == {"ngram_size": 5} and kept["max_tokens"] == 3
    assert kept["skip_special_tokens"] is True


def test_chat_defaults_reject_max_tokens_over_cap() -> None:
    with pytest.raises(BadRequest):
        apply_chat_defaults({"messages": [], "max_completion_tokens": 10**6}, OCRSettings(), "m")


def test_completion_and_chunk_extraction() -> None:
    completion = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": "a\nb"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
    result = completion_result(completion)
    assert (result.text, result.finish_reason, result.usage.total_tokens) == ("a\nb", "length", 7)
    chunk = ChatCompletionChunk.model_validate({
        "id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "\n"}, "finish_reason": None}]})
    assert chunk_delta(chunk) == ("\n", None)
