"""Shared fixtures: a fake upstream and a gateway, each a real uvicorn on loopback."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests import skip_policy
from tests.fake_upstream import FakeUpstream
from tests.helpers import gateway_settings, running_server, serve, store_gateway
from tests.shared_state import PostgresCluster, S3Server, postgres_cluster, s3_server


def pytest_configure(config: pytest.Config) -> None:
    """Servers the tests start keep their files and batches in a temporary folder, never
    in the user's data directory (tests that need their own set OPENAI_OCR_STORAGE__DIR).
    Under CI=true a skip fails the run (tests/skip_policy.py): this conftest is the rootdir
    one of the engine and cluster runs too, so they get the rule as well."""
    os.environ.setdefault("OPENAI_OCR_STORAGE__DIR", tempfile.mkdtemp(prefix="openai-ocr-tests-"))
    skip_policy.install(config)


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


@pytest.fixture()
def batch_gateway(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream,
                  tmp_path: Path) -> Iterator[str]:
    """A gateway with a store of its own (files and batches start empty), in front of the
    fake upstream; yields its base URL."""
    with store_gateway(fake_upstream[1], tmp_path / "store") as url:
        yield url


@pytest.fixture()
def venv_bin(tmp_path: Path) -> Path:
    """`.venv/bin` of a fresh clone, for commands printed with it: `python` and `openai-ocr`
    of this test run (on a fresh clone `make test` makes them the same thing)."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    for name, target in (("python", ""), ("openai-ocr", " -m openai_ocr.cli.main")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable}{target} "$@"\n')
        script.chmod(0o755)
    return bin_dir


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this test session (Debian's binaries, an unprivileged user, a
    temporary folder, a free port); each test takes a database of its own (`new_database`)."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server of this test session; each test takes a bucket of its own."""
    with s3_server() as server:
        yield server
