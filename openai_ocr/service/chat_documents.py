"""PDF input in `/v1/chat/completions`: an OpenAI `file` content part, one answer per document.

DeepSeek-OCR sees one image per request, so the file's pages become one chat request each
(the `file` part replaced by an `image_url` part), run concurrently, and the answers are
joined with the official page separator into one completion (or one stream, page by page).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import Document, decode_base64_payload
from openai_ocr.ocr.assembly import PAGE_SPLIT, overall_finish_reason, sum_usage
from openai_ocr.ocr.models import Usage
from openai_ocr.ocr.translation import apply_chat_defaults, usage_of
from openai_ocr.service.chat_policy import check_chat_request
from openai_ocr.service.concurrency import aclose, gather_or_cancel, within
from openai_ocr.service.document_limits import current_limits
from openai_ocr.service.serving import OCRService
from openai_ocr.service.usage import charge

PAGES_FIELD = "pages"
"""Extra request field selecting pages of the file ("1-3,7"); removed before forwarding."""


def file_part_location(body: dict[str, Any]) -> tuple[int, int] | None:
    """(message index, part index) of the request's file part; None without one."""
    found = [(mi, pi) for mi, message in enumerate(body.get("messages", []))
             if isinstance(message.get("content"), list)
             for pi, part in enumerate(message["content"])
             if isinstance(part, dict) and part.get("type") == "file"]
    if len(found) > 1:
        raise BadRequest("send one file per request", param="messages")
    return found[0] if found else None


def file_data(body: dict[str, Any], where: tuple[int, int]) -> str | None:
    """The part's `file.file_data`; None when it names an uploaded `file.file_id` instead."""
    part = body["messages"][where[0]]["content"][where[1]]
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    data = file.get("file_data")
    if isinstance(data, str) and data:
        return data
    if isinstance(file.get("file_id"), str) and file["file_id"]:
        return None
    raise BadRequest("a file part needs `file.file_data` (a data URL or base64) or "
                     "`file.file_id` (an uploaded file)", param="messages")


def file_id_of(body: dict[str, Any], where: tuple[int, int]) -> str:
    return str(body["messages"][where[0]]["content"][where[1]]["file"]["file_id"])


def page_request(body: dict[str, Any], where: tuple[int, int], data_url: str) -> dict[str, Any]:
    out = copy.deepcopy({k: v for k, v in body.items() if k != "messages"})
    messages = copy.deepcopy(body["messages"])
    messages[where[0]]["content"][where[1]] = {"type": "image_url", "image_url": {"url": data_url}}
    out["messages"] = messages
    return out


async def prepare_chat(service: OCRService, body: dict[str, Any],
                       owner: str | None = None) -> tuple[dict[str, Any], DocumentChat | None]:
    """The checks every chat request gets (interactive or batch line): sampling defaults,
    image limits, at most one file part; a DocumentChat when the request holds a file."""
    await service.models.check(body.get("model"))
    payload = apply_chat_defaults(body, service.settings.ocr, service.engine.model, service.models.family)
    await check_chat_request(payload, service.settings.gateway, service.settings.budget.max_prompt_chars)
    await service.inputs.check_chat_images(payload)
    where = file_part_location(payload)
    return payload, DocumentChat(service, payload, where, owner) if where is not None else None


async def complete_chat(service: OCRService, body: dict[str, Any],
                        owner: str | None = None) -> ChatCompletion:
    """A non-streaming chat completion, as `/v1/chat/completions` answers it."""
    payload, document = await prepare_chat(service, body, owner)
    return await (document.complete() if document else plain_complete(service, payload))


def image_parts(payload: dict[str, Any]) -> int:
    """The image parts of a chat request's messages (each one a page for the engine)."""
    count = 0
    for message in payload.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(isinstance(part, dict) and part.get("type") == "image_url" for part in content)
    return count


async def plain_complete(service: OCRService, payload: dict[str, Any]) -> ChatCompletion:
    """A chat request without a file part, as the engine answers it (its usage charged)."""
    started = time.perf_counter()
    answer = await service.engine.complete(payload)
    images = image_parts(payload)
    charge(answer.model, usage_of(answer.usage), pages=images, images=images,
           engine_seconds=time.perf_counter() - started)
    return answer


