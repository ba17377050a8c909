"""How many engine slots batch lines may hold."""

from __future__ import annotations

import pytest

from openai_ocr.engines.gated import gated, share_slots
from openai_ocr.engines.lite.engine import LiteEngine
from openai_ocr.engines.upstream import UpstreamEngine
from openai_ocr.settings import load_settings


@pytest.mark.parametrize(("share", "in_flight", "slots"), [(0.5, 64, 32), (0.25, 8, 2), (0.1, 4, 1),
                                                           (1.0, 8, 8)])
def test_a_share_of_the_gate_for_engines_that_batch_inside(share: float, in_flight: int, slots: int) -> None:
    settings = load_settings(overrides={"batches": {"engine_share": share},
                                        "limits": {"max_in_flight": in_flight},
                                        "upstream": {"url": "http://127.0.0.1:9/v1"}})
    engine = gated(UpstreamEngine(settings.upstream, settings.engine.model), settings)
    assert share_slots(settings, engine) == slots


@pytest.mark.parametrize(("share", "workers", "slots"), [(0.5, 1, 1), (1.0, 1, 2), (0.5, 4, 4)])
def test_a_share_of_twice_the_lite_workers(share: float, workers: int, slots: int) -> None:
    settings = load_settings(overrides={"batches": {"engine_share": share}, "lite": {"workers": workers}})
    assert share_slots(settings, gated(LiteEngine(settings), settings)) == slots
