"""Every program in examples/ runs unchanged against a real server and gets the OCR text back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import png_bytes, require_program, sample_pdf

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Invoice 2041\nTotal due 37.50"


@pytest.fixture()
def page(tmp_path: Path) -> str:
    path = tmp_path / "page.png"
    path.write_bytes(png_bytes())
    return str(path)


def run(command: list[str], gateway: str) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OPENAI_OCR_URL": gateway})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def sections(output: str) -> dict[str, str]:
    """`== name ==` headed sections of an example's output."""
    found: dict[str, str] = {}
    name = None
    for line in output.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            name = line[3:-3]
            found[name] = ""
        elif name is not None:
            found[name] += line + "\n"
    return {k: v.strip("\n") for k, v in found.items()}


@pytest.mark.parametrize("script, expected", [
    ("openai_sdk_example.py", ["sync", "async", "streaming"]),
    ("langchain_example.py", ["invoke", "stream"]),
    ("llamaindex_example.py", ["chat", "stream_chat"]),
    ("api_client_example.py", ["ocr_from_file", "ocr_from_base64", "ocr_stream",
                               "batch item 0: success", "batch item 1: success"]),
])
def test_python_examples(gateway: str, upstream: FakeUpstream, page: str, script: str,
                         expected: list[str]) -> None:
    upstream.default_reply = TEXT
    pages = [page, page] if script == "api_client_example.py" else [page]  # batch of two
    output = sections(run([sys.executable, f"examples/{script}", *pages], gateway))
    for name in expected:
        assert output.get(name) == TEXT, (name, output)
    assert upstream.requests, "nothing reached the engine"
    assert all(r["messages"][0]["content"][1]["text"] == "Free OCR." for r in upstream.requests)


@pytest.fixture()
def pdf(tmp_path: Path) -> str:
    path = tmp_path / "sample.pdf"
    path.write_bytes(sample_pdf())
    return str(path)


def test_openai_sdk_example_pdf(gateway: str, upstream: FakeUpstream, page: str, pdf: str) -> None:
    upstream.default_reply = TEXT
    output = sections(run([sys.executable, "examples/openai_sdk_example.py", page, pdf], gateway))
    assert output["pdf"] == f"{TEXT}\n\n<--- Page Split --->\n\n{TEXT}"


def test_javascript_example(gateway: str, upstream: FakeUpstream, page: str) -> None:
    node = require_program("node")
    upstream.default_reply = TEXT
    output = sections(run([node, "examples/javascript_example.mjs", page], gateway))
    assert output == {"/ocr/file": TEXT, "/ocr/stream": TEXT, "/v1/chat/completions": TEXT}


def test_curl_examples_reach_every_route(gateway: str, upstream: FakeUpstream, page: str, pdf: str) -> None:
    require_program("curl")
    upstream.default_reply = TEXT
    output = run(["bash", "examples/curl_examples.sh", page, pdf], gateway)
    escaped = TEXT.replace("\n", "\\n")
    for route in ("/health", "/ocr", "/ocr/file", "/ocr/stream", "/ocr/batch", "/v1/models",
                  "/v1/chat/completions", "/v1/ocr"):
        assert f" {route}" in output, route
    assert output.count(f'"text":"{escaped}"') >= 4  # /ocr, /ocr/file, batch x2
    assert '"type":"done"' in output and output.count("data: [DONE]") == 2
    assert '"markdown":"' + escaped + '"' in output  # /v1/ocr
