"""config.toml and the README's settings table are generated from the settings' descriptions."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from openai_ocr.settings import Settings, iter_settings, load_settings, reveal_secrets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gen_settings_docs as gen  # noqa: E402


@pytest.fixture()
def no_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OPENAI_OCR_* variable and no ./config.toml: load_settings() gives the code's defaults."""
    for name in list(os.environ):
        if name.startswith("OPENAI_OCR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_config_toml_is_the_generated_one() -> None:
    assert (ROOT / "config.toml").read_text() == gen.render_config(), \
        "run: python scripts/gen_settings_docs.py"


def test_readme_table_is_the_generated_one() -> None:
    text = (ROOT / "README.md").read_text()
    assert gen.render_readme(text) == text, "run: python scripts/gen_settings_docs.py"


def test_generated_config_loads_as_the_defaults(no_settings_env: Path) -> None:
    path = no_settings_env / "generated.toml"
    path.write_text(gen.render_config())
    defaults = load_settings()
    assert reveal_secrets(load_settings(path)) == reveal_secrets(defaults)


def test_every_setting_is_in_the_file_and_the_table() -> None:
    parsed = tomllib.loads(gen.render_config())
    text = (ROOT / "README.md").read_text()
    settings = iter_settings()
    assert len(settings) > 40
    for setting in settings:
        node = parsed
        for part in setting.path:
            node = node[part]
        assert f"| `{setting.key}` |" in text
        assert setting.field.description, f"{setting.key} has no description"
    # spot checks written out by hand: the generator's path, env and flag naming
    assert parsed["ocr"]["ngram_guard"]["whitelist_token_ids"] == [128821, 128822]
    assert parsed["limits"]["max_file_bytes"] == 52428800
    assert "| `upstream.url` | `\"\"` | `OPENAI_OCR_UPSTREAM__URL` | `--upstream-url URL` |" in text
    assert "`OPENAI_OCR_OCR__NGRAM_GUARD__NGRAM_SIZE`" in text
    assert "`--api-key KEY` (repeatable)" in text


def test_the_table_escapes_markdown() -> None:
    rows = {line.split("`")[1]: line for line in gen.render_table().splitlines()[2:]}
    assert "&lt;td&gt;" in rows["ocr.ngram_guard.whitelist_token_ids"]
    assert "<td>" not in rows["ocr.ngram_guard.whitelist_token_ids"]
    # "auto | upstream | ..." in the description: escaped, so the row keeps its six cell borders
    assert "auto \\| upstream" in rows["engine.kind"]
    assert len(re.findall(r"(?<!\\)\|", rows["engine.kind"])) == 6


class _Extra(BaseModel):
    limit: int = Field(7, description="A setting of a section added later.")
    names: list[str] = Field(["a"], description="A list.")


class _Inner(BaseModel):
    on: bool = Field(False, description="A nested flag.")


class _Later(BaseModel):
    ratio: float = Field(0.25, description="Before the subsection.")
    inner: _Inner = Field(_Inner(), description="A subsection.")


class _Wider(Settings):
    extra: _Extra = Field(_Extra(), description="A section another change adds at the end.")
    later: _Later = Field(_Later(), description="A section with a subsection.")


def test_sections_added_later_are_documented_without_changing_the_generator() -> None:
    text = gen.render_config(_Wider.model_construct())
    assert text.endswith("# A section another change adds at the end.\n[extra]\n"
                         "# A setting of a section added later.\nlimit = 7\n# A list.\nnames = [\"a\"]\n\n"
                         "# A section with a subsection.\n[later]\n# Before the subsection.\nratio = 0.25\n\n"
                         "# A subsection.\n[later.inner]\n# A nested flag.\non = false\n")
    assert tomllib.loads(text)["later"]["inner"]["on"] is False
    assert "| `later.inner.on` | `false` | `OPENAI_OCR_LATER__INNER__ON` |  | A nested flag. |" \
        in gen.render_table(_Wider.model_construct())


def test_a_setting_without_description_is_an_error() -> None:
    class Bare(BaseModel):
        size: int = 3

    class WithBare(Settings):
        bare: Bare = Field(Bare(), description="A section.")

    with pytest.raises(ValueError, match="bare.size has no description"):
        gen.render_config(WithBare.model_construct())


def test_check_mode_fails_on_drift_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, readme = tmp_path / "config.toml", tmp_path / "README.md"
    config.write_text(gen.render_config().replace("port = 8000", "port = 8001"))
    readme.write_text((ROOT / "README.md").read_text())
    monkeypatch.setattr(gen, "CONFIG", config)
    monkeypatch.setattr(gen, "README", readme)
    assert gen.main(["--check"]) == 1
    assert "port = 8001" in config.read_text()
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert config.read_text() == (ROOT / "config.toml").read_text()
