"""The README followed literally: every shell command it prints, in order, is run or checked.

Commands come from the README's `bash` blocks (outside the example files) and from the
`# Run:` line of each example it shows. Two substitutions only: `http://localhost:8000` is
the test's server (a gateway in front of the fake upstream), and `.venv/bin/` is this test
run's environment (on a fresh clone `make test` makes them the same thing). Each command is
either run as printed or checked by the means listed in HOW, with the reason; a command the
README gains without an entry here fails the test, so nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import blank_pdf, make_env, png_bytes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_BLOCK = re.compile(r"<!-- example: \S+ -->\n```\w*\n.*?```\n<!-- /example -->", re.S)
SHELL_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
RUN_LINE = re.compile(r"^(?:#|//) Run: (.+)$", re.M)

RUN = "run as printed"
DRY = "make -n: the recipe it runs (a real run installs .venv: minutes, and is what `make test` itself does)"
ENGINE = "needs the vllm extra and a model: the engine tests start this launcher (tests/vllm_plugin)"
HOW: list[tuple[str, str]] = [
    (r"^(OPENAI_OCR_\w+=\S+ )?make (serve|test|test-cluster|examples)\b", DRY),
    (r"^\.venv/bin/openai-ocr ocr ", RUN),
    (r"^OPENAI_OCR_URL=http://localhost:8000 (\.venv/bin/python|bash|node) examples/", RUN),
    (r"^(openai-ocr serve|VLLM_PLUGINS=openai_ocr vllm serve)\b", ENGINE),
]


def readme_commands() -> list[str]:
    """Every command line of the README, in order."""
    text = (ROOT / "README.md").read_text()
    found: list[tuple[int, str]] = [(m.start(), m.group(1).strip()) for m in RUN_LINE.finditer(text)]
    bare = EXAMPLE_BLOCK.sub(lambda m: " " * len(m.group()), text)
    for block in SHELL_BLOCK.finditer(bare):
        for offset, line in enumerate(block.group(1).splitlines()):
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append((block.start(1) + offset, command))
    return [command for _, command in sorted(found)]


def how(command: str) -> str:
    matches = [way for pattern, way in HOW if re.search(pattern, command)]
    assert matches, f"the README has a command this test does not know: {command!r}"
    return matches[0]


@pytest.fixture()
def venv_bin(tmp_path: Path) -> Path:
    """`.venv/bin` of a fresh clone: python and openai-ocr of this test run."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    for name, target in (("python", ""), ("openai-ocr", " -m openai_ocr.cli.main")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable}{target} "$@"\n')
        script.chmod(0o755)
    return bin_dir


def test_every_readme_command_is_known() -> None:
    commands = readme_commands()
    assert any(c.startswith(".venv/bin/openai-ocr ocr") for c in commands)
    for command in commands:
        print(f"{how(command):.14} | {command}")


def test_the_readme_commands_run_as_printed(tmp_path: Path, gateway: str, upstream: FakeUpstream,
                                            venv_bin: Path) -> None:
    work = tmp_path / "clone"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    (work / "page.png").write_bytes(png_bytes())
    (work / "scan.png").write_bytes(png_bytes())
    (work / "report.pdf").write_bytes(blank_pdf(4))
    (work / "document.pdf").write_bytes(blank_pdf(2))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = []
    for command in readme_commands():
        way = how(command)
        if way == RUN:
            line = command.replace("http://localhost:8000", gateway).replace(".venv/bin/", f"{venv_bin}/")
            line = re.sub(r"\s*\[[^\]]*\]", "", line)  # optional arguments: `[document.pdf]`
            done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
            ran.append(command)
        elif way == DRY:
            words = command.split()
            target = words[words.index("make") + 1]
            done = subprocess.run(["bash", "-c", command.replace("make ", "make -n ", 1)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60, env=make_env())
            assert done.returncode == 0, (command, done.stderr)
            if target == "serve":
                args = re.search(r'ARGS="([^"]*)"', command)
                assert done.stdout.strip().endswith(f"openai-ocr serve {args.group(1) if args else ''}".strip())
    assert (work / "report.md").exists() and (work / "scan.md").exists()
    assert len(ran) == 7, ran  # the CLI and six examples
