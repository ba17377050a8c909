"""Generate `config.toml` and the README's settings table from the settings' own descriptions.

Every setting is documented once, by `Field(description=...)` in `openai_ocr/settings.py`;
this script writes what is derived from it:

- `config.toml` at the repository root: every section and key, the description as a comment,
  the default as the value (so the server behaves the same with or without the file);
- the table between `<!-- settings -->` and `<!-- /settings -->` in README.md: key, default,
  environment variable, `openai-ocr serve` flag, description.

Run `python scripts/gen_settings_docs.py` after changing a setting; `--check` writes nothing
and exits 1 when either file differs from what it would write (a test does the same).
Sections are found by walking `Settings`, so a new section needs no change here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai_ocr.settings import (  # noqa: E402
    API_KEYS_ENV,
    CONFIG_ENV,
    SectionInfo,
    SettingInfo,
    iter_sections,
    iter_settings,
)

CONFIG = ROOT / "config.toml"
README = ROOT / "README.md"
TABLE = re.compile(r"(<!-- settings -->\n).*?(<!-- /settings -->)", re.S)
WIDTH = 92

HEADER = f"""\
# openai-ocr configuration: documented defaults.
#
# Generated from the settings' descriptions in openai_ocr/settings.py by
# scripts/gen_settings_docs.py: edit those and run the script, not this file.
#
# Precedence (lowest to highest): these values, then environment variables
# (OPENAI_OCR_<SECTION>__<KEY>, for example OPENAI_OCR_UPSTREAM__URL; lists as JSON), then
# CLI flags. API keys also come from {API_KEYS_ENV}="k1,k2".
# Point the server at another file with `openai-ocr serve --config PATH`
# or {CONFIG_ENV}=PATH.
"""


def toml_value(value: Any) -> str:
    """A default written as TOML (the subset settings use: scalars, lists, tables of them)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, PurePath):
        value = str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are valid in TOML strings
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for the default {value!r}")


def description(field: FieldInfo, where: str) -> str:
    if not field.description:
        raise ValueError(f"{where} has no description: give it Field(..., description=...)")
    return " ".join(field.description.split())


def comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ",
                         break_long_words=False, break_on_hyphens=False)


def render_config(settings: BaseModel | None = None) -> str:
    """The whole config.toml (of `Settings`, or of another settings model for the tests)."""
    out = [HEADER.rstrip("\n")]

    def section(info: SectionInfo) -> None:
        out.append("")
        out.extend(comment(description(info.field, ".".join(info.path))))
        out.append(f"[{'.'.join(info.path)}]")
        for setting in info.settings:
            out.extend(comment(description(setting.field, setting.key)))
            if setting.default is None:
                out.append(f"# {setting.path[-1]} =  (unset by default)")
            else:
                out.append(f"{setting.path[-1]} = {toml_value(setting.default)}")
        for sub in info.sections:
            section(sub)

    for info in iter_sections(settings):
        section(info)
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _flag(setting: SettingInfo) -> str:
    """The flag as `openai-ocr serve --help` shows it."""
    if not setting.cli:
        return ""
    annotation = setting.field.annotation
    if annotation is bool:
        return f"`{setting.cli}` / `--no-{setting.cli[2:]}`"
    if get_origin(annotation) is Literal:
        return f"`{setting.cli} {{{','.join(str(a) for a in get_args(annotation))}}}`"
    metavar = setting.metavar or setting.path[-1].upper()
    repeat = " (repeatable)" if isinstance(setting.default, list) else ""
    return f"`{setting.cli} {metavar}`{repeat}"


def render_table(settings: BaseModel | None = None) -> str:
    """The README's settings table (markdown)."""
    rows = ["| Setting | Default | Environment variable | CLI flag | Description |",
            "|---|---|---|---|---|"]
    for setting in iter_settings(settings):
        default = "" if setting.default is None else f"`{_cell(toml_value(setting.default))}`"
        rows.append(f"| `{setting.key}` | {default} | `{setting.env}` | {_flag(setting)} | "
                    f"{_cell(description(setting.field, setting.key))} |")
    return "\n".join(rows) + "\n"


def render_readme(text: str) -> str:
    """README.md with the table between its markers replaced."""
    if not TABLE.search(text):
        raise ValueError("README.md has no <!-- settings --> ... <!-- /settings --> markers")
    table = render_table()
    return TABLE.sub(lambda m: m.group(1) + table + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    stale = []
    for path, new in ((CONFIG, render_config()), (README, render_readme(README.read_text()))):
        if path.read_text() == new:
            continue
        stale.append(path.name)
        if not args.check:
            path.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run: python scripts/gen_settings_docs.py", file=sys.stderr)
        return 1
    print("updated: " + ", ".join(stale) if stale else "config.toml and README.md are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
