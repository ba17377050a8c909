"""The embedded CPU engine: rapidocr (PP-OCRv6 small, ONNX, shipped in its wheel) + onnxruntime.

It answers the same OpenAI chat-completion requests as the DeepSeek-OCR backends, mapping
the official prompts to what a line OCR engine can do: plain text (Free OCR.), DeepSeek-OCR's
grounding format (<|grounding|> prompts) and Locate. Prompts it cannot serve (describe,
parse figure) are a 400 that says so, never a made-up answer.

Work runs in a thread pool of `lite.workers` threads, each with its own engine; onnxruntime
releases the GIL, so threads scale with cores without copying pages between processes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import queue
import re
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from PIL import Image, ImageDraw, ImageFont

from openai_ocr import layout
from openai_ocr.backends.base import BackendStatus, ChatBackend
from openai_ocr.documents import decode_base64_payload, load_image
from openai_ocr.errors import BackendUnavailable, BadRequest
from openai_ocr.prompts import MODES, strip_image_placeholder
from openai_ocr.settings import LimitSettings, LiteSettings, Settings

log = logging.getLogger(__name__)

LITE_MODEL_ID = "rapidocr-ppocrv6-small"
"""The model id answered by the lite backend: the engine and the model it really runs."""

Action = Literal["markdown", "ocr", "free", "locate"]

SUPPORTED_PROMPTS = (MODES["markdown"], MODES["ocr"], MODES["free_ocr"],
                     MODES["locate"].format(ref="..."))
_LOCATE_RE = re.compile(r"locate\s*<\|ref\|>(?P<ref>.*?)<\|/ref\|>", re.I | re.S)
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
    match = _LOCATE_RE.search(text)
    if match:
        ref = match.group("ref").strip()
        if not ref:
            raise BadRequest("Locate needs the text to find between <|ref|> and <|/ref|>",
                             param="messages")
        return Task("locate", ref)
    if "<|grounding|>" in text:
        return Task("markdown" if "markdown" in text.lower() else "ocr")
    if _FREE_RE.fullmatch(text.strip()):
        return Task("free")
    raise BadRequest(
        f"the lite engine ({LITE_MODEL_ID}) only reads text and cannot serve the prompt "
        f"{text[:80]!r}; it serves: " + " | ".join(repr(p) for p in SUPPORTED_PROMPTS),
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
            raise BadRequest(f"unsupported content part type {kind!r}; send text and "
                             f"image_url parts", param="messages")
    if len(images) != 1:
        raise BadRequest(f"the last user message must carry exactly one image_url part "
                         f"(found {len(images)})", param="messages")
    if not images[0].strip()[:5].lower() == "data:":
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


def truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    """The text cut to `max_tokens` estimated tokens, and the finish reason."""
    if max_tokens is not None and estimate_tokens(text) > max_tokens:
        return text[: max_tokens * 4], "length"
    return text, "stop"


def render(task: Task, lines: list[layout.TextLine], width: int, height: int) -> str:
    """The answer text for one task from the engine's lines."""
    if task.action == "locate":
        return layout.to_locate(lines, task.ref, width, height)
    ordered = layout.reading_order(lines, width, height)
    if task.action == "free":
        return layout.to_plain_text(ordered)
    return layout.to_grounding(ordered, width, height, markdown=task.action == "markdown")


# ---------------------------------------------------------------- the engine (sync, in threads)

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _model_paths(config: LiteSettings) -> tuple[Path, Path]:
    """The detector and recogniser files; an error naming the missing file, never a download."""
    try:
        import onnxruntime  # noqa: F401
        import rapidocr
    except ImportError as exc:
        raise RuntimeError(f"the lite engine needs rapidocr and onnxruntime ({exc}); "
                           f"install them with: pip install rapidocr onnxruntime") from exc
    folder = Path(config.model_dir) if config.model_dir else Path(rapidocr.__file__).parent / "models"
    paths = (folder / config.det_model, folder / config.rec_model)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"lite engine model files not found: {', '.join(missing)}; set "
                           f"[lite] model_dir/det_model/rec_model to files on this machine "
                           f"(the lite engine never downloads models)")
    return paths


