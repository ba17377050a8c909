"""What a client's chat request may ask of the engine behind the gateway.

vLLM fetches the image URLs it is given and trusts its sampling fields, so the gateway checks
them first: image URLs are `data:` unless their host is allowed (and never a private,
loopback or link-local address, nor `file:`), one choice per request, sampling fields and
`vllm_xargs` within bounds, and the prompt text within the length cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from typing import Any
from urllib.parse import urlsplit

from openai_ocr.errors import BadRequest
from openai_ocr.inputs.documents import is_data_url
from openai_ocr.settings import GatewaySettings

PART_TYPES = {"text", "image_url", "file"}
"""Content parts DeepSeek-OCR can use; others (video_url, audio) would make vLLM fetch or decode more."""

NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "min_p": (0.0, 1.0),
    "top_k": (-1, 1000), "presence_penalty": (-2.0, 2.0), "frequency_penalty": (-2.0, 2.0),
    "repetition_penalty": (0.01, 2.0), "top_logprobs": (0, 20), "length_penalty": (-10.0, 10.0),
    "min_tokens": (0, 8192), "seed": (-(2**63), 2**63 - 1),
}
XARGS_BOUNDS: dict[str, tuple[int, int]] = {"ngram_size": (1, 1000), "window_size": (1, 10000)}
MAX_WHITELIST = 256
MAX_TOKEN_ID = 1_000_000


async def check_chat_request(body: dict[str, Any], gateway: GatewaySettings,
                             max_prompt_chars: int) -> None:
    """400 for anything the engine should not be asked; returns when the request may go on."""
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise BadRequest("n must be 1: one answer per page", param="n")
    if body.get("best_of") not in (None, 1):
        raise BadRequest("best_of must be 1", param="best_of")
    for name, (low, high) in NUMBER_BOUNDS.items():
        value = body.get(name)
        if value is not None and not _within(value, low, high):
            raise BadRequest(f"{name} must be a number from {low:g} to {high:g}", param=name)
    _check_xargs(body.get("vllm_xargs"))
    text = 0
    for part in _parts(body):
        kind = part.get("type")
        if kind not in PART_TYPES:
            raise BadRequest(f"unsupported content part type {str(kind)[:40]!r}; send text, "
                             "image_url or file parts", param="messages")
        if kind == "text":
            text += len(part.get("text") or "")
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("image_url.url must be a string", param="messages")
            await check_url(url, gateway)
    if text > max_prompt_chars:
        raise BadRequest(f"the message text is longer than {max_prompt_chars} characters",
                         param="messages")


def _parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            out.append({"type": "text", "text": content})
        elif isinstance(content, list):
            out.extend(p if isinstance(p, dict) else {"type": None} for p in content)
    return out


def _within(value: Any, low: float, high: float) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def _check_xargs(xargs: Any) -> None:
    if xargs is None:
        return
    if not isinstance(xargs, dict):
        raise BadRequest("vllm_xargs must be an object", param="vllm_xargs")
    for key, value in xargs.items():
        if key in XARGS_BOUNDS:
            low, high = XARGS_BOUNDS[key]
            if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
                raise BadRequest(f"vllm_xargs.{key} must be an integer from {low} to {high}",
                                 param="vllm_xargs")
        elif key == "whitelist_token_ids":
            if not (isinstance(value, list) and len(value) <= MAX_WHITELIST and all(
                    isinstance(t, int) and not isinstance(t, bool) and 0 <= t < MAX_TOKEN_ID
                    for t in value)):
                raise BadRequest(f"vllm_xargs.whitelist_token_ids must be at most {MAX_WHITELIST} "
                                 "token ids", param="vllm_xargs")
        else:
            raise BadRequest(f"vllm_xargs: unknown key {str(key)[:40]!r}; allowed: ngram_size, "
                             "window_size, whitelist_token_ids", param="vllm_xargs")


async def check_url(url: str, gateway: GatewaySettings) -> None:
    """`data:` always; http(s) only to an allowed host that resolves to public addresses."""
    if is_data_url(url):
        return
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequest("image URLs must be data: URLs (or http(s) URLs of an allowed host)",
                         param="messages")
    if host not in {h.lower() for h in gateway.remote_url_hosts}:
        raise BadRequest("this server accepts only data: image URLs"
                         + ("" if not gateway.remote_url_hosts else " or URLs of its allowed hosts"),
                         param="messages")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443,
                                                             type=socket.SOCK_STREAM)
    except OSError:
        raise BadRequest(f"the image URL's host {host} cannot be resolved", param="messages") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise BadRequest(f"the image URL's host {host} resolves to a non-public address",
                             param="messages")
