"""The layers import downward only: `proxy` (HTTP) uses `budgets` and `adapters`, which use only
`core`, which uses none of them. Every import statement of every module is checked, including
those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "adapters", "budgets", "proxy")
# What each package may import of the others.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "adapters": {"core"},
    "budgets": {"core"},
    "proxy": {"core", "adapters", "budgets"},
}


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in PACKAGES)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    modules = _modules(package)
    assert modules, f"no modules found under {package}/"
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in modules
        for imported, line in sorted(_imported_packages(path))
        if imported != package and imported not in ALLOWED[package]
    ]
    assert wrong == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from proxy.app import create_app\n    import budgets.keys\n")
    assert _imported_packages(module) == {("proxy", 2), ("budgets", 3)}
