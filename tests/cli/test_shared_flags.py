"""`ocr` and `batch` share their OCR flags and check them the same way, before sending anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_ocr.cli.main import main
from tests.helpers import free_port, png_bytes

COMMANDS = ["ocr", "batch"]


def refused(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """stderr of a run that must stop with exit status 2 (nothing listens on --server)."""
    page = tmp_path / "page.png"
    page.write_bytes(png_bytes())
    with pytest.raises(SystemExit) as stopped:
        main([command, str(page), "--server", f"http://127.0.0.1:{free_port()}", *flags])
    assert stopped.value.code == 2
    assert not (tmp_path / "page.md").exists()
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_a_number_for_resolution_points_at_dpi(command: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(command, tmp_path, capsys, "--resolution", "200")  # the old `batch --resolution DPI`
    assert "--resolution" in err and "tiny" in err and "use --dpi 200" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_resolution_lists_the_modes(command: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(command, tmp_path, capsys, "--resolution", "huge")
    assert "invalid choice: 'huge'" in err and "gundam" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_locate_needs_a_ref(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(command, tmp_path, capsys, "--mode", "locate")
    assert "--mode locate needs --ref" in err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("flags", "message"), [
    (["--dpi", "10"], "--dpi: Input should be greater than or equal to 36"),
    (["--max-tokens", "0"], "--max-tokens: Input should be greater than or equal to 1"),
])
def test_out_of_range_options_name_their_flag(command: str, flags: list[str], message: str,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in refused(command, tmp_path, capsys, *flags)


def test_both_commands_offer_the_same_ocr_flags(capsys: pytest.CaptureFixture[str]) -> None:
    helps = {}
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    for flag in ("--mode", "--ref", "--prompt", "--pages", "--dpi", "--resolution", "--max-tokens",
                 "--api-key", "OPENAI_OCR_API_KEY", "OPENAI_API_KEY", "PDF render resolution",
                 "vision resolution mode"):
        assert flag in helps["ocr"] and flag in helps["batch"], flag
