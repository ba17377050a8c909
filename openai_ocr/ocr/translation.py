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
from openai_ocr.ocr.confidence import TokenScores, token_pairs
from openai_ocr.ocr.models import OCROptions, Usage
from openai_ocr.ocr.prompts import PromptError, build_prompt
from openai_ocr.ocr.resolution import (
    AUTO,
    DEFAULT_RESOLUTION,
    MODES,
    Family,
    Resolution,
    ResolutionError,
    resolve,
    resolve_mm_kwargs,
)
from openai_ocr.ocr.words import FoundWord
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
    #: `resolution: auto`: each page gets its own mode (`openai_ocr.ocr.auto_resolution.page_plan`)
    #: and a page that loops is read again in the next larger one first
    auto: bool = False
    #: token log-probabilities asked for (`logprobs: true`): confidences on the page results
    #: (the lite engine answers with its words and their recogniser scores)
    logprobs: bool = False
    #: each block's words placed on the page by the lite engine's detector and reader
    word_boxes: bool = False
    #: each block's words given in the page results (with word boxes, or for Mistral's `word`
    #: confidence granularity)
    words: bool = False


@dataclass(frozen=True)
class CompletionResult:
    text: str
    finish_reason: str | None
    usage: Usage
    model: str
    #: the answer's token log-probabilities aligned to `text`, where the engine gave them
    tokens: TokenScores | None = None
    #: words found on the page with boxes and scores: the lite engine's own, or read for word
    #: boxes (`SamplingPlan.word_boxes`); None where nobody read them
    words: tuple[FoundWord, ...] | None = None


def mode_kwargs(name: str, mode: Resolution) -> dict[str, Any] | None:
    """`mm_processor_kwargs` for a mode; None for the model's built-in one (Gundam), so a
    plain vLLM server (no plugin, no `--trust-request-mm-kwargs`) still takes the request."""
    return None if name == DEFAULT_RESOLUTION else mode.mm_processor_kwargs()


def plan_resolution(options: OCROptions, config: OCRSettings, family: Family) -> tuple[str, Resolution | None]:
    """The request's resolution mode, validated for the served model's family (400 otherwise);
    (`auto`, None) where each page gets its own (a family with one mode: that mode)."""
    raw = [k for k in ("base_size", "image_size", "crop_mode") if getattr(options, k) is not None]
    if options.resolution == AUTO and raw:
        raise BadRequest(f"resolution auto picks base_size, image_size and crop_mode for each page; "
                         f"leave out {', '.join(raw)}, or name a mode instead of auto", param=raw[0])
    if options.resolution == AUTO or (options.resolution is None and not raw and config.resolution == AUTO):
        return (AUTO, None) if len(MODES[family]) > 1 else resolve(family)
    default = DEFAULT_RESOLUTION if config.resolution == AUTO else config.resolution
    try:
        return resolve(family, options.resolution, options.base_size, options.image_size,
                       options.crop_mode, default=default)
    except ResolutionError as exc:
        also = "; or auto (each page in the smallest mode that holds its text)" if exc.param == "resolution" else ""
        raise BadRequest(str(exc) + also, param=exc.param) from None


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
    if options.word_boxes and options.output != "json":
        raise BadRequest("word_boxes are given in the JSON pages: set output=json", param="word_boxes")
    return SamplingPlan(
        resolution=name,
        mm_processor_kwargs=None if mode is None else mode_kwargs(name, mode),
        auto=mode is None,
        prompt=prompt,
        temperature=options.temperature if options.temperature is not None else config.temperature,
        max_tokens=max_tokens,
        max_tokens_given=options.max_tokens is not None,
        vllm_xargs=ngram_xargs(config.ngram_guard, options.ngram_size, options.window_size),
        skip_special_tokens=config.skip_special_tokens,
        # word boxes carry the engine's confidences (the lite engine answers with its words only then)
        logprobs=options.word_boxes or (options.confidence if options.confidence is not None
                                        else options.output == "json"),
        word_boxes=options.word_boxes,
        words=options.word_boxes,
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
    if chosen is None and config.resolution not in (DEFAULT_RESOLUTION, AUTO):
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
    if plan.logprobs:
        body["logprobs"] = True
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
    """Text, finish reason and usage of the first choice, and its token log-probabilities
    (aligned to the text) or the lite engine's words where it has them."""
    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content or "") if choice else ""
    return CompletionResult(
        text=text,
        finish_reason=choice.finish_reason if choice else None,
        usage=usage_of(completion.usage),
        model=completion.model,
        tokens=scores_of(text, [_attr(choice, "logprobs")]),
        words=found_words(_attr(choice, "words")),
    )


def _attr(obj: Any, name: str) -> Any:
    """`obj.name` or `obj[name]` (an upstream's answer is built without validation, so its
    parts may be dicts); None where there is neither."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def logprob_entries(logprobs: Any) -> list[Any] | None:
    """The `content` list of a choice's `logprobs`, or None where it has none."""
    content = _attr(logprobs, "content")
    return content if isinstance(content, list) else None


def scores_of(text: str, logprobs: list[Any]) -> TokenScores | None:
    """Token scores of `text` from the `logprobs` of its choice (or of each stream chunk);
    None where none carried any."""
    entries = [logprob_entries(item) for item in logprobs]
    if all(e is None for e in entries):
        return None
    return TokenScores.align(text, token_pairs([t for e in entries if e for t in e]))


def found_words(items: Any) -> tuple[FoundWord, ...] | None:
    """The lite engine's `words` (text, box in pixels, confidence), or None without them."""
    if not isinstance(items, list):
        return None
    words = []
    for item in items:
        text, box, score = _attr(item, "text"), _attr(item, "box"), _attr(item, "confidence")
        if not isinstance(text, str) or not isinstance(box, list | tuple) or len(box) != 4 or not all(
                isinstance(v, int | float) for v in box):
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        valid = isinstance(score, int | float) and not isinstance(score, bool) and 0.0 <= score <= 1.0
        words.append(FoundWord(text, (x1, y1, x2, y2), float(score) if valid else None))
    return tuple(words)


def chunk_delta(chunk: ChatCompletionChunk) -> tuple[str, str | None]:
    """The new text and the finish reason (if any) carried by one stream chunk."""
    if not chunk.choices:
        return "", None
    choice = chunk.choices[0]
    return choice.delta.content or "", choice.finish_reason
