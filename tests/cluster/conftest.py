"""One cluster for the whole test session (two nodes start in about two minutes here; the
router and the gateway start beside them and wait for them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.cluster import START_TIMEOUT_S, Cluster, engine_node, gateway, router
from tests.helpers import ServerProcess, require
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")
    require("vllm_router", "the engine-tests extra")
    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-deepseek-ocr"))
    logs = tmp_path_factory.mktemp("cluster-logs")
    nodes = [engine_node(checkpoint, i, logs) for i in range(2)]
    front = router(nodes, logs)
    gate = gateway(front.url, logs)
    started: list[ServerProcess] = []
    try:
        for process in (*nodes, front, gate):  # all at once: the router and gateway wait for what is behind them
            process.start()
            started.append(process)
        for process in started:
            process.wait_ready(START_TIMEOUT_S, poll_s=0.5)
        yield Cluster(nodes, front, gate)
    finally:
        for process in reversed(started):
            process.stop()
