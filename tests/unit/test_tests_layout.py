"""The tests keep to their own layout (README "tests/"): no test imports another test.

A test module (``test_*.py``) and a conftest hold tests and fixtures, never helpers for others:
what two test modules share lives in tests/support (or, as a fixture, in a conftest that pytest
finds by itself). Every test folder is a package (it has an ``__init__.py``), so a module is
imported by its full dotted name and two folders may hold files of the same name. Both rules are
checked on the source with `ast`, and the checker is shown to catch a real violation.

Not here: the import rules between the layers of ramster/ (test_layering.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(source: str, package: str) -> list[str]:
    """Every module `source` imports that is a test module or a conftest, by dotted name;
    `package` is the dotted name of the source's own package (for relative imports)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            last = name.rsplit(".", 1)[-1]
            if last.startswith("test_") or last == "conftest":
                found.append(name)
    return found


def dotted_package(path: Path) -> str:
    return ".".join(path.parent.relative_to(TESTS.parent).parts)


@pytest.mark.parametrize(
    ("source", "package", "found"),
    [
        (
            "from tests.integration.test_cluster import key",
            "tests.fault",
            ["tests.integration.test_cluster"],
        ),
        (
            "from tests.integration.conftest import wait_for",
            "tests",
            ["tests.integration.conftest"],
        ),
        ("import tests.unit.test_copies as copies", "tests.unit", ["tests.unit.test_copies"]),
        (
            "from tests.unit.holder import test_foreign",
            "tests.unit",
            ["tests.unit.holder.test_foreign"],
        ),
        (
            "from .test_foreign import holder",
            "tests.unit.holder",
            ["tests.unit.holder.test_foreign"],
        ),
        ("from . import conftest", "tests.unit", ["tests.unit.conftest"]),
        ("from tests.support.cluster import key\nimport pytest", "tests.fault", []),
    ],
    ids=[
        "from-test-module",
        "from-conftest",
        "import-test-module",
        "from-package-import-test-module",
        "relative-test-module",
        "relative-conftest",
        "support-modules-are-fine",
    ],
)
def test_the_checker_finds_every_import_of_a_test_module_or_a_conftest(
    source: str, package: str, found: list[str]
) -> None:
    assert imported_test_modules(source, package) == found


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): imports
        for path in sorted(TESTS.rglob("*.py"))
        if (imports := imported_test_modules(path.read_text(), dotted_package(path)))
    }
    assert offenders == {}


def test_every_test_folder_is_a_package() -> None:
    folders = {path.parent for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts}
    assert (
        sorted(
            str(f.relative_to(TESTS.parent)) for f in folders if not (f / "__init__.py").exists()
        )
        == []
    )
