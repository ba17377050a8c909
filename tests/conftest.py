"""Shared fixtures: a fake upstream and a gateway, each a real uvicorn on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.server import create_app
from tests.fake_upstream import FakeUpstream
from tests.helpers import gateway_settings, running_server


def pytest_configure(config: pytest.Config) -> None:
    """Servers the tests start keep their files and batches in a temporary folder, never
    in the user's data directory (tests that need their own set OPENAI_OCR_STORAGE__DIR)."""
    os.environ.setdefault("OPENAI_OCR_STORAGE__DIR", tempfile.mkdtemp(prefix="openai-ocr-tests-"))


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    with running_server(fake.app) as url:
        yield fake, f"{url}/v1"


@pytest.fixture()
def upstream(fake_upstream: tuple[FakeUpstream, str]) -> FakeUpstream:
    fake, _ = fake_upstream
    fake.reset()
    return fake


@pytest.fixture(scope="session")
def gateway(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    """Base URL of a gateway in front of the fake upstream (default settings)."""
    _, upstream_url = fake_upstream
    settings = gateway_settings(upstream_url, limits={"max_batch_items": 100})
    app = create_app(settings, UpstreamEngine(settings.upstream, settings.engine.model))
    with running_server(app) as url:
        yield url
