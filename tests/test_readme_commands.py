"""The README followed literally: every shell command it prints, in order, is run or checked.

Commands come from the README's `bash` blocks (outside the example files) and from the
`# Run:` line of each example it shows. Each command is either run as printed or checked by
the means listed in HOW, with the reason; a command the README gains without an entry here
fails the test, so nothing is skipped silently. Run as printed means two substitutions
only: `http://localhost:8000` is the test's server (a gateway in front of the fake upstream),
and `.venv/bin/` is this test run's environment (on a fresh clone `make test` makes them the
same thing).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from openai_ocr.cli.main import build_parser
from tests.fake_upstream import FakeUpstream
from tests.helpers import ROOT, RUN_LINE, blank_pdf, make_env, png_bytes, readme_commands, serve_commands

RUN = "run as printed"
DRY = "make -n: the recipe it runs (a real run installs .venv: minutes, and is what `make test` itself does)"
EXAMPLE = ("the `# Run:` line of an example: tests/test_examples.py runs every example by that line "
           "(the README shows each file verbatim: tests/test_readme.py)")
PARSED = ("starts a vLLM server (the vllm extra, a GPU, a model download): parsed by openai-ocr's parser "
          "here, and by vLLM's in tests/vllm_plugin/test_readme_serve_commands.py")
ASGI = ("an ASGI server's run form (several workers, in front of a GPU node): parsed by uvicorn's and "
        "gunicorn's own parsers here, its OPENAI_OCR_ variables read by the settings")
HOW: list[tuple[str, str]] = [
    (r"^(OPENAI_OCR_\w+=\S+ )?make (serve|test|test-cluster|examples)\b", DRY),
    (r"^\.venv/bin/openai-ocr ocr ", RUN),
    (r"^OPENAI_OCR_URL=http://localhost:8000 (\.venv/bin/python|bash|node) examples/", EXAMPLE),
    (r"^(openai-ocr serve|VLLM_PLUGINS=\w+ vllm serve)\b", PARSED),
    (r"^(\w+=\S+ )*(uvicorn|gunicorn) openai_ocr\.server:app ", ASGI),
]


def how(command: str) -> str:
    matches = [way for pattern, way in HOW if re.search(pattern, command)]
    assert matches, f"the README has a command this test does not know: {command!r}"
    return matches[0]


def test_every_readme_command_is_known() -> None:
    commands = readme_commands()
    assert any(c.startswith(".venv/bin/openai-ocr ocr") for c in commands)
    for command in commands:
        print(f"{how(command):.14} | {command}")


def test_the_readme_commands_run_as_printed(tmp_path: Path, gateway: str, upstream: FakeUpstream,
                                            venv_bin: Path) -> None:
    work = tmp_path / "clone"
    work.mkdir()
    (work / "scan.png").write_bytes(png_bytes())
    (work / "report.pdf").write_bytes(blank_pdf(4))
    ran = []
    for command in readme_commands():
        way = how(command)
        if way == RUN:
            line = command.replace("http://localhost:8000", gateway).replace(".venv/bin/", f"{venv_bin}/")
            done = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
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
    assert len(ran) == 1, ran  # the CLI


def test_the_example_commands_are_the_examples_own_run_lines() -> None:
    """What tests/test_examples.py runs is what the README prints."""
    own = {m.group(1).strip() for path in (ROOT / "examples").iterdir() if (m := RUN_LINE.search(path.read_text()))}
    printed = [c for c in readme_commands() if how(c) == EXAMPLE]
    assert printed and set(printed) == own


@pytest.mark.parametrize("args", [m.group(2) for c in readme_commands()
                                  if (m := re.search(r'^(\w+=\S+ )?make serve ARGS="([^"]*)"', c))])
def test_make_serve_args_are_server_flags(args: str) -> None:
    """`make serve ARGS=...` passes ARGS to `openai-ocr serve`: its own flags, no model, so
    nothing is left over for vLLM."""
    parsed, passthrough = build_parser().parse_known_args(["serve", *shlex.split(args)])
    assert parsed.command == "serve" and parsed.model is None and passthrough == [], passthrough


@pytest.mark.parametrize("env, argv", serve_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_serve_commands_parse(env: dict[str, str], argv: list[str]) -> None:
    """`openai-ocr serve` lines parse with openai-ocr's own parser (what remains are vLLM flags,
    parsed by vLLM's parser in the engine tests); `VLLM_PLUGINS` names our plugins' entry
    points, which is how plain `vllm serve` finds them."""
    if argv[0] == "openai-ocr":
        parsed, passthrough = build_parser().parse_known_args(argv[1:])
        assert parsed.command == "serve"
        assert parsed.model == (argv[2] if argv[2:] and not argv[2].startswith("-") else None)
        assert not passthrough or passthrough[0].startswith("--"), passthrough  # flags, nothing stray
    for name in filter(None, env.get("VLLM_PLUGINS", "").split(",")):
        assert name in {e.name for e in entry_points(group="vllm.endpoint_plugins")}, name
        assert name in {e.name for e in entry_points(group="vllm.general_plugins")}, name
    assert env.keys() <= {"VLLM_PLUGINS"}, env


@pytest.mark.parametrize("command", [c for c in readme_commands() if re.search(r"(uvicorn|gunicorn) openai_ocr", c)])
def test_asgi_run_forms_parse(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    words = shlex.split(command)
    env = dict(w.split("=", 1) for w in words if re.match(r"^\w+=", w))
    argv = words[len(env):]
    if argv[0] == "uvicorn":
        from uvicorn.main import main as uvicorn_cli

        params = uvicorn_cli.make_context("uvicorn", argv[1:]).params
        app, workers = params["app"], params["workers"]
    else:
        from gunicorn.config import Config

        parsed = Config().parser().parse_args(argv[1:])
        app, workers = parsed.args[0], parsed.workers
        assert parsed.worker_class == "uvicorn.workers.UvicornWorker"
    assert app == "openai_ocr.server:app" and workers > 1
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert env.keys() <= {"OPENAI_OCR_UPSTREAM__URL", "PROMETHEUS_MULTIPROC_DIR"}, env
    from openai_ocr.settings import load_settings

    assert load_settings().upstream.url == env["OPENAI_OCR_UPSTREAM__URL"]
