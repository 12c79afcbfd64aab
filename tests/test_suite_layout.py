"""The suite's own house rules: test modules import support code from tests/support, never each other."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_test_module_imports_another():
    offenders = {path.name: sorted(name for name in imported_modules(path) if name.split(".")[-1].startswith("test_"))
                 for path in [*TESTS.glob("test_*.py"), *TESTS.glob("support/*.py")]}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_support_modules_are_not_collected_as_tests():
    assert not list((TESTS / "support").glob("test_*.py"))
    assert sorted(path.name for path in TESTS.glob("*.py") if not path.name.startswith("test_")) == ["conftest.py"]
