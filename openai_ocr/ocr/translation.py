"""Pure translation between legacy OCR requests and OpenAI chat-completion requests.

The chat request follows DeepSeek-OCR's vLLM recipe exactly: the image as an
`image_url` part (a data URL) before the prompt text, greedy decoding,
`skip_special_tokens: false` so grounding tags survive, and the n-gram repetition guard
passed to vLLM's `NGramPerReqLogitsProcessor` as integer `vllm_xargs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.errors import BadRequest, excerpt
from openai_ocr.inputs.documents import ImageInput
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.prompts import PromptError, build_prompt
from openai_ocr.ocr.resolution import (
    DEFAULT_RESOLUTION,
    Family,
    Resolution,
    ResolutionError,
    resolve,
    resolve_mm_kwargs,
)
from openai_ocr.settings import NgramGuardSettings, OCRSettings


@dataclass(frozen=True)
class SamplingPlan:
    """Everything besides the image that goes into one chat request."""

    prompt: str
    temperature: float
    max_tokens: int
    vllm_xargs: dict[str, Any] | None
    skip_special_tokens: bool
    resolution: str = DEFAULT_RESOLUTION
    mm_processor_kwargs: dict[str, Any] | None = None
    #: the client chose max_tokens (a cut answer is then what it asked for, not a failure)
    max_tokens_given: bool = False


@dataclass(frozen=True)
class CompletionResult:
    text: str
    finish_reason: str | None
    usage: Usage
    model: str


def mode_kwargs(name: str, mode: Resolution) -> dict[str, Any] | None:
    """`mm_processor_kwargs` for a mode; None for the model's built-in one (Gundam), so a
    plain vLLM server (no plugin, no `--trust-request-mm-kwargs`) still takes the request."""
    return None if name == DEFAULT_RESOLUTION else mode.mm_processor_kwargs()


def plan_resolution(options: OCROptions, config: OCRSettings, family: Family) -> tuple[str, Resolution]:
    """The request's resolution mode, validated for the served model's family (400 otherwise)."""
    try:
        return resolve(family, options.resolution, options.base_size, options.image_size,
                       options.crop_mode, default=config.resolution)
    except ResolutionError as exc:
        raise BadRequest(str(exc), param=exc.param) from None


def plan_request(options: OCROptions, config: OCRSettings, family: Family = "deepseek-ocr",
                 max_prompt_chars: int | None = None) -> SamplingPlan:
    """Resolve a request's options against the configured defaults and limits.

    `prompt` and `ref` are length-checked first: everything after works on them.
    """
    if max_prompt_chars is not None:
        for name in ("prompt", "ref"):
            value = getattr(options, name)
            if value is not None and len(value) > max_prompt_chars:
                raise BadRequest(f"{name} is longer than {max_prompt_chars} characters",
                                 param=name)
    try:
        prompt = build_prompt(options.prompt, options.mode, options.ref, config.default_mode, family)
    except PromptError as exc:
        raise BadRequest(str(exc), param="mode" if options.mode or not options.prompt else "prompt") from None
    max_tokens = options.max_tokens if options.max_tokens is not None else config.default_max_tokens
    if max_tokens > config.max_tokens_cap:
        raise BadRequest(f"max_tokens {excerpt(max_tokens, quote=False)} exceeds this server's limit of "
                         f"{config.max_tokens_cap}", param="max_tokens")
    name, mode = plan_resolution(options, config, family)
    return SamplingPlan(
        resolution=name,
        mm_processor_kwargs=mode_kwargs(name, mode),
        prompt=prompt,
        temperature=options.temperature if options.temperature is not None else config.temperature,
        max_tokens=max_tokens,
        max_tokens_given=options.max_tokens is not None,
        vllm_xargs=ngram_xargs(config.ngram_guard, options.ngram_size, options.window_size),
        skip_special_tokens=config.skip_special_tokens,
    )


def ngram_xargs(guard: NgramGuardSettings, ngram_size: int | None = None,
                window_size: int | None = None) -> dict[str, Any] | None:
    """`vllm_xargs` for the n-gram guard; None when it is off and the request sets no size.

    Values are integers: vLLM's processor ignores the guard without an integer `ngram_size`.
    """
    if not guard.enabled and ngram_size is None:
        return None
    return {
        "ngram_size": int(ngram_size if ngram_size is not None else guard.ngram_size),
        "window_size": int(window_size if window_size is not None else guard.window_size),
        "whitelist_token_ids": [int(t) for t in guard.whitelist_token_ids],
    }


def apply_chat_defaults(body: dict[str, Any], config: OCRSettings, model: str,
                        family: Family = "deepseek-ocr") -> dict[str, Any]:
    """Fill DeepSeek-OCR's sampling defaults into a client's chat request where it set none.

    Clients of the OpenAI API then get correct output without knowing vLLM's extra fields;
    anything the client did set is kept, except a `max_tokens` above the cap (400) and
    `mm_processor_kwargs` that are not one of the model's resolution modes (400). A valid
    mode is sent on as explicit sizes (a `resolution` name becomes its three values).
    """
    out = dict(body)
    try:
        chosen = resolve_mm_kwargs(family, out.get("mm_processor_kwargs"))
    except ResolutionError as exc:
        raise BadRequest(str(exc), param=exc.param) from None
    if chosen is None and config.resolution != DEFAULT_RESOLUTION:
        chosen = resolve(family, default=config.resolution)
    out.pop("mm_processor_kwargs", None)
    if chosen is not None and (kwargs := mode_kwargs(*chosen)) is not None:
        out["mm_processor_kwargs"] = kwargs
    if not out.get("model"):
        out["model"] = model
    if out.get("temperature") is None:
        out["temperature"] = config.temperature
    out.setdefault("skip_special_tokens", config.skip_special_tokens)
    if "vllm_xargs" not in out and (xargs := ngram_xargs(config.ngram_guard)) is not None:
        out["vllm_xargs"] = xargs
    for key in ("max_tokens", "max_completion_tokens"):
        value = out.get(key)
        if value is not None and value > config.max_tokens_cap:
            raise BadRequest(f"{key} {excerpt(value, quote=False)} exceeds this server's limit of "
                             f"{config.max_tokens_cap}", param=key)
    if out.get("max_tokens") is None and out.get("max_completion_tokens") is None:
        out["max_tokens"] = config.default_max_tokens
    return out


def build_chat_request(model: str, image: ImageInput, plan: SamplingPlan, *,
                       stream: bool) -> dict[str, Any]:
    """The OpenAI chat-completion body for one image and one plan."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image.data_url()}},
                {"type": "text", "text": plan.prompt},
            ],
        }],
        "temperature": plan.temperature,
        "max_tokens": plan.max_tokens,
        "skip_special_tokens": plan.skip_special_tokens,
        "stream": stream,
    }
    if plan.vllm_xargs is not None:
        body["vllm_xargs"] = plan.vllm_xargs
    if plan.mm_processor_kwargs is not None:
        body["mm_processor_kwargs"] = plan.mm_processor_kwargs
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def usage_of(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(prompt_tokens=usage.prompt_tokens or 0,
                 completion_tokens=usage.completion_tokens or 0,
                 total_tokens=usage.total_tokens or 0)


def completion_result(completion: ChatCompletion) -> CompletionResult:
    """Text, finish reason and usage of the first choice."""
    choice = completion.choices[0] if completion.choices else None
    return CompletionResult(
        text=(choice.message.content or "") if choice else "",
        finish_reason=choice.finish_reason if choice else None,
        usage=usage_of(completion.usage),
        model=completion.model,
    )


def chunk_delta(chunk: ChatCompletionChunk) -> tuple[str, str | None]:
    """The new text and the finish reason (if any) carried by one stream chunk."""
    if not chunk.choices:
        return "", None
    choice = chunk.choices[0]
    return choice.delta.content or "", choice.finish_reason
