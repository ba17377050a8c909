"""What a client's chat request may ask of the engine behind the gateway.

vLLM fetches the image URLs it is given and trusts its sampling fields, so the gateway checks
them first: image URLs are `data:` unless their host is allowed (and never a private,
loopback or link-local address, nor `file:`), one choice per request, sampling fields and
`vllm_xargs` within bounds, and the prompt text within the length cap.

An http(s) URL is parsed once, by a WHATWG URL parser (Ada, the one Node uses), and what is
forwarded is that parser's normal form of it, so the host that was checked is the host the
engine fetches. Anything on which URL parsers are known to disagree is refused first:
backslashes, whitespace and control characters, a user name or password (`@` in the
authority), percent-encoded hosts. `http://127.0.0.1:6379\\@allowed.example/x.png` was
checked as a URL of `allowed.example` and fetched from 127.0.0.1 by the engine.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import ada_url

from openai_ocr.errors import BadRequest, excerpt
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
            raise BadRequest(f"unsupported content part type {excerpt(kind, 40)}; send text, "
                             "image_url or file parts", param="messages")
        if kind == "text":
            text += len(part.get("text") or "")
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise BadRequest("image_url.url must be a string", param="messages")
            checked = await check_url(url, gateway)
            if checked is not url:  # the normal form is what goes on
                set_image_url(part, checked)
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
            raise BadRequest(f"vllm_xargs: unknown key {excerpt(key, 40)}; allowed: ngram_size, "
                             "window_size, whitelist_token_ids", param="vllm_xargs")


def set_image_url(part: dict[str, Any], url: str) -> None:
    """Replace the URL of an `image_url` part (an object with `url`, or a bare string)."""
    ref = part.get("image_url")
    if isinstance(ref, dict):
        ref["url"] = url
    else:
        part["image_url"] = url


_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
"""Whitespace, control characters and backslashes: read differently by different URL parsers."""
_HTTP_PREFIX = re.compile(r"https?://", re.I)
_AUTHORITY_END = re.compile(r"[/?#]")


def _refuse(message: str) -> BadRequest:
    return BadRequest(message, param="messages")


async def check_url(url: str, gateway: GatewaySettings) -> str:
    """The image URL to forward: a `data:` URL as it is (`DocumentIntake.check_chat_images`
    checks its bytes), else the WHATWG normal form of an http(s) URL whose host is allowed and
    resolves to public addresses only; 400 for anything else."""
    if is_data_url(url):
        return url
    only_data = ("this server accepts only data: image URLs"
                 + ("" if not gateway.remote_url_hosts else " or http(s) URLs of its allowed hosts"))
    text = url.strip()
    prefix = _HTTP_PREFIX.match(text)
    if not gateway.remote_url_hosts or prefix is None:
        raise _refuse(only_data)
    if _AMBIGUOUS.search(text):
        raise _refuse("image URLs may not hold whitespace, control characters or backslashes")
    rest = text[prefix.end():]
    end = _AUTHORITY_END.search(rest)
    authority = rest[:end.start()] if end else rest
    if not authority or "@" in authority or "%" in authority:
        raise _refuse("an image URL's authority must be a plain host[:port]: no user name or "
                      "password (`@`), no percent-encoding")
    try:
        parsed = ada_url.URL(text)
    except ValueError:
        raise _refuse("the image URL is not a valid URL") from None
    host = parsed.hostname
    if parsed.protocol not in ("http:", "https:") or not host or parsed.username or parsed.password:
        raise _refuse(only_data)
    forwarded = parsed.href
    again = urlsplit(forwarded)  # what Python's parser (and so aiohttp's, requests') reads
    bare_host = host.strip("[]")
    if (again.hostname or "") != bare_host or again.username is not None:
        raise _refuse("the image URL is read differently by different URL parsers")
    if host not in _allowed_hosts(tuple(gateway.remote_url_hosts)):
        raise _refuse(only_data)
    port = int(parsed.port) if parsed.port else (443 if parsed.protocol == "https:" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(bare_host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise _refuse(f"the image URL's host {excerpt(host)} cannot be resolved") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise _refuse(f"the image URL's host {excerpt(host)} resolves to a non-public address")
    return forwarded


@functools.lru_cache(maxsize=16)
def _allowed_hosts(hosts: tuple[str, ...]) -> frozenset[str]:
    """`gateway.remote_url_hosts` as the URL parser writes hosts (lower case, IDNA, IPv4 in
    dotted decimal, IPv6 in brackets)."""
    normal = set()
    for host in (h.strip() for h in hosts):
        try:
            literal = f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            literal = host
        try:
            normal.add(ada_url.URL(f"http://{literal}/").hostname)
        except ValueError:
            normal.add(host.lower())
    return frozenset(normal)
