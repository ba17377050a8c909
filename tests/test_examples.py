"""Every program in examples/ runs unchanged against a real server and gets the OCR text back.

Each runs once, by its own `# Run:` line (the line the README prints above it), with two
substitutions only: `http://localhost:8000` is the test's gateway and `.venv/bin/` this test
run's environment. Optional arguments (`[document.pdf]`, `[more.png ...]`) are given, so
every path of an example runs. tests/test_readme_commands.py relies on this module for the
README's example commands rather than running them a second time.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from openai_ocr.ocr.prompts import MODES
from tests.fake_upstream import FakeUpstream
from tests.helpers import ROOT, RUN_LINE, png_bytes, require_program, sample_pdf

TEXT = "Invoice 2041\nTotal due 37.50"
PYTHON = {  # example -> the sections its output must show, each holding TEXT
    "openai_sdk_example.py": ["sync", "async", "streaming"],
    "langchain_example.py": ["invoke", "stream"],
    "llamaindex_example.py": ["chat", "stream_chat"],
    "api_client_example.py": ["ocr_from_file", "ocr_from_base64", "ocr_stream",
                              "batch item 0: success", "batch item 1: success"],
}


def run_line(example: str) -> str:
    found = RUN_LINE.search((ROOT / "examples" / example).read_text())
    assert found, f"examples/{example} has no `Run:` line"
    return found.group(1).strip()


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A checkout's working directory as the Run lines expect it: the examples, and the input
    files they name."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "page.png").write_bytes(png_bytes())
    (tmp_path / "more.png").write_bytes(png_bytes(80, 60))
    (tmp_path / "document.pdf").write_bytes(sample_pdf())
    return tmp_path


def run(example: str, gateway: str, work: Path, venv_bin: Path) -> str:
    """The example's Run line, as printed but for the gateway, this run's `.venv/bin` and its
    optional arguments given."""
    line = run_line(example).replace("http://localhost:8000", gateway).replace(".venv/bin/", f"{venv_bin}/")
    line = re.sub(r"\[(\S+)(?: \.\.\.)?\]", r"\1", line)
    done = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, (line, done.stderr[-3000:])
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


def test_every_example_is_run_here() -> None:
    tested = {*PYTHON, "javascript_example.mjs", "curl_examples.sh"}
    assert {p.name for p in (ROOT / "examples").iterdir() if p.is_file()} == tested


@pytest.mark.parametrize("example", PYTHON)
def test_python_examples(gateway: str, upstream: FakeUpstream, work: Path, venv_bin: Path, example: str) -> None:
    upstream.default_reply = TEXT
    output = sections(run(example, gateway, work, venv_bin))
    for name in PYTHON[example]:
        assert output.get(name) == TEXT, (name, output)
    prompts = [r["messages"][0]["content"][1]["text"] for r in upstream.requests]
    if example == "openai_sdk_example.py":  # its optional PDF: two pages, in markdown, joined
        assert output["pdf"] == f"{TEXT}\n\n<--- Page Split --->\n\n{TEXT}"
        assert prompts[-2:] == [MODES["markdown"]] * 2
        prompts = prompts[:-2]
    assert prompts and set(prompts) == {"Free OCR."}, prompts


def test_javascript_example(gateway: str, upstream: FakeUpstream, work: Path, venv_bin: Path) -> None:
    require_program("node")
    upstream.default_reply = TEXT
    output = sections(run("javascript_example.mjs", gateway, work, venv_bin))
    assert output == {"/ocr/file": TEXT, "/ocr/stream": TEXT, "/v1/chat/completions": TEXT}


def test_curl_examples_reach_every_route(gateway: str, upstream: FakeUpstream, work: Path, venv_bin: Path) -> None:
    require_program("curl")
    upstream.default_reply = TEXT
    output = run("curl_examples.sh", gateway, work, venv_bin)
    escaped = TEXT.replace("\n", "\\n")
    for route in ("/health", "/ocr", "/ocr/file", "/ocr/stream", "/ocr/batch", "/v1/models",
                  "/v1/chat/completions", "/v1/ocr"):
        assert f" {route}" in output, route
    assert output.count(f'"text":"{escaped}"') >= 4  # /ocr, /ocr/file, batch x2
    assert '"type":"done"' in output and output.count("data: [DONE]") == 2
    assert '"markdown":"' + escaped + '"' in output  # /v1/ocr
