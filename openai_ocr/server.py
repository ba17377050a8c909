"""The `openai-ocr` command line: `openai-ocr serve ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from pydantic import ValidationError

from openai_ocr import __version__
from openai_ocr.engine_choice import choose_engine
from openai_ocr.settings import Settings, load_settings

logger = logging.getLogger("openai_ocr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openai-ocr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"openai-ocr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the server",
        description="Run the OCR server. Engines: an OpenAI-compatible upstream (gateway), "
        "vLLM in-process (MODEL given, or a GPU present), or the embedded CPU engine. "
        "Flags not listed here are passed to vLLM in vllm mode.")
    serve.add_argument("model", nargs="?", help="model to serve with vLLM "
                       "(default deepseek-ai/DeepSeek-OCR); implies --engine vllm")
    serve.add_argument("--config", help="TOML settings file (default ./config.toml if present)")
    serve.add_argument("--engine", choices=["auto", "vllm", "upstream", "lite"])
    serve.add_argument("--upstream-url", help="OpenAI-compatible base URL, e.g. http://gpu1:8000/v1")
    serve.add_argument("--upstream-api-key", help="API key sent to the upstream")
    serve.add_argument("--model", dest="served_model", metavar="NAME",
                       help="model name sent upstream and shown in /v1/models")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (gateway and lite modes)")
    serve.add_argument("--cors-origin", action="append", dest="cors_origins", metavar="ORIGIN",
                       help="allowed CORS origin (repeatable)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested settings overrides for the flags that were given (None means not given)."""
    pairs = {
        ("server", "host"): args.host, ("server", "port"): args.port,
        ("server", "workers"): args.workers, ("server", "cors_origins"): args.cors_origins,
        ("server", "log_level"): args.log_level, ("engine", "kind"): args.engine,
        ("engine", "model"): args.served_model or args.model,
        ("upstream", "url"): args.upstream_url, ("upstream", "api_key"): args.upstream_api_key,
    }
    out: dict[str, dict[str, Any]] = {}
    for (section, key), value in pairs.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def serve(args: argparse.Namespace, passthrough: list[str], parser: argparse.ArgumentParser) -> int:
    try:
        settings = load_settings(args.config, overrides_from_args(args))
    except (ValidationError, FileNotFoundError) as exc:
        parser.exit(2, f"openai-ocr: invalid configuration:\n{exc}\n")
    logging.basicConfig(level=settings.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    choice = choose_engine(settings, model_given=args.model is not None)
    logger.info("engine: %s (%s)", choice.kind, choice.reason)
    if choice.kind == "vllm":
        from openai_ocr.vllm_launcher import main as run_vllm

        return run_vllm(settings, args.model, passthrough)
    if passthrough:
        parser.error(f"unrecognized arguments for the {choice.kind} engine: {' '.join(passthrough)}")
    if choice.kind == "upstream" and not settings.upstream.url:
        parser.error("the upstream engine needs --upstream-url (or upstream.url in the config)")
    run_app(settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"kind": choice.kind})}))
    return 0


def run_app(settings: Settings) -> None:
    """Serve the gateway or lite app with uvicorn (worker processes read the settings from env)."""
    import uvicorn

    from openai_ocr.app import SETTINGS_ENV

    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run("openai_ocr.app:app_from_env", factory=True, host=settings.server.host,
                port=settings.server.port, workers=settings.server.workers,
                log_level=settings.server.log_level, timeout_graceful_shutdown=30)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if args.command == "serve":
        return serve(args, passthrough, parser)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
