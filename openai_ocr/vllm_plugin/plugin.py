"""vLLM endpoint plugin: our routes inside vLLM's OpenAI server, bound to its engine.

`OCREndpointPlugin` (entry point group `vllm.endpoint_plugins`, name `openai_ocr`):
`attach_router` mounts the compat routes (`/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`,
`/health`, `/v1/ocr`, `/v1/files`, `/v1/batches`) on vLLM's FastAPI app; `init_state` binds
them to a `VLLMEngine` that calls vLLM's chat handler directly, and starts the batch runner.
vLLM keeps serving its own `/v1/*` routes. Endpoint plugins
load only when named in `VLLM_PLUGINS` (`openai-ocr serve` sets it).

There is no `vllm.general_plugins` hook: the CPU-build fix (`openai_ocr.vllm_plugin.cpu_fixes`) must
run before transformers is imported, which happens before vLLM loads general plugins; the
project's `.pth` file applies it instead.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from typing import Any

from pydantic import SecretStr

logger = logging.getLogger(__name__)

PLUGIN_NAME = "openai_ocr"
"""The name to list in `VLLM_PLUGINS` (it must match the entry point names)."""


class OCREndpointPlugin:
    """Satisfies `vllm.plugins.endpoint_plugins.interface.EndpointPlugin`."""

    name = PLUGIN_NAME
    # The routes need a chat-capable engine; vLLM skips the plugin otherwise (and on the
    # engine-less render server).
    required_tasks = ("generate",)

    def attach_router(self, app: Any) -> None:
        from openai_ocr.server import attach_compat_routes

        attach_compat_routes(app)

    async def init_state(self, engine_client: Any, state: Any, args: Namespace) -> None:
        from openai_ocr.api.dependencies import BATCHES_KEY, STATE_KEY
        from openai_ocr.engines.gated import gated
        from openai_ocr.engines.vllm import VLLMEngine
        from openai_ocr.server import batch_service
        from openai_ocr.service.serving import OCRService

        if engine_client is None:  # render-only server: nothing to bind to
            logger.warning("openai_ocr: no engine client, the OCR routes answer 503")
            return
        settings = plugin_settings(getattr(args, "api_key", None))
        engine = gated(VLLMEngine.from_app_state(state, engine_client), settings)
        await engine.start()
        service = OCRService(engine=engine, settings=settings)
        runner = batch_service(service)
        if runner is not None:  # vLLM has no shutdown hook for plugins: the task ends with it
            await runner.start()
        setattr(state, STATE_KEY, service)
        setattr(state, BATCHES_KEY, runner)
        logger.info("openai_ocr: OCR routes bound to the in-process engine (model %s)",
                    engine.model)


def plugin_settings(vllm_api_keys: list[str] | None) -> Any:
    """Settings handed over by `openai-ocr serve` (environment), else config and environment.

    vLLM's `--api-key` keys also guard our routes, so one key set covers the whole server.
    """
    import os

    from openai_ocr.settings import SETTINGS_ENV, Settings, load_settings

    handed = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(handed) if handed else load_settings()
    keys = [k.get_secret_value() for k in settings.auth.api_keys]
    extra = [k for k in (vllm_api_keys or []) if k and k not in keys]
    if extra:
        auth = settings.auth.model_copy(update={"api_keys": [*settings.auth.api_keys, *(
            SecretStr(k) for k in extra)]})
        settings = settings.model_copy(update={"auth": auth})
    return settings


def endpoint_plugin() -> OCREndpointPlugin:
    """Entry point factory (`vllm.endpoint_plugins`)."""
    return OCREndpointPlugin()

