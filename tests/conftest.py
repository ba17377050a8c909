"""Shared fixtures: a fake upstream and a gateway, each a real uvicorn on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.fake_upstream import FakeUpstream
from tests.helpers import gateway_settings, running_server, serve


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
def upstream(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[FakeUpstream]:
    """The session's fake upstream, reset before and after the test."""
    fake, _ = fake_upstream
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="session")
def gateway_server(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[tuple[str, FastAPI]]:
    """(base URL, app) of a gateway in front of the fake upstream (default settings)."""
    _, upstream_url = fake_upstream
    with serve(gateway_settings(upstream_url, limits={"max_batch_items": 100})) as served:
        yield served


@pytest.fixture(scope="session")
def gateway(gateway_server: tuple[str, FastAPI]) -> str:
    return gateway_server[0]
