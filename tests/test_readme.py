"""The README shows the tested examples verbatim, and its commands exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from sync_readme_examples import BLOCK, synced  # noqa: E402


def test_readme_examples_match_the_tested_files() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = [m.group("path") for m in BLOCK.finditer(text)]
    assert {"examples/openai_sdk_example.py", "examples/langchain_example.py",
            "examples/llamaindex_example.py", "examples/curl_examples.sh",
            "examples/javascript_example.mjs", "examples/api_client_example.py"} <= set(blocks)
    assert synced(text) == text, "run: python scripts/sync_readme_examples.py"


def test_readme_set_up_commands_are_make_targets() -> None:
    text = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", text, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
