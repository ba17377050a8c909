"""The embedded CPU engine as a chat engine; `reader` finds and reads the lines.

It answers the same OpenAI chat-completion requests as the DeepSeek-OCR engines, mapping
the official prompts to what a line OCR engine can do: plain text (Free OCR.), DeepSeek-OCR's
grounding format (<|grounding|> prompts) and Locate. Prompts it cannot serve (describe,
parse figure) are a 400 that says so, never a made-up answer.

Work runs in a thread pool of `lite.workers` threads, each with its own engines; the
runtimes and Tesseract release the GIL, so threads scale with cores without copying pages
between processes.

The engine has no token probabilities. Asked for `logprobs`, it answers with its words
instead: `choices[0].words` (an extension field), each `{"text", "box": [x1, y1, x2, y2] in
page pixels, "confidence": 0..1}` in reading order, the recogniser's scores (Tesseract's
word confidence, or PP-OCR's line score with the line's box split by character
proportions); a stream carries them on its last choice chunk.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from PIL import Image

from openai_ocr.engines.base import ChatEngine, EngineStatus
from openai_ocr.engines.lite import layout
from openai_ocr.engines.lite.reader import LineReader
from openai_ocr.engines.lite.reader_plan import plan_reader
from openai_ocr.errors import BadRequest, Unavailable, excerpt
from openai_ocr.inputs.documents import decode_base64_payload, is_data_url, load_image
from openai_ocr.metrics import Metrics
from openai_ocr.ocr.prompts import MODES, strip_image_placeholder
from openai_ocr.ocr.resolution import DEFAULT_RESOLUTION, ResolutionError, image_tokens, resolve_mm_kwargs
from openai_ocr.ocr.resolution import MODES as RESOLUTIONS
from openai_ocr.ocr.words import FoundWord
from openai_ocr.settings import LimitSettings, Settings

logger = logging.getLogger(__name__)

Action = Literal["markdown", "ocr", "free", "locate"]

SUPPORTED_PROMPTS = (MODES["markdown"], MODES["ocr"], MODES["free_ocr"],
                     MODES["locate"].format(ref="..."))
_LOCATE_RE = re.compile(r"locate\s*<\|ref\|>", re.I)
_REF_CLOSE = "<|/ref|>"
_FREE_RE = re.compile(r"free\s+ocr\.?", re.I)
_CREATED = int(time.time())


@dataclass(frozen=True)
class Task:
    """What one request asks of the engine: an action, and the text to find for `locate`."""

    action: Action
    ref: str = ""


@dataclass(frozen=True)
class LiteRequest:
    """The parts of a chat request the lite engine uses."""

    image_url: str
    task: Task
    prompt: str
    max_tokens: int | None


# ---------------------------------------------------------------- request parsing (pure)

def parse_prompt(prompt: str) -> Task:
    """Map a DeepSeek-OCR prompt to a lite action, or raise a 400 listing what works."""
    text = strip_image_placeholder(prompt)
    # Linear: the first "Locate <|ref|>" and the first "<|/ref|>" after it (a lazy regex
    # retried from every "locate" was quadratic in the prompt's length).
    match = _LOCATE_RE.search(text)
    close = text.find(_REF_CLOSE, match.end()) if match else -1
    if match and close >= 0:
        ref = text[match.end():close].strip()
        if not ref:
            raise BadRequest("Locate needs the text to find between <|ref|> and <|/ref|>",
                             param="messages")
        return Task("locate", ref)
    if "<|grounding|>" in text:
        return Task("markdown" if "markdown" in text.lower() else "ocr")
    if _FREE_RE.fullmatch(text.strip()):
        return Task("free")
    raise BadRequest(
        f"the lite engine only reads text and cannot serve the prompt "
        f"{excerpt(text, 80)}; it serves: " + " | ".join(repr(p) for p in SUPPORTED_PROMPTS),
        param="messages")


def parse_request(body: dict[str, Any], default_prompt: str) -> LiteRequest:
    """Find the image and prompt of the last user message; check what the engine needs."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise BadRequest("messages contain no user message", param="messages")
    content = users[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise BadRequest("the user message content must be a string or a list of parts",
                         param="messages")
    images: list[str] = []
    texts: list[str] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("image_url.url must be a string", param="messages")
            images.append(url)
        else:
            raise BadRequest(f"unsupported content part type {excerpt(kind, 40)}; send text and "
                             f"image_url parts", param="messages")
    if len(images) != 1:
        raise BadRequest(f"the last user message must carry exactly one image_url part "
                         f"(found {len(images)})", param="messages")
    if not is_data_url(images[0]):
        raise BadRequest("only data: URLs are accepted for images: the lite engine works "
                         "offline and fetches nothing", param="messages")
    prompt = strip_image_placeholder("\n".join(texts)) or default_prompt
    return LiteRequest(image_url=images[0], task=parse_prompt(prompt), prompt=prompt,
                       max_tokens=_max_tokens(body))


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def estimate_tokens(text: str) -> int:
    """An estimate, 4 characters a token: the lite engine has no tokenizer."""
    return math.ceil(len(text) / 4)


def truncate(text: str, max_tokens: int | None) -> tuple[str, Literal["stop", "length"]]:
    """The text cut to `max_tokens` estimated tokens, and the finish reason."""
    if max_tokens is not None and estimate_tokens(text) > max_tokens:
        return text[: max_tokens * 4], "length"
    return text, "stop"


def render(task: Task, lines: list[layout.TextLine], width: int, height: int,
           regions: list[layout.Region] | None = None) -> str:
    """The answer text for one task from the engine's lines and the page's layout regions."""
    return answer(task, lines, width, height, regions)[0]


def answer(task: Task, lines: list[layout.TextLine], width: int, height: int,
           regions: list[layout.Region] | None = None) -> tuple[str, list[FoundWord]]:
    """The answer text for one task, and the page's words in the answer's reading order."""
    if task.action == "locate":
        return layout.to_locate(lines, task.ref, width, height), [w for ln in lines for w in ln.words]
    blocks = layout.page_blocks(lines, width, height, regions or (), paragraphs=task.action != "ocr")
    if task.action == "free":
        return layout.to_plain_text(blocks), layout.block_words(blocks)
    return layout.to_grounding(blocks, width, height, markdown=task.action == "markdown"), layout.block_words(blocks)


def words_field(words: list[FoundWord]) -> list[dict[str, Any]]:
    """The `words` extension of a choice: text, page box in pixels, confidence."""
    return [{"text": w.text, "box": [round(v, 1) for v in w.box], "confidence": w.confidence} for w in words]


def decode_page(url: str, limits: LimitSettings) -> Image.Image:
    """A validated RGB page from a data URL (transparent areas on white)."""
    data = decode_base64_payload(url, max_bytes=limits.max_file_bytes, param="image_url")
    checked = load_image(data, max_pixels=limits.max_image_pixels,
                         max_bytes=limits.max_file_bytes, param="image_url")
    image = Image.open(io.BytesIO(checked.data))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        page = Image.new("RGB", image.size, "white")
        page.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return page
    return image.convert("RGB")


# ---------------------------------------------------------------- the engine

MODEL_ALIASES = ("deepseek-ai/DeepSeek-OCR", "deepseek-ai/DeepSeek-OCR-2")
"""Names the lite engine accepts besides its own, so client code written for the vLLM and
gateway modes (which serve DeepSeek-OCR) runs unchanged against it."""


class LiteEngine(ChatEngine):
    """Real OCR on CPU with no GPU and no download. Usage counts are estimates (4 chars/token)."""

    kind = "lite"

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.plan = plan_reader(settings.lite)
        self.model = self.plan.model_id
        self.metrics = metrics
        self.capacity = settings.lite.workers  # pages read at once: the fair share's base
        self.reader: LineReader | None = None
        self._pool: ThreadPoolExecutor | None = None

    def use_metrics(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def start(self) -> None:
        workers = self.settings.lite.workers
        reader = await asyncio.to_thread(LineReader, self.settings.lite, self.plan, workers, self.metrics)
        await asyncio.to_thread(reader.warm_up)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lite-ocr")
        self.reader = reader
        logger.info("lite engine ready: %s: %s; %d worker(s) x %d thread(s)",
                    self.model, reader.describe(), workers, reader.threads)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.reader = None

    async def _run(self, request: LiteRequest) -> tuple[str, tuple[int, int], list[FoundWord]]:
        """Decode and recognise in a worker thread.

        How many requests wait is bounded by the server's backpressure (GatedEngine).
        Cancelling (client gone) drops a request that has not started; one already running
        finishes in its thread, since the engines cannot be interrupted.
        """
        reader, pool = self.reader, self._pool
        if reader is None or pool is None:
            raise Unavailable("the lite engine is not started")

        def work() -> tuple[str, tuple[int, int], list[FoundWord]]:
            page = decode_page(request.image_url, self.settings.limits)
            if request.task.action == "locate":
                text, words = answer(request.task, reader.read(page), page.width, page.height)
            else:
                lines, regions = reader.read_page(page)
                text, words = answer(request.task, lines, page.width, page.height, regions)
            return text, page.size, words

        return await asyncio.wrap_future(pool.submit(work))

    def _parse(self, body: dict[str, Any]) -> LiteRequest:
        return parse_request(body, MODES[self.settings.ocr.default_mode])

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        request = await asyncio.to_thread(self._parse, body)
        read, size, words = await self._run(request)
        text, finish = truncate(read, request.max_tokens)
        extra: dict[str, Any] = {"words": words_field(words)} if body.get("logprobs") else {}
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion", created=int(time.time()),
            model=self.model,
            choices=[Choice(index=0, finish_reason=finish,
                            message=ChatCompletionMessage(role="assistant", content=text), **extra)],
            usage=_usage(request.prompt, text, size, body.get("mm_processor_kwargs")))

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        """All errors are raised before the first chunk; then the text line by line."""
        request = await asyncio.to_thread(self._parse, body)
        read, size, words = await self._run(request)
        text, finish = truncate(read, request.max_tokens)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: ChoiceDelta, reason: Literal["stop", "length"] | None = None,
                  **extra: Any) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, object="chat.completion.chunk", created=created, model=self.model,
                choices=[ChunkChoice(index=0, delta=delta, finish_reason=reason, **extra)])

        yield chunk(ChoiceDelta(role="assistant", content=""))
        for piece in text.splitlines(keepends=True):
            yield chunk(ChoiceDelta(content=piece))
        yield chunk(ChoiceDelta(), finish, **({"words": words_field(words)} if body.get("logprobs") else {}))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield ChatCompletionChunk(id=chunk_id, object="chat.completion.chunk", created=created,
                                      model=self.model, choices=[],
                                      usage=_usage(request.prompt, text, size, body.get("mm_processor_kwargs")))

    async def list_models(self) -> list[Model]:
        """The engine's own name, then the DeepSeek-OCR names it answers to (aliases)."""
        return [Model(id=name, created=_CREATED, object="model", owned_by="openai-ocr")
                for name in (self.model, *MODEL_ALIASES)]

    async def status(self) -> EngineStatus:
        if self.reader is None:
            return EngineStatus(ready=False, detail="the lite engine is not started")
        return EngineStatus(ready=True, detail=f"{self.model}, {self.settings.lite.workers} "
                                                f"worker(s) x {self.reader.threads} thread(s)")


def _usage(prompt: str, text: str, size: tuple[int, int], mm_kwargs: Any = None) -> CompletionUsage:
    """Usage in DeepSeek-OCR's sense: the prompt holds the BOS token, the page's vision tokens
    in the mode the request names (`mm_processor_kwargs`; else the default, Gundam) and the
    prompt text; the texts are estimates (4 characters a token: the lite engine has no
    tokenizer)."""
    try:
        named = resolve_mm_kwargs("deepseek-ocr", mm_kwargs if isinstance(mm_kwargs, dict) else None)
    except ResolutionError:
        named = None
    mode = named[1] if named else RESOLUTIONS["deepseek-ocr"][DEFAULT_RESOLUTION]
    vision = image_tokens("deepseek-ocr", mode, *size)
    prompt_tokens, completion_tokens = 1 + vision + estimate_tokens(prompt), estimate_tokens(text)
    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           total_tokens=prompt_tokens + completion_tokens)
