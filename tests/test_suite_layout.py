"""Rules of the test suite itself, checked on its source: helpers live in helper modules, and
optional parts go through `require()`, so a missing part is never a silent skip."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def suite_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return found | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def test_no_test_module_imports_another() -> None:
    """Shared code is in tests/helpers.py and its sibling helper modules, fixtures in conftest.py:
    a test module importing another runs or collects it twice, and ties them together."""
    found = []
    for path in suite_modules():
        name = path.relative_to(TESTS.parent).as_posix()
        for module in imported_modules(path):
            last = module.rsplit(".", 1)[-1]
            if module.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                found.append(f"{name} imports {module}")
    assert found == []


def test_optional_parts_go_through_require() -> None:
    """`pytest.importorskip`, `pytest.skip` and the skip marks skip in CI as well; `require()`
    fails there."""
    found = [f"{path.relative_to(TESTS.parent)}:{node.lineno}" for path in suite_modules()
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Attribute) and node.attr in ("importorskip", "skip", "skipif")
             and ast.unparse(node.value) in ("pytest", "pytest.mark")]
    assert found == []
