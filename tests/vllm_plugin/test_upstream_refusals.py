"""The real vLLM server refuses what tests/refusals.py says it does: the half of the table that
keeps tests/fake_upstream.py honest (tests/api/test_fake_upstream_refusals.py runs the other).

Every case is refused before the engine runs: no vision tower, so the whole table costs
about what one request's image preprocessing does.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import require
from tests.refusals import REFUSALS, Refusal, check

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_vllm_refuses_as_the_fake_does(vllm_server: str, case: Refusal) -> None:
    body, headers = case.request()
    check(httpx.post(f"{vllm_server}/v1/chat/completions", json=body, headers=headers, timeout=120), case)

