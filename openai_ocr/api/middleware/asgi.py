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
