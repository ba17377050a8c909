"""An upstream that answers from a script, down to the socket: for the gateway's failure paths.

A raw asyncio HTTP/1.1 server on loopback (keep-alive, one request at a time per
connection), in a thread of its own. Each chat request takes the script's next step: an
answer (status and JSON body, or a body cut short), `DROP` (the connection closes without an answer, as when a
node dies) or `STALL` (no answer until the client gives up). With the script empty it
answers `COMPLETION`. `GET .../models` lists one model. Unlike a mocked transport it fails
the way a real node does, for every HTTP client the gateway uses.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.helpers import free_port

COMPLETION = {"id": "1", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "page text"}}],
              "usage": {"prompt_tokens": 278, "completion_tokens": 2, "total_tokens": 280}}
MODEL = "deepseek-ai/DeepSeek-OCR"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    content_type: str = "application/json"
    cut: bool = False
    """Send the body, then close the connection before the length it declared."""


DROP = "drop"
STALL = "stall"
Step = Answer | str


class ScriptedUpstream:
    def __init__(self) -> None:
        self.script: list[Step] = []
        self.chat_calls = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def play(self, *steps: Step) -> None:
        self.script = list(steps)
        self.chat_calls = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                step = self._step(method, path)
                if step == DROP:
                    return
                if step == STALL:
                    await asyncio.sleep(3600)
                assert isinstance(step, Answer)
                payload = step.body if isinstance(step.body, bytes) else json.dumps(step.body).encode()
                declared = len(payload) + (1000 if step.cut else 0)
                writer.write(f"HTTP/1.1 {step.status} X\r\ncontent-type: {step.content_type}\r\n"
                             f"content-length: {declared}\r\n\r\n".encode() + payload)
                await writer.drain()
                if step.cut:
                    return
        finally:
            writer.close()

    def _step(self, method: str, path: str) -> Step:
        if method == "GET" and path.endswith("/models"):
            return Answer(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "test"}]})
        self.chat_calls += 1
        return self.script.pop(0) if self.script else Answer(200, COMPLETION)

    async def _shutdown(self) -> None:
        self._server.close()
        open_connections = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in open_connections:
            task.cancel()
        await asyncio.gather(*open_connections, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@contextmanager
def scripted_upstream() -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    upstream._thread.start()
    upstream._ready.wait(timeout=10)
    try:
        yield upstream
    finally:
        upstream.stop()
