"""The fake upstream refuses what vLLM refuses (the table of tests/refusals.py), with vLLM's
status, error type and message; tests/vllm_plugin/test_upstream_refusals.py runs the same
table against the real vLLM server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import ENGINE_API_KEY
from tests.refusals import REFUSALS, Refusal, check


@pytest.fixture()
def keyed_fake(fake_upstream: tuple[FakeUpstream, str], upstream: FakeUpstream) -> Iterator[str]:
    """The session's fake upstream, guarded by the engine tests' key as their vLLM server is."""
    upstream.api_key = ENGINE_API_KEY
    yield fake_upstream[1]


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_the_fake_refuses_as_vllm_does(keyed_fake: str, upstream: FakeUpstream, case: Refusal) -> None:
    body, headers = case.request()
    check(httpx.post(f"{keyed_fake}/chat/completions", json=body, headers=headers, timeout=30), case)
    assert upstream.requests == []  # refused before any work


def test_the_table_request_itself_is_served(keyed_fake: str, upstream: FakeUpstream) -> None:
    """The valid request every case changes one thing of is answered (so each refusal is the change's)."""
    body, headers = Refusal("valid", 200, None, "").request()
    r = httpx.post(f"{keyed_fake}/chat/completions", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
