"""The package layout keeps its arrows: no module imports a layer above its own, anywhere.

Every module of the package belongs to one layer (a subpackage or a top-level module); each
layer may import itself, the base modules and the layers listed for it, all of them below it.
A new top-level module or subpackage fails `test_every_module_has_a_layer` until it is placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "openai_ocr"

BASE = {"openai_ocr", "openai_ocr.settings", "openai_ocr.errors", "openai_ocr.metrics", "openai_ocr.telemetry"}
"""Imported by everyone; they import only each other (telemetry: the spans every layer opens)."""

_TRANSLATION = {"ocr", "inputs"}
_BELOW_SERVICE = _TRANSLATION | {"outputs", "protocol", "engines", "storage"}
_BELOW_API = _BELOW_SERVICE | {"service", "runtime"}
# From the bottom up. Service code returns the protocol's schemas, as vLLM's serving modules
# return their protocol's; the HTTP layer (api, compat_routes, server) sits on the runtime.
ALLOWED: dict[str, set[str]] = {
    "inputs": set(),
    "storage": set(),
    "ocr": {"inputs"},
    "protocol": _TRANSLATION,
    "outputs": _TRANSLATION | {"protocol"},
    "engines": _TRANSLATION,
    "service": _BELOW_SERVICE,
    "runtime": _BELOW_SERVICE | {"service"},
    "api": _BELOW_API,
    "compat_routes": _BELOW_API | {"api"},
    "server": _BELOW_API | {"api", "compat_routes"},
    "vllm_plugin": _BELOW_API | {"api", "compat_routes", "server"},
    "cli": _BELOW_API | {"api", "compat_routes", "server", "vllm_plugin"},
}


def layer_of(path: Path) -> str:
    """The layer of a module file: its subpackage, or its own name at the top level."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


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


def test_every_module_has_a_layer() -> None:
    base = {name.removeprefix("openai_ocr.") for name in BASE}
    unplaced = [str(p.relative_to(PACKAGE)) for p in modules()
                if layer_of(p) not in ALLOWED and layer_of(p) not in base]
    assert not unplaced, f"place these in ALLOWED: {unplaced}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE)} imports {name}"
             for path in modules() if layer_of(path) == layer
             for name in sorted(project_imports(path)) if not allowed(layer, name)]
    assert not wrong, "\n".join(wrong)


def test_the_base_modules_import_only_each_other() -> None:
    for name in ("settings.py", "errors.py", "metrics.py", "telemetry.py", "__init__.py"):
        assert project_imports(PACKAGE / name) <= BASE, name


def test_the_layers_form_no_circle() -> None:
    """Each layer's allowed imports reach only layers listed before it (from the bottom up)."""
    order = list(ALLOWED)
    for position, layer in enumerate(order):
        assert ALLOWED[layer] <= set(order[:position]), layer


def test_the_checker_sees_a_wrong_import() -> None:
    assert not allowed("ocr", "openai_ocr.protocol.ocr")
    assert not allowed("engines", "openai_ocr.service.serving")
    assert not allowed("service", "openai_ocr.api.dependencies")
    assert not allowed("runtime", "openai_ocr.server")
    assert not allowed("api", "openai_ocr.compat_routes")
    assert allowed("service", "openai_ocr.protocol.ocr")
    assert layer_of(PACKAGE / "server.py") == "server"
    assert layer_of(PACKAGE / "api" / "middleware" / "register.py") == "api"
