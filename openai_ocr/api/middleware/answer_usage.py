"""What a chat completion the project did not write says it cost, read as it passes.

In vllm mode vLLM answers the chat requests holding images itself; no service code of ours
sees their tokens. Its answer carries them: the `usage` of a JSON completion, or of a stream's
chunks (the last chunk when the client asked for `stream_options.include_usage`, every chunk
with `continuous_usage_stats`; a stream without it tells no token counts).
"""

from __future__ import annotations

from typing import Any

import orjson
from openai.types import CompletionUsage
from pydantic import ValidationError

from openai_ocr.ocr.models import Usage
from openai_ocr.ocr.translation import usage_of

MAX_JSON_ANSWER = 64 * 1024 * 1024
"""A JSON answer longer than this is passed on unread (its tokens are not counted)."""


class ChatAnswerUsage:
    """Feed it the ASGI messages of one answer (`see`); then `status`, `usage`, `model`."""

    def __init__(self) -> None:
        self.status = 0
        self.usage = Usage()
        self.model: str | None = None
        self._stream = False
        self._held = bytearray()  # the JSON body so far, or a stream's unfinished line
        self._unread = False

    def see(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            kind = next((v for k, v in message.get("headers") or [] if k.lower() == b"content-type"), b"")
            self._stream = kind.startswith(b"text/event-stream")
        elif message["type"] == "http.response.body" and self.status == 200 and not self._unread:
            chunk = message.get("body", b"")
            if self._stream:
                self._see_events(chunk)
            else:
                self._see_json(chunk, more=bool(message.get("more_body")))

    def _see_json(self, chunk: bytes, *, more: bool) -> None:
        self._held += chunk
        if len(self._held) > MAX_JSON_ANSWER:
            self._unread = True
            self._held = bytearray()
        elif not more:
            self._read(bytes(self._held))
            self._held = bytearray()

    def _see_events(self, chunk: bytes) -> None:
        self._held += chunk
        *lines, rest = self._held.split(b"\n")
        self._held = bytearray(rest)
        for line in lines:
            line = line.strip()
            if line.startswith(b"data:") and b'"usage"' in line:
                self._read(bytes(line[5:]))

    def _read(self, text: bytes) -> None:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        if isinstance(doc.get("model"), str):
            self.model = doc["model"]
        if isinstance(counts := doc.get("usage"), dict):
            try:  # read as the engines' answers are (`usage_of`)
                self.usage = usage_of(CompletionUsage.model_validate(counts))
            except ValidationError:
                pass
