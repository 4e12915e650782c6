"""The sub-packages of sampleFileUpload depend one way: sheets and files on neither of the
others, tus on files (it stores files the same way); only the package's router includes all
three."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "sampleFileUpload"
ALLOWED = {
    "sheets": set(),
    "files": set(),
    "tus": {"files"},
}


def imported_sub_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["src", "sampleFileUpload"] and len(parts) > 2:
                found.add(parts[2])
    return found & set(ALLOWED)


@pytest.mark.parametrize("sub_package", sorted(ALLOWED))
def test_sub_packages_depend_one_way(sub_package: str) -> None:
    for path in sorted((PACKAGE / sub_package).rglob("*.py")):
        others = imported_sub_packages(path) - {sub_package}
        assert others <= ALLOWED[sub_package], f"{path.name} imports {sorted(others)}"


def test_services_do_not_import_fastapi() -> None:
    for path in sorted(PACKAGE.rglob("service.py")):
        tree = ast.parse(path.read_text())
        modules = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not {m for m in modules if m.split(".")[0] in ("fastapi", "starlette")}, path
