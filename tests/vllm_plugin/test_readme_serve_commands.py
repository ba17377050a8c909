"""The README's server commands parse with vLLM's own parser (tests/test_readme_commands.py
parses their openai-ocr half in the main suite, where vLLM is not installed).

`openai-ocr serve MODEL FLAGS` gives openai-ocr's parser its flags and the launcher the rest
(`build_args`: vLLM's `make_arg_parser` under our defaults), as `openai-ocr serve` does;
`VLLM_PLUGINS=openai_ocr vllm serve MODEL` is parsed as `vllm serve` parses it.
"""

from __future__ import annotations

import pytest

from openai_ocr.cli.main import build_parser
from tests.helpers import require, serve_commands

require("vllm", "pip install -e '.[cpu]' or '.[vllm]'")

COMMANDS = serve_commands()


def test_the_readme_has_both_kinds() -> None:
    assert {argv[0] for _, argv in COMMANDS} == {"openai-ocr", "vllm"}


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS if argv[0] == "openai-ocr"], ids=" ".join)
def test_openai_ocr_serve_flags_parse_with_vllms_parser(argv: list[str]) -> None:
    from openai_ocr.vllm_plugin.launcher import DEFAULT_MODEL, build_args

    parsed, passthrough = build_parser().parse_known_args(argv[1:])
    args = build_args(passthrough, model=parsed.model)  # vLLM's own parser: exits on an unknown flag
    assert args.model == (parsed.model or DEFAULT_MODEL)
    for flag, value in zip(passthrough[::2], passthrough[1::2], strict=True):  # e.g. --tensor-parallel-size 2
        assert str(getattr(args, flag.removeprefix("--").replace("-", "_"))) == value, flag


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS if argv[0] == "vllm"], ids=" ".join)
def test_vllm_serve_parses_with_vllms_parser(argv: list[str]) -> None:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = make_arg_parser(FlexibleArgumentParser(prog="vllm serve")).parse_args(argv[2:])
    assert args.model_tag == argv[2]
