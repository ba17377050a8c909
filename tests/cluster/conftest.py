"""One cluster for the whole test session (two nodes start in about two minutes here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.cluster import Cluster, Process, engine_node, gateway, router
from tests.vllm_plugin.tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-deepseek-ocr"))
    logs = tmp_path_factory.mktemp("cluster-logs")
    nodes = [engine_node(checkpoint, i, logs) for i in range(2)]
    started: list[Process] = []
    try:
        for node in nodes:  # both load at once
            node.start()
            started.append(node)
        for node in nodes:
            node.wait_ready()
        front = router(nodes, logs)
        front.start()
        started.append(front)
        front.wait_ready(120)
        gate = gateway(front.url, logs)
        gate.start()
        started.append(gate)
        gate.wait_ready(120)
        yield Cluster(nodes, front, gate)
    finally:
        for process in reversed(started):
            process.stop()
