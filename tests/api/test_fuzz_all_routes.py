"""schemathesis over every route of the OpenAPI schema, the OpenAI and Mistral routes included.

Runs schemathesis' own runner (its examples, coverage and fuzzing phases) as a process
against a real gateway in front of the strict fake upstream, with two checks: no answer is a
5xx, and every error answer says what was wrong (tests/schemathesis_checks.py). The coverage
phase sends what the schema forbids (wrong types, missing fields, other content types),
which is where non-UTF-8 JSON and boundary-less multipart bodies used to be 500s. The one
fuzzer of the suite: each route's schema examples run once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream
from tests.helpers import ROOT

OPERATIONS = {"POST /ocr", "POST /ocr/file", "POST /ocr/stream", "POST /ocr/batch", "GET /health",
              "GET /ready", "GET /live", "GET /v1/models", "POST /v1/chat/completions", "POST /v1/ocr", "GET /metrics",
              "POST /v1/files", "GET /v1/files", "GET /v1/files/{file_id}", "GET /v1/files/{file_id}/content",
              "DELETE /v1/files/{file_id}", "POST /v1/batches", "GET /v1/batches", "GET /v1/batches/{batch_id}",
              "POST /v1/batches/{batch_id}/cancel", "GET /v1/usage"}
"""The API routes the schema must list: none left out, none added unnoticed."""


def test_the_schema_lists_every_route(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    listed = {f"{method.upper()} {path}" for path, methods in schema["paths"].items() for method in methods}
    assert listed == OPERATIONS


def test_schemathesis_finds_no_server_error_on_any_route(
        gateway: str, fake_upstream: tuple[FakeUpstream, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{gateway}/openapi.json",
         "--phases", "examples,coverage,fuzzing", "--checks", "not_a_server_error,error_answers_say_what_was_wrong",
         "--max-examples", "15", "--workers", "1", "--generation-database", "none",
         "--suppress-health-check", "all", "--request-timeout", "60", "--no-color"],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_checks", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-6000:]  # an unknown --checks name (hooks not loaded) fails too
    count = len(OPERATIONS)
    assert f"Selected: {count}/{count}" in done.stdout and f"Tested: {count}" in done.stdout, done.stdout
    for phase in ("Examples", "Coverage", "Fuzzing"):
        assert f"✅ {phase}" in done.stdout, done.stdout[-3000:]
