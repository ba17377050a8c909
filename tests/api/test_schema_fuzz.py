"""Property-based requests generated from our OpenAPI schema: no route answers 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fake_upstream import FakeUpstream

LEGACY = r"^/(ocr|ocr/file|ocr/stream|ocr/batch|health|ready|live|v1/models)$"


def test_no_route_answers_5xx_to_schema_generated_requests(
        gateway: str, fake_upstream: tuple[FakeUpstream, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway}/openapi.json").include(path_regex=LEGACY)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def no_server_error(case) -> None:
            fake_upstream[0].reset()
            response = case.call(timeout=30)
            assert response.status_code < 500, (case.method, case.path, case.body,
                                                response.text[:300])
            if response.status_code >= 400:
                assert response.json()["error"]["message"]

        no_server_error()
        checked.append(operation.label)
    assert len(checked) == 8, checked
