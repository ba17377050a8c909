"""Property-based requests generated from our OpenAPI schema: no route answers 5xx.

Every route of the gateway's schema, the OpenAI and Mistral routes included, one test each;
the upstream behind it is the strict fake (its refusals are 4xx passed on).
"""

from __future__ import annotations

import functools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fake_upstream import FakeUpstream

OPERATIONS = ["POST /ocr", "POST /ocr/file", "POST /ocr/stream", "POST /ocr/batch", "GET /health",
              "GET /ready", "GET /live", "GET /v1/models", "POST /v1/chat/completions", "POST /v1/ocr", "GET /metrics",
              "POST /v1/files", "GET /v1/files", "GET /v1/files/{file_id}", "GET /v1/files/{file_id}/content",
              "DELETE /v1/files/{file_id}", "POST /v1/batches", "GET /v1/batches", "GET /v1/batches/{batch_id}",
              "POST /v1/batches/{batch_id}/cancel"]


@functools.cache
def gateway_schema(url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_schema_has_no_route_left_out(gateway: str) -> None:
    labels = {result.ok().label for result in gateway_schema(gateway).get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_route_answers_5xx_to_schema_generated_requests(
        gateway: str, fake_upstream: tuple[FakeUpstream, str], label: str) -> None:
    operation = gateway_schema(gateway).find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def no_server_error(case) -> None:
        fake_upstream[0].reset()
        response = case.call(timeout=30)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
        if response.status_code >= 400:
            assert response.json()["error"]["message"]

    no_server_error()
