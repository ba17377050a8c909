"""vLLM endpoint plugin: our routes inside vLLM's OpenAI server, bound to its engine.

`OCREndpointPlugin` (entry point group `vllm.endpoint_plugins`, name `openai_ocr`):
`attach_router` mounts the compat routes (`/ocr`, `/ocr/file`, `/ocr/stream`, `/ocr/batch`,
`/health`, the playground at `/`, `/playground`, `/ui/*`, `/v1/ocr`, `/v1/files`,
`/v1/batches`) on vLLM's FastAPI app; `init_state` binds them to a `VLLMEngine` that calls
vLLM's chat handler directly, and starts the batch runner. vLLM keeps serving its own
`/v1/*` routes. Endpoint plugins
load only when named in `VLLM_PLUGINS` (`openai-ocr serve` sets it).

`register_models` (entry point group `vllm.general_plugins`, same name) runs in every vLLM
process before models load and registers `openai_ocr.vllm_plugin.resolution_model`' DeepSeek-OCR class
(per-request resolution modes) over vLLM's. The CPU-build fix
(`openai_ocr.vllm_plugin.cpu_fixes`) cannot be such a hook: it must run before transformers
is imported, which happens before vLLM loads general plugins; the project's `.pth` file
applies it instead.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from typing import Any

from pydantic import SecretStr

logger = logging.getLogger(__name__)

PLUGIN_NAME = "openai_ocr"
"""The name to list in `VLLM_PLUGINS` (it must match the entry point names)."""
SETTINGS_ARG = "openai_ocr_settings"
"""The attribute of vLLM's argument namespace that carries `openai-ocr serve`'s settings to
the plugin, in every API server process (vLLM pickles its arguments into them, and logs only
the arguments its own parser knows)."""


class OCREndpointPlugin:
    """Satisfies `vllm.plugins.endpoint_plugins.interface.EndpointPlugin`."""

    name = PLUGIN_NAME
    # The routes need a chat-capable engine; vLLM skips the plugin otherwise (and on the
    # engine-less render server).
    required_tasks = ("generate",)

    def attach_router(self, app: Any) -> None:
        """Our routes, and our HTTP layer around the whole app (before vLLM starts it)."""
        from openai_ocr.api.middleware.register import install_http_layer
        from openai_ocr.metrics import default_metrics
        from openai_ocr.server import attach_compat_routes
        from openai_ocr.vllm_plugin.mm_kwargs_gate import install_mm_kwargs_gate

        attach_compat_routes(app)
        # vLLM's /metrics serves prometheus_client's global registry: our series go there
        args = getattr(app.state, "args", None)  # set by vLLM's build_app before plugins attach
        install_http_layer(app, plugin_settings(args), default_metrics(), own_app=False)
        install_mm_kwargs_gate()

    async def init_state(self, engine_client: Any, state: Any, args: Namespace) -> None:
        from openai_ocr.engines.vllm import VLLMEngine
        from openai_ocr.metrics import default_metrics
        from openai_ocr.ocr.resolution import family_of
        from openai_ocr.runtime import Runtime
        from openai_ocr.vllm_plugin.mm_kwargs_gate import set_served_family

        if engine_client is None:  # render-only server: nothing to bind to
            logger.warning("openai_ocr: no engine client, the OCR routes answer 503")
            return
        settings = plugin_settings(args)
        engine = VLLMEngine.from_app_state(state, engine_client)
        set_served_family(family_of(engine.model, engine.architectures))
        runtime = Runtime(settings, engine, default_metrics())
        # vLLM has no shutdown hook for plugins: the runtime's tasks end with the process
        await runtime.start()
        runtime.bind(state)
        logger.info("openai_ocr: OCR routes bound to the in-process engine (model %s)",
                    engine.model)


def plugin_settings(args: Namespace | None) -> Any:
    """Settings `openai-ocr serve` put into vLLM's arguments, else config and environment
    (plain `vllm serve` with VLLM_PLUGINS=openai_ocr).

    vLLM's `--api-key` keys also guard our routes, so one key set covers the whole server.
    """
    from openai_ocr.settings import load_settings

    sealed = getattr(args, SETTINGS_ARG, None)
    settings = sealed.open() if sealed is not None else load_settings()
    vllm_api_keys: list[str] | None = getattr(args, "api_key", None)
    keys = [k.get_secret_value() for k in settings.auth.api_keys]
    extra = [k for k in (vllm_api_keys or []) if k and k not in keys]
    if extra:
        auth = settings.auth.model_copy(update={"api_keys": [*settings.auth.api_keys, *(
            SecretStr(k) for k in extra)]})
        settings = settings.model_copy(update={"auth": auth})
    return settings


RESOLUTION_MODEL = "openai_ocr.vllm_plugin.resolution_model:ResolutionDeepseekOCRForCausalLM"


def register_models() -> None:
    """General-plugin entry point: DeepSeek-OCR with per-request resolution modes.

    Registered lazily (by import path), so vLLM imports the class only where it builds the
    model or its processor.
    """
    from vllm import ModelRegistry

    ModelRegistry.register_model("DeepseekOCRForCausalLM", RESOLUTION_MODEL)


def endpoint_plugin() -> OCREndpointPlugin:
    """Entry point factory (`vllm.endpoint_plugins`)."""
    return OCREndpointPlugin()

