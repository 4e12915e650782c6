"""Import directions, checked: every module under src/ is parsed (no import is executed) and each
``import``/``from ... import`` of a src module, at any depth (function-level and TYPE_CHECKING
imports count too), must point the way DESIGN.md says:

- the kernel (config, database, storage, exceptions, logging, middleware, dependencies, schemas)
  imports no domain;
- auth imports no other domain;
- study imports auth only;
- sampleFileUpload imports study and auth;
- dashboard imports auth and study's models (models.py and constants.py, the enums its columns
  hold), nothing else of study;
- src/app.py wires everything, and no module imports it (main.py, outside src/, wires too).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

DOMAINS = ("auth", "study", "sampleFileUpload", "dashboard")
KERNEL = "kernel"
WIRING = "wiring"

# What each part may import besides itself and the kernel: a domain name allows the whole
# domain, a dotted name (study.models) that module only.
ALLOWED: dict[str, frozenset[str]] = {
    KERNEL: frozenset(),
    "auth": frozenset(),
    "study": frozenset({"auth"}),
    "sampleFileUpload": frozenset({"study", "auth"}),
    "dashboard": frozenset({"auth", "study.models", "study.constants"}),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. src.dashboard.service
    line: int
    target: str  # the imported module (or module.name), e.g. src.study.service


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The part a src module belongs to: a domain, the kernel, or the wiring (src.app)."""
    parts = module.split(".")
    if module == "src.app":
        return WIRING
    if len(parts) > 1 and parts[1] in DOMAINS:
        return parts[1]
    return KERNEL


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    """Every import of a src module in ``source``, wherever it is in the file."""
    found: list[Import] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from src import study`` imports the module src.study; ``from src.study.models
            # import Study`` is checked as src.study.models.Study, which its module prefixes.
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.extend(
            Import(module, node.lineno, target)
            for target in targets
            if target == "src" or target.startswith("src.")
        )
    return found


def violation(found: Import) -> str | None:
    """Why this import breaks the directions, or None when it is allowed."""
    source = part_of(found.module)
    parts = found.target.split(".")
    if found.target == "src.app" or found.target.startswith("src.app."):
        if source != WIRING:
            return "only main.py may import src.app"
        return None
    if source == WIRING or len(parts) < 2 or parts[1] not in DOMAINS:
        return None  # the wiring imports anything; anything imports the kernel
    target = parts[1]
    if target == source:
        return None
    allowed = ALLOWED[source]
    dotted = ".".join(parts[1:3])
    if target in allowed or dotted in allowed:
        return None
    may = ", ".join(sorted(allowed)) or "no other domain"
    return f"{source} may import: {may}"


def src_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def all_violations() -> list[str]:
    problems = []
    for path in src_modules():
        module = module_name(path)
        source = path.read_text(encoding="utf-8")
        for found in imports_of(module, source, is_package=path.name == "__init__.py"):
            reason = violation(found)
            if reason is not None:
                where = f"{path.relative_to(ROOT)}:{found.line}"
                problems.append(f"{where}: {found.module} imports {found.target} ({reason})")
    return problems


def test_every_module_imports_in_the_allowed_directions() -> None:
    problems = all_violations()
    assert not problems, "Imports against the directions in DESIGN.md:\n" + "\n".join(problems)


def test_the_kernel_and_every_domain_are_found() -> None:
    """Guards the test itself: a renamed directory must not make the check vacuous."""
    parts = {part_of(module_name(path)) for path in src_modules()}
    assert parts == {KERNEL, WIRING, *DOMAINS}
    for name in ("config", "database", "storage", "exceptions", "logging", "middleware"):
        assert part_of(f"src.{name}") == KERNEL
    assert part_of("src.dependencies") == KERNEL
    assert part_of("src.schemas") == KERNEL


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # A lazy import inside a function counts, and the message names module and import.
        (
            "src.database",
            "def f():\n    from src.study.models import Study\n",
            "src.database imports src.study.models.Study (kernel may import: no other domain)",
        ),
        (
            "src.auth.service",
            "import src.study.service\n",
            "src.auth.service imports src.study.service (auth may import: no other domain)",
        ),
        (
            "src.dashboard.service",
            "from src.study import service as study_service\n",
            "src.dashboard.service imports src.study.service (dashboard may import: auth, "
            "study.constants, study.models)",
        ),
        (
            "src.study.router",
            "from ..sampleFileUpload.service import x\n",
            "src.study.router imports src.sampleFileUpload.service.x (study may import: auth)",
        ),
        (
            "src.sampleFileUpload.tus",
            "from src.app import create_app\n",
            "src.sampleFileUpload.tus imports src.app.create_app (only main.py may import src.app)",
        ),
    ],
)
def test_a_wrong_import_is_reported(module: str, source: str, expected: str) -> None:
    (found,) = imports_of(module, source)
    assert f"{found.module} imports {found.target} ({violation(found)})" == expected


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("src.dashboard.service", "from src.study.models import Study\n"),
        ("src.dashboard.service", "from src.auth.models import User\n"),
        ("src.sampleFileUpload.tus", "from src.study import visibility\n"),
        ("src.study.service", "from src.auth import service as auth_service\n"),
        ("src.auth.dependencies", "from src.dependencies import SessionDep\n"),
        ("src.app", "from src.sampleFileUpload.router import router\n"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    (found,) = imports_of(module, source)
    assert violation(found) is None
