"""`openai-ocr serve`: resolve settings, choose the engine (and say why), run the server."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from openai_ocr.settings import Settings, hand_over, load_settings, read_key_file

logger = logging.getLogger("openai_ocr")


@dataclass(frozen=True)
class EngineChoice:
    kind: str
    reason: str


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def gpu_available() -> bool:
    """A CUDA device torch can use. Imports torch only where vLLM (and so torch) is present."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_engine(settings: Settings, model_given: bool) -> EngineChoice:
    kind = settings.engine.kind
    if kind != "auto":
        return EngineChoice(kind, "chosen by --engine / engine.kind")
    if settings.upstream.url:
        return EngineChoice("upstream", f"an upstream URL is configured ({settings.upstream.url})")
    if model_given:
        return EngineChoice("vllm", "a model was named on the command line")
    if not vllm_installed():
        return EngineChoice("lite", "vLLM is not installed (install the 'vllm' extra on a GPU "
                            "machine); serving the embedded CPU engine")
    if not gpu_available():
        return EngineChoice("lite", "no GPU found; serving the embedded CPU engine "
                            "(use --engine vllm to run vLLM on the CPU anyway)")
    return EngineChoice("vllm", "a GPU and vLLM are present")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested settings overrides for the flags that were given (None means not given)."""
    pairs = {
        ("server", "host"): args.host, ("server", "port"): args.port,
        ("server", "workers"): args.workers, ("server", "cors_origins"): args.cors_origins,
        ("server", "log_level"): args.log_level, ("engine", "kind"): args.engine,
        ("engine", "model"): args.served_model,
        ("upstream", "url"): args.upstream_url, ("upstream", "api_key"): args.upstream_api_key,
        ("auth", "api_keys"): args.api_keys,
    }
    out: dict[str, dict[str, Any]] = {}
    for (section, key), value in pairs.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    key_file = getattr(args, "api_key_file", None)
    if key_file:  # keys in a file stay out of `ps`; added to any --api-key
        out.setdefault("auth", {})["api_keys"] = [*(args.api_keys or []), *read_key_file(key_file)]
    return out


def serve(args: argparse.Namespace, passthrough: list[str], parser: argparse.ArgumentParser) -> int:
    try:
        settings = load_settings(args.config, overrides_from_args(args))
    except (ValidationError, FileNotFoundError, OSError) as exc:
        parser.exit(2, f"openai-ocr: invalid configuration:\n{exc}\n")
    logging.basicConfig(level=settings.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.api_keys:
        logger.warning("--api-key is visible to every user in the process list; use "
                       "--api-key-file or OPENAI_OCR_API_KEYS instead")
    choice = choose_engine(settings, model_given=args.model is not None)
    logger.info("engine: %s (%s)", choice.kind, choice.reason)
    if choice.kind == "vllm":
        from openai_ocr.vllm_plugin.launcher import run as run_vllm

        if settings.server.workers > 1:
            logger.warning("--workers is ignored by the vllm engine; use vLLM's "
                           "--api-server-count")
        return run_vllm(settings, args.model, passthrough, served_name=args.served_model)
    if passthrough:
        parser.error(f"unrecognized arguments for the {choice.kind} engine: {' '.join(passthrough)}")
    if choice.kind == "upstream" and not settings.upstream.url:
        parser.error("the upstream engine needs --upstream-url (or upstream.url in the config)")
    run_app(settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"kind": choice.kind})}))
    return 0


def run_app(settings: Settings) -> None:
    """Serve the gateway or lite app with uvicorn.

    Worker processes read the settings from a private file (`hand_over`), never from their
    environment. uvicorn's access log is off: our request log has the path without the query
    string (which may hold a key).
    """
    import uvicorn

    from openai_ocr.api.connections import HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol

    hand_over(settings)
    limits = settings.connections
    os.environ[HEADER_TIMEOUT_ENV] = str(limits.header_timeout_s)
    uvicorn.run("openai_ocr.server:app_from_env", factory=True, host=settings.server.host,
                port=settings.server.port, workers=settings.server.workers,
                log_level=settings.server.log_level, timeout_graceful_shutdown=30,
                access_log=False, http=HeaderTimeoutProtocol,
                timeout_keep_alive=max(1, round(limits.keep_alive_s)),
                limit_concurrency=limits.limit_concurrency,
                h11_max_incomplete_event_size=limits.max_header_bytes)
