"""Which engine `openai-ocr serve` runs, and why (logged at start-up)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from openai_ocr.settings import Settings


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
