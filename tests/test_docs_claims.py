"""Claims of README.md and docs/ that a cheap check keeps true (the others are tested next to the
code they describe)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "parley"


def _importers(package: str) -> set[str]:
    """Modules of ``parley/`` (relative paths) that import ``package``, lazily or not."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == package for name in names):
                found.add(path.relative_to(PACKAGE).as_posix())
    return found


def test_only_the_store_queries_through_the_orm():
    """docs/architecture.md: only core/store uses Tortoise, plus the two modules it names."""
    others = {p for p in _importers("tortoise") if not p.startswith("core/store/")}
    assert others == {"core/outages.py", "plugins/tracing_db.py"}
    docs = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert all(f"`{module}`" in docs for module in others)


def test_every_metric_is_in_the_operations_guide():
    """docs/operations.md lists each metric family the metrics plugin defines."""
    tree = ast.parse((PACKAGE / "plugins" / "metrics.py").read_text(encoding="utf-8"))
    families = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") in {"Counter", "Histogram", "Gauge"}
        and isinstance(node.args[0], ast.Constant)
    }
    assert len(families) >= 10
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert {family for family in families if family not in docs} == set()


def test_the_widget_modules_are_joined_in_the_documented_order():
    """docs/widget.md, "Inside": the modules in the order ``GET /widget.js`` joins them."""
    from parley.adapters.widget.plugin import MODULES

    docs = (ROOT / "docs" / "widget.md").read_text(encoding="utf-8")
    inside = docs.split("## Inside", 1)[1].split("`GET /widget.js`", 1)[0]
    assert tuple(re.findall(r"`(\w+\.js)`", inside)) == MODULES
