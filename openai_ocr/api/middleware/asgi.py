"""What the middleware modules share: the scope type and whole JSON answers sent from ASGI."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


async def send_json(send: Any, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON answer from pure ASGI middleware (which runs before FastAPI's responses)."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Any) -> tuple[bytes, bool]:
    """The whole request body, and whether the client left while it was sent."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), False


def replaying(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the app `body` (already read) as one message, then what the
    client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
