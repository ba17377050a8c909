from pathlib import Path

import pytest
from pydantic import ValidationError

from openai_ocr.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_repo_config_matches_code_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_OCR_CONFIG", raising=False)
    from_file = load_settings(ROOT / "config.toml")
    monkeypatch.chdir(ROOT / "tests")  # no config.toml there
    assert from_file == load_settings()


def test_precedence_toml_then_env_then_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nport = 1111\nhost = "1.2.3.4"\n[ocr.ngram_guard]\nngram_size = 20\n')
    assert load_settings(config).server.port == 1111
    assert load_settings(config).ocr.ngram_guard.ngram_size == 20
    monkeypatch.setenv("OPENAI_OCR_SERVER__PORT", "2222")
    settings = load_settings(config)
    assert (settings.server.port, settings.server.host) == (2222, "1.2.3.4")
    assert load_settings(config, {"server": {"port": 3333}}).server.port == 3333
    monkeypatch.setenv("OPENAI_OCR_CONFIG", str(config))
    assert load_settings().server.host == "1.2.3.4"


def test_invalid_values_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[ocr]\ndefault_mode = "poetry"\n')
    with pytest.raises(ValidationError, match="default_mode"):
        load_settings(bad)
    with pytest.raises(ValidationError):
        load_settings(overrides={"upstream": {"url": "not a url"}})
    with pytest.raises(ValidationError):
        load_settings(overrides={"server": {"unknown_key": 1}})


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")
