"""schemathesis over every route of the OpenAPI schema, the OpenAI and Mistral routes included.

Runs schemathesis' own runner (its examples, coverage and fuzzing phases) as a process
against a real gateway, with the one check that matters here: no answer is a 5xx. The
coverage phase sends what the schema forbids (wrong types, missing fields, other content
types), which is where non-UTF-8 JSON and boundary-less multipart bodies used to be 500s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream


def test_schemathesis_finds_no_server_error_on_any_route(
        gateway: str, fake_upstream: tuple[FakeUpstream, str], tmp_path: Path) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    operations = [(method, path) for path, methods in schema["paths"].items() for method in methods]
    assert {("post", "/v1/chat/completions"), ("post", "/v1/ocr"), ("get", "/v1/models"),
            ("post", "/ocr"), ("post", "/ocr/file"), ("post", "/ocr/stream"),
            ("post", "/ocr/batch")} <= set(operations)
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{gateway}/openapi.json",
         "--phases", "examples,coverage,fuzzing", "--checks", "not_a_server_error",
         "--max-examples", "15", "--workers", "1", "--generation-database", "none",
         "--suppress-health-check", "all", "--request-timeout", "60", "--no-color"],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:]
    count = len(operations)
    assert f"Selected: {count}/{count}" in done.stdout and f"Tested: {count}" in done.stdout, done.stdout
    for phase in ("Examples", "Coverage", "Fuzzing"):
        assert f"✅ {phase}" in done.stdout, done.stdout[-3000:]