class LineEngine:
    """A pool of rapidocr engines, one per worker thread, returning `TextLine`s."""

    def __init__(self, config: LiteSettings, workers: int) -> None:
        from rapidocr import RapidOCR

        det, rec = _model_paths(config)
        threads = config.threads_per_worker or max(1, _cpu_count() // workers)
        params = {
            "Global.use_cls": False,  # the angle classifier flips long upright lines
            "Global.log_level": "warning",
            "Global.model_root_dir": str(det.parent),
            "Global.text_score": config.text_score,
            "Det.model_path": str(det),
            "Rec.model_path": str(rec),
            "Det.limit_type": "max",
            "Det.limit_side_len": config.det_max_side,
            "Det.box_thresh": config.det_box_thresh,
            "Det.unclip_ratio": config.det_unclip_ratio,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self.threads = threads
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(workers):
            self._idle.put(RapidOCR(params=params))

    def warm_up(self) -> None:
        """Run every engine once: rapidocr loads models lazily, so this is where a bad file fails."""
        sample = Image.new("RGB", (320, 64), "white")
        ImageDraw.Draw(sample).text((8, 12), "Lite 123", fill="black",
                                    font=ImageFont.load_default(size=32))
        engines = [self._idle.get() for _ in range(self._idle.qsize())]
        try:
            for engine in engines:
                engine(sample)
        finally:
            for engine in engines:
                self._idle.put(engine)

    def read(self, image: Image.Image) -> list[layout.TextLine]:
        """Recognised lines with axis-aligned pixel boxes, in the engine's order."""
        engine = self._idle.get()
        try:
            result = engine(image)
        finally:
            self._idle.put(engine)
        if result is None or getattr(result, "boxes", None) is None or getattr(result, "txts", None) is None:
            return []
        lines = []
        for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=False):
            xs = [float(p[0]) for p in quad]
            ys = [float(p[1]) for p in quad]
            lines.append(layout.TextLine(min(xs), min(ys), max(xs), max(ys), str(text), float(score)))
        return lines


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


# ---------------------------------------------------------------- the backend

class LiteBackend(ChatBackend):
    """Real OCR on CPU with no GPU and no download. Usage counts are estimates (4 chars/token)."""

    kind = "lite"
    model = LITE_MODEL_ID

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: LineEngine | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        workers = self.settings.lite.workers
        engine = await asyncio.to_thread(LineEngine, self.settings.lite, workers)
        await asyncio.to_thread(engine.warm_up)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lite-ocr")
        self._engine = engine
        log.info("lite engine ready: %s, %d worker(s) x %d onnxruntime thread(s)",
                 LITE_MODEL_ID, workers, engine.threads)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._engine = None

    async def _run(self, request: LiteRequest) -> str:
        """Decode and recognise in a worker thread.

        How many requests wait is bounded by the server's backpressure (GatedBackend).
        Cancelling (client gone) drops a request that has not started; one already running
        finishes in its thread, since onnxruntime cannot be interrupted.
        """
        engine, pool = self._engine, self._pool
        if engine is None or pool is None:
            raise BackendUnavailable("the lite engine is not started")

        def work() -> str:
            page = decode_page(request.image_url, self.settings.limits)
            lines = engine.read(page)
            return render(request.task, lines, page.width, page.height)

        return await asyncio.wrap_future(pool.submit(work))

    def _parse(self, body: dict[str, Any]) -> LiteRequest:
        return parse_request(body, MODES[self.settings.ocr.default_mode])

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        request = self._parse(body)
        text, finish = truncate(await self._run(request), request.max_tokens)
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}", object="chat.completion", created=int(time.time()),
            model=LITE_MODEL_ID,
            choices=[Choice(index=0, finish_reason=finish,  # type: ignore[arg-type]
                            message=ChatCompletionMessage(role="assistant", content=text))],
            usage=_usage(request.prompt, text))

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        """All errors are raised before the first chunk; then the text line by line."""
        request = self._parse(body)
        text, finish = truncate(await self._run(request), request.max_tokens)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: ChoiceDelta, reason: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, object="chat.completion.chunk", created=created, model=LITE_MODEL_ID,
                choices=[ChunkChoice(index=0, delta=delta, finish_reason=reason)])  # type: ignore[arg-type]

        yield chunk(ChoiceDelta(role="assistant", content=""))
        for piece in text.splitlines(keepends=True):
            yield chunk(ChoiceDelta(content=piece))
        yield chunk(ChoiceDelta(), finish)
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield ChatCompletionChunk(id=chunk_id, object="chat.completion.chunk", created=created,
                                      model=LITE_MODEL_ID, choices=[],
                                      usage=_usage(request.prompt, text))

    async def list_models(self) -> list[Model]:
        return [Model(id=LITE_MODEL_ID, created=_CREATED, object="model", owned_by="openai-ocr")]

    async def status(self) -> BackendStatus:
        if self._engine is None:
            return BackendStatus(ready=False, detail="the lite engine is not started")
        return BackendStatus(ready=True, detail=f"{LITE_MODEL_ID}, {self.settings.lite.workers} "
                                                f"worker(s) x {self._engine.threads} thread(s)")


def _usage(prompt: str, text: str) -> CompletionUsage:
    """Estimated usage: prompt text and answer at 4 characters a token; the image counts 0."""
    prompt_tokens, completion_tokens = estimate_tokens(prompt), estimate_tokens(text)
    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           total_tokens=prompt_tokens + completion_tokens)
