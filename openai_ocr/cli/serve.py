"""`openai-ocr serve`: resolve settings, choose the engine (and say why), run the server."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError

from openai_ocr.settings import SettingInfo, Settings, iter_settings, load_settings, read_key_file

logger = logging.getLogger(__name__)


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


def _dest(setting: SettingInfo) -> str:
    return "__".join(setting.path)  # engine__model: no clash with the positional MODEL


def _plain(annotation: Any) -> Any:
    """`T` from `Annotated[T, ...]` and `T | None`."""
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (Union, UnionType) and type(None) in args:
            annotation = next(a for a in args if a is not type(None))
        else:
            return annotation


def _flag_options(setting: SettingInfo) -> dict[str, Any]:
    """argparse options for a setting's flag, from its type: choices, repeatable lists, on/off."""
    annotation = _plain(setting.field.annotation)
    options: dict[str, Any] = {"dest": _dest(setting), "default": None,
                               "help": (setting.field.description or "").replace("%", "%%")}
    metavar = setting.metavar or setting.path[-1].upper()
    if get_origin(annotation) is list:
        annotation = _plain(get_args(annotation)[0])
        options.update(action="append", metavar=metavar)
        options["help"] += " (repeatable)"
    if get_origin(annotation) is Literal:
        options["choices"] = list(get_args(annotation))
        options.pop("metavar", None)
    elif annotation is bool:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options.setdefault("metavar", metavar)
        options["type"] = annotation if annotation in (int, float) else str
    return options


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags: one per setting whose field names a flag (`json_schema_extra={"cli": ...}`)."""
    for setting in iter_settings():
        if setting.cli:
            parser.add_argument(setting.cli, **_flag_options(setting))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested settings overrides for the flags that were given (None means not given)."""
    out: dict[str, Any] = {}
    for setting in iter_settings():
        value = getattr(args, _dest(setting), None) if setting.cli else None
        if value is None:
            continue
        node = out
        for part in setting.path[:-1]:
            node = node.setdefault(part, {})
        node[setting.path[-1]] = value
    key_file = getattr(args, "api_key_file", None)
    if key_file:  # keys in a file stay out of `ps`; added to any --api-key
        keys = out.setdefault("auth", {}).get("api_keys") or []
        out["auth"]["api_keys"] = [*keys, *read_key_file(key_file)]
    return out


def serve(args: argparse.Namespace, passthrough: list[str], parser: argparse.ArgumentParser) -> int:
    overrides = overrides_from_args(args)
    try:
        settings = load_settings(args.config, overrides)
    except (ValidationError, FileNotFoundError, OSError) as exc:
        parser.exit(2, f"openai-ocr: invalid configuration:\n{exc}\n")
    if settings.auth.keys_file:  # each server process reads it; a bad one stops us here first
        from openai_ocr.service.keys import KeyRing, KeysFileError

        try:
            KeyRing.from_settings(settings)
        except KeysFileError as exc:
            parser.exit(2, f"openai-ocr: invalid configuration:\n{exc}\n")
    logging.basicConfig(level=settings.server.log_level.upper(), format=LOG_FORMAT)
    if getattr(args, "auth__api_keys", None):
        logger.warning("--api-key is visible to every user in the process list; use "
                       "--api-key-file or OPENAI_OCR_API_KEYS instead")
    choice = choose_engine(settings, model_given=args.model is not None)
    logger.info("engine: %s (%s)", choice.kind, choice.reason)
    if choice.kind == "vllm":
        from openai_ocr.vllm_plugin.launcher import run as run_vllm

        if settings.server.workers > 1:
            logger.warning("--workers is ignored by the vllm engine; use vLLM's "
                           "--api-server-count")
        served_name = overrides.get("engine", {}).get("model")  # --model NAME
        return run_vllm(settings, args.model, passthrough, served_name=served_name)
    if passthrough:
        parser.error(f"unrecognized arguments for the {choice.kind} engine: {' '.join(passthrough)}")
    if choice.kind == "upstream" and not settings.upstream.url:
        parser.error("the upstream engine needs --upstream-url (or upstream.url in the config)")
    run_app(settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"kind": choice.kind})}))
    return 0


def run_app(settings: Settings) -> None:
    """Serve the gateway or lite app with uvicorn (workers: `openai_ocr.cli.workers`).

    uvicorn's access log is off: our request log has the path without the query string
    (which may hold a key).
    """
    from openai_ocr.cli.workers import share_metrics_between_workers

    if settings.server.workers > 1:
        share_metrics_between_workers()
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down; a stop asked for is a clean
    # exit (status 0, no traceback, no "make: *** Terminated").
    signal.signal(signal.SIGTERM, _stopped)
    try:
        _run_uvicorn(settings)
    except KeyboardInterrupt:
        pass


def _stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _run_uvicorn(settings: Settings) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from openai_ocr.cli.http_protocol import (
        HEADER_TIMEOUT_ENV,
        MAX_HEADER_BYTES_ENV,
        HeaderTimeoutProtocol,
    )
    from openai_ocr.cli.workers import SettingsApp

    limits = settings.connections
    os.environ[HEADER_TIMEOUT_ENV] = str(limits.header_timeout_s)
    os.environ[MAX_HEADER_BYTES_ENV] = str(limits.max_header_bytes)
    workers = settings.server.workers
    app = SettingsApp(settings, supervisor_pid=os.getpid() if workers > 1 else None)
    # Our access line replaces uvicorn's (one line per request, with the request id).
    config = uvicorn.Config(app, host=settings.server.host,
                port=settings.server.port, workers=workers,
                log_level=settings.server.log_level, timeout_graceful_shutdown=30,
                access_log=False, log_config=log_config(settings.server.log_level),
                http=HeaderTimeoutProtocol, timeout_keep_alive=max(1, round(limits.keep_alive_s)),
                limit_concurrency=None)  # the app's own limit: JSON 503, probes apart
    if workers > 1:  # what uvicorn.run does, which takes the app only as an import string
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config, our loggers included.

    uvicorn applies it in every worker process it starts (which otherwise begin with no
    handler for our loggers), so `--workers N` keeps the access lines and the engine's
    start-up lines.
    """
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "openai_ocr": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
