"""Every third-party package ``parley/`` imports is declared in pyproject.toml (a dependency or an
extra), so a fresh install never meets an ImportError the metadata did not announce."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_name(r) for r in requirements}


def _imported() -> set[str]:
    """Top-level names of every import in parley/ (lazy ones inside functions too)."""
    names = set()
    for path in (ROOT / "parley").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"parley", "__future__"}


def test_every_imported_package_is_declared():
    distributions = packages_distributions()
    declared = _declared()
    missing = {
        module: distributions.get(module, ["?"])
        for module in _imported()
        if not {_name(d) for d in distributions.get(module, [])} & declared
    }
    assert missing == {}, "imported by parley/ but not declared in pyproject.toml"
    assert {"msgspec", "click", "stamina"} <= declared