async def plain_stream(service: OCRService, payload: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
    """A streamed chat request without a file part, chunk by chunk; its usage (tokens where
    the client asked for the usage chunk) is charged when the stream ends, or is left."""
    started = time.perf_counter()
    chunks = service.engine.stream(payload)
    usage, model, answered = Usage(), str(payload.get("model") or service.engine.model), False
    try:
        async for chunk in chunks:
            answered, model = True, chunk.model or model
            if chunk.usage is not None:
                usage = usage_of(chunk.usage)
            yield chunk
    finally:
        await aclose(chunks)
        if answered:  # not a request the engine refused
            images = image_parts(payload)
            charge(model, usage, pages=images, images=images,
                   engine_seconds=time.perf_counter() - started)


class DocumentChat:
    """Answers one chat request whose file part holds a PDF or multi-page TIFF."""

    def __init__(self, service: OCRService, body: dict[str, Any], where: tuple[int, int],
                 owner: str | None = None) -> None:
        self.service = service
        self.where = where
        self.owner = owner
        self.pages_spec = body.pop(PAGES_FIELD, None)
        if self.pages_spec is not None and not isinstance(self.pages_spec, str):
            raise BadRequest('pages must be a string such as "1-3,7"', param=PAGES_FIELD)
        self.body = body

    async def open(self) -> Document:
        encoded = file_data(self.body, self.where)
        if encoded is None:
            return await self.service.inputs.open_stored(file_id_of(self.body, self.where), self.owner,
                                                         pages=self.pages_spec)
        data = decode_base64_payload(encoded, max_bytes=current_limits(self.service.settings).max_bytes,
                                     param="file_data")
        return await self.service.inputs.open_bytes(data, pages=self.pages_spec, param="file")

    async def _page_body(self, document: Document, number: int) -> dict[str, Any]:
        image = await self.service.inputs.page(document, number)
        return page_request(self.body, self.where, image.data_url())

    async def complete(self) -> ChatCompletion:
        engine = self.service.engine
        gate = asyncio.Semaphore(self.service.settings.documents.page_concurrency)
        with await self.open() as document:
            engine_s: list[float] = []

            async def one(number: int) -> ChatCompletion:
                async with gate, self.service.inputs.reserve(document, number):
                    body = await self._page_body(document, number)
                    started = time.perf_counter()
                    answer = await engine.complete(body)
                    engine_s.append(time.perf_counter() - started)
                    return answer

            async with within(document.deadline, self.service.settings.limits.request_timeout_s,
                              self.service.recognizer.count_timeout):
                answers = await gather_or_cancel(one(n) for n in document.pages)
        first = answers[0]
        texts = [(a.choices[0].message.content or "") if a.choices else "" for a in answers]
        merged = first.model_copy(deep=True)
        if merged.choices:
            merged.choices[0].message.content = PAGE_SPLIT.join(texts)
            # None only when no page has a reason, and then the first page's (empty) one stays
            merged.choices[0].finish_reason = overall_finish_reason(
                [a.choices[0].finish_reason if a.choices else None for a in answers]
            ) or merged.choices[0].finish_reason
        usages = [usage_of(a.usage) for a in answers if a.usage is not None]
        if usages:
            merged.usage = sum_usage(usages).chat_usage()
        charge(merged.model, sum_usage(usages), pages=len(answers), images=len(answers),
               engine_seconds=sum(engine_s))
        return merged

    async def stream(self) -> AsyncIterator[ChatCompletionChunk]:
        """Pages one after the other; one finish_reason and one usage chunk at the end."""
        engine = self.service.engine
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        reasons: list[str | None] = []
        usages: list[Usage] = []
        last: ChatCompletionChunk | None = None
        pages, engine_s = 0, 0.0
        with await self.open() as document:
            try:
                for position, number in enumerate(document.pages):
                    async with self.service.inputs.reserve(document, number):
                        body = await self._page_body(document, number)
                        started = time.perf_counter()
                        chunks = engine.stream(body)
                        reason: str | None = None
                        answered = False
                        try:
                            async for chunk in chunks:
                                if not answered:  # a page the engine took
                                    pages, answered = pages + 1, True
                                last = chunk
                                if chunk.usage is not None:
                                    usages.append(usage_of(chunk.usage))
                                if not chunk.choices:
                                    continue
                                choice = chunk.choices[0]
                                reason = choice.finish_reason or reason
                                if position and choice.delta.role and not choice.delta.content:
                                    continue  # one role chunk per answer
                                if choice.finish_reason is not None or chunk.usage is not None:
                                    if not choice.delta.content:
                                        continue
                                    chunk = _with(chunk, finish_reason=None, usage=None)
                                yield chunk
                        finally:
                            await aclose(chunks)
                            engine_s += time.perf_counter() - started
                        reasons.append(reason)
                    if position + 1 < len(document.pages) and last is not None:
                        yield _with(last, content=PAGE_SPLIT, finish_reason=None, usage=None)
            finally:  # the pages sent, also of a stream that failed or was left
                if pages:
                    charge(last.model if last is not None else engine.model, sum_usage(usages),
                           pages=pages, images=pages, engine_seconds=engine_s)
        if last is None:
            return
        yield _with(last, content="", finish_reason=overall_finish_reason(reasons) or "stop",
                    usage=None)
        if include_usage:
            final = last.model_copy(deep=True)
            final.choices = []
            final.usage = sum_usage(usages).chat_usage()
            yield final


def _with(chunk: ChatCompletionChunk, *, content: str | None = None,
          finish_reason: str | None = None, usage: Any = None) -> ChatCompletionChunk:
    """A copy of `chunk` with one choice carrying `content` and `finish_reason`."""
    data = chunk.model_dump(exclude_unset=True)
    choice = {"index": 0, "delta": {"content": content} if content is not None
              else (data.get("choices") or [{}])[0].get("delta", {}),
              "finish_reason": finish_reason}
    data["choices"] = [choice]
    data["usage"] = usage
    return ChatCompletionChunk.model_validate(data)
