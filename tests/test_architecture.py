"""The package layout keeps its arrows: lower layers never import the layers above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "openai_ocr"

# What each subpackage may import from the project, besides itself and the base modules
# (settings, errors, metrics). Service code returns the protocol's schemas, as vLLM's serving
# modules return their protocol's.
ALLOWED = {
    "ocr": {"inputs"},
    "inputs": set(),
    "engines": {"ocr", "inputs"},
    "storage": set(),
    "protocol": {"ocr", "inputs"},
    "service": {"ocr", "inputs", "engines", "storage", "protocol"},
    "api": {"ocr", "inputs", "engines", "storage", "service", "protocol"},
}
BASE = {"openai_ocr", "openai_ocr.settings", "openai_ocr.errors", "openai_ocr.metrics"}


def project_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("openai_ocr"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("openai_ocr"))
    return names


def allowed(importer: str, imported: str) -> bool:
    if imported in BASE:
        return True
    return any(imported == f"openai_ocr.{layer}" or imported.startswith(f"openai_ocr.{layer}.")
               for layer in {importer} | ALLOWED[importer])


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}"
             for path in sorted((PACKAGE / layer).rglob("*.py"))
             for name in sorted(project_imports(path)) if not allowed(layer, name)]
    assert not wrong, "\n".join(wrong)


def test_the_base_modules_import_only_each_other() -> None:
    for name in ("settings.py", "errors.py", "metrics.py"):
        assert project_imports(PACKAGE / name) <= BASE, name


def test_the_checker_sees_a_wrong_import() -> None:
    assert not allowed("ocr", "openai_ocr.protocol.ocr")
    assert not allowed("engines", "openai_ocr.service.serving")
    assert allowed("service", "openai_ocr.protocol.ocr")
