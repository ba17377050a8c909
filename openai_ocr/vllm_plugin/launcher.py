"""`openai-ocr serve MODEL [any vLLM serve flag]`: vLLM's OpenAI server with our plugin.

Starts vLLM's API server in this process (as `vllm serve` does) with DeepSeek-OCR's
defaults, each of which the user can override with the usual vLLM flag:

* `--logits-processors vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor`
  (the repetition guard; requests opt in with `vllm_xargs.ngram_size`), and
  `VLLM_USE_V2_MODEL_RUNNER=0`, since the V2 model runner refuses that processor;
* `--no-enable-prefix-caching` and `--mm-processor-cache-gb 0` (the vLLM recipe);
* `--chat-template` = `openai_ocr/chat_template.jinja` (`<BOS><image>\\n{prompt}`);
* `--served-model-name`: MODEL as given, or the directory name for a local checkpoint;
* `VLLM_PLUGINS` gets `openai_ocr` added, so vLLM loads our endpoint plugin (the legacy
  `/ocr*` routes, bound in-process to vLLM's chat handler).

The same defaults serve DeepSeek-OCR-2 (`openai-ocr serve deepseek-ai/DeepSeek-OCR-2`): its
recipe uses the same template, logits processor and flags. What differs (its two prompts,
its single resolution mode) is decided per request from the checkpoint's architecture
(`openai_ocr.ocr.resolution.family_of`). The `vllm.general_plugins` entry point of this
project registers DeepSeek-OCR with per-request resolution modes in every vLLM process.

Every other flag goes to vLLM unchanged (`--port`, `--api-key`, `--tensor-parallel-size`,
`--data-parallel-size`, `--api-server-count`, `--config`, ...).

The CPU build of vLLM needs `openai_ocr.vllm_plugin.cpu_fixes` before torchvision is imported in every
process; importing this module applies it here, and vLLM's engine core (started with
"spawn", which re-imports the main module) gets it from the `.pth` hook the project
installs, or from this module when run as `python -m openai_ocr.vllm_plugin.launcher`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from openai_ocr.vllm_plugin import cpu_fixes

cpu_fixes.install_import_hook()  # before anything imports torchvision (vLLM does)

DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
NGRAM_LOGITS_PROCESSOR = "vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor"
PLUGIN_NAME = "openai_ocr"  # = openai_ocr.vllm_plugin.plugin.PLUGIN_NAME (not imported: keep this light)

#: environment defaults (a value already in the environment wins)
ENV_DEFAULTS = {
    # V2 refuses per-request logits processors such as the n-gram guard (vLLM >= 0.33 on GPU)
    "VLLM_USE_V2_MODEL_RUNNER": "0",
}

# Plugin groups whose plugins vLLM loads by default (when VLLM_PLUGINS is unset); once we set
# VLLM_PLUGINS to allow our endpoint plugin, we list theirs too so nothing else changes.
_DEFAULT_ON_GROUPS = ("vllm.general_plugins", "vllm.platform_plugins",
                      "vllm.io_processor_plugins", "vllm.stat_logger_plugins")


def chat_template_path() -> str:
    """The packaged DeepSeek-OCR chat template, as a file path vLLM can read."""
    return str(resources.files("openai_ocr").joinpath("chat_template.jinja"))


def plugin_allowlist(current: str | None) -> str:
    """VLLM_PLUGINS with our plugin added, keeping vLLM's load-everything default otherwise."""
    if current is not None:
        names = [n for n in current.split(",") if n]
    else:
        from importlib.metadata import entry_points

        names = []
        for group in _DEFAULT_ON_GROUPS:
            names.extend(ep.name for ep in entry_points(group=group) if ep.name not in names)
    if PLUGIN_NAME not in names:
        names.append(PLUGIN_NAME)
    return ",".join(names)


def apply_environment(environ: Any = os.environ) -> None:
    """Set the environment defaults and the plugin allowlist (inherited by vLLM's children)."""
    for key, value in ENV_DEFAULTS.items():
        environ.setdefault(key, value)
    environ["VLLM_PLUGINS"] = plugin_allowlist(environ.get("VLLM_PLUGINS"))


def _make_arg_parser() -> Any:
    try:  # vLLM 0.32
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # vLLM 0.33 moved it
        from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(
        prog="openai-ocr serve",
        description="Serve DeepSeek-OCR with vLLM's OpenAI-compatible server plus the "
                    "openai-ocr routes (/ocr, /ocr/file, /ocr/stream, /ocr/batch, /health). "
                    "Takes every `vllm serve` flag.")
    return make_arg_parser(parser)


def _validate(args: Any) -> None:
    try:
        from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args
    except ImportError:
        from vllm.entrypoints.common.cli_args import validate_parsed_serve_args
    validate_parsed_serve_args(args)


def default_served_name(model: str) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve().name
    return model


def build_args(argv: Sequence[str], *, model: str | None = None,
               served_model_name: str | None = None,
               defaults: dict[str, Any] | None = None) -> Any:
    """Parse `[MODEL] [vLLM flags]` with vLLM's own parser, our defaults underneath.

    Our values are parser defaults, so a flag on the command line or in `--config` wins.
    `model` is used when argv names none (else DEFAULT_MODEL); `served_model_name` when
    argv has no `--served-model-name` (else MODEL, or a local checkpoint's directory name);
    `defaults` adds parser defaults by vLLM destination name (e.g. `port`).
    """
    parser = _make_arg_parser()
    parser.set_defaults(
        model=model or DEFAULT_MODEL,
        logits_processors=[NGRAM_LOGITS_PROCESSOR],
        enable_prefix_caching=False,
        mm_processor_cache_gb=0,
        chat_template=chat_template_path(),
        **(defaults or {}),
    )
    args = parser.parse_args(list(argv))
    if getattr(args, "model_tag", None):
        args.model = args.model_tag
    args.model_tag = args.model
    if not args.served_model_name:
        args.served_model_name = [served_model_name or default_served_name(args.model)]
    return args


def _serve(args: Any) -> int:
    from vllm.logger import configure_logging_from_args

    configure_logging_from_args(args)
    _validate(args)

    from vllm.entrypoints.cli.serve import ServeSubcommand

    # vLLM's own `serve` command: one API server in this process, or several API server
    # processes (--api-server-count, data parallel), or headless engines (--headless).
    ServeSubcommand.cmd(args)
    return 0


def _prepare_process() -> None:
    cpu_fixes.apply()
    apply_environment()
    # What vLLM's CLI does first: multiprocessing "spawn" for the engine processes.
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup

    cli_env_setup()


def run(settings: Any, model: str | None, passthrough: Sequence[str],
        served_name: str | None = None) -> int:
    """`openai-ocr serve --engine vllm` from `openai_ocr.cli.serve`: settings give the defaults.

    `model`: the MODEL argument (None: `settings.engine.model`); `passthrough`: the vLLM
    flags. `settings.engine.model` becomes the served model name and `settings.server`'s
    host, port, log level and CORS origins become vLLM's, unless the flags say otherwise.
    Blocks until the server stops.
    """
    from openai_ocr.settings import SealedSettings
    from openai_ocr.vllm_plugin.plugin import SETTINGS_ARG

    _prepare_process()
    server = settings.server
    defaults: dict[str, Any] = {"host": server.host, "port": server.port,
                                "uvicorn_log_level": server.log_level,
                                # uvicorn's access log prints query strings (keys can be there)
                                "disable_uvicorn_access_log": True}
    if server.cors_origins:
        defaults["allowed_origins"] = list(server.cors_origins)
    # vLLM's own /v1 routes take the same keys as ours; with a keys file our middleware checks
    # every route (vLLM would refuse the file's keys)
    if settings.auth.api_keys and not settings.auth.keys_file:
        defaults["api_key"] = [k.get_secret_value() for k in settings.auth.api_keys]
    # The served name: --model NAME; else MODEL as given (a local checkpoint: its directory
    # name); else the configured engine.model.
    args = build_args(passthrough, model=model or settings.engine.model,
                      served_model_name=served_name or (None if model else settings.engine.model),
                      defaults=defaults)
    # Read by the plugin in every API server process: vLLM pickles the arguments into them.
    setattr(args, SETTINGS_ARG, SealedSettings(settings))
    return _serve(args)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m openai_ocr.vllm_plugin.launcher [MODEL] [vLLM flags]` (argv without the program).

    Blocks until the server stops.
    """
    _prepare_process()
    return _serve(build_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
