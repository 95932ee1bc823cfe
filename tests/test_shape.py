"""The shape docs/architecture.md promises, checked with the standard library's ``ast``.

- ``parley.core`` imports nothing from ``parley.plugins`` or ``parley.adapters``;
- no import cycles among ``parley`` modules, counting every import that runs (module level and
  inside functions), and none through ``TYPE_CHECKING`` imports either;
- no module over 400 lines.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "parley"
MAX_LINES = 400

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Import cycles that exist today and are being removed (a shrinking allow-list): a new cycle
fails the test, and so does a listed one that is gone (remove it from here)."""

TYPE_CHECKING_CYCLES: set[frozenset[str]] = set()
"""Cycles that exist only through ``TYPE_CHECKING`` imports (a shrinking allow-list, empty now:
a type that would close a cycle is a Protocol, or moves down)."""

LONG_MODULES: dict[str, int] = {}
"""Modules over MAX_LINES today, with their length, being split (a shrinking allow-list)."""


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    module: str, path: Path, *, everywhere: bool, type_checking: bool | None = None
) -> set[str]:
    """The ``parley`` modules ``module`` imports: at module level, or ``everywhere`` (inside
    functions too); ``TYPE_CHECKING`` blocks count when ``type_checking`` (default:
    ``everywhere``)."""
    type_checking = everywhere if type_checking is None else type_checking
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("parley"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                if base.startswith("parley"):
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
                visit(node.orelse)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if everywhere:
                    visit(node.body)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.ClassDef | ast.If | ast.With | ast.For | ast.While):
                visit(node.body + getattr(node, "orelse", []))

    visit(tree.body)
    return found


def _graph(*, everywhere: bool, type_checking: bool | None = None) -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        imports = _imports(name, path, everywhere=everywhere, type_checking=type_checking)
        graph[name] = {m for m in imports if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_core_imports_no_plugin_and_no_adapter():
    graph = _graph(everywhere=True)
    wrong = {
        (module, imported)
        for module, imports in graph.items()
        if module.startswith("parley.core")
        for imported in imports
        if imported.startswith(("parley.plugins", "parley.adapters"))
    }
    assert wrong == set()


def test_no_import_cycles():
    cycles = _cycles(_graph(everywhere=True, type_checking=False))
    assert cycles - KNOWN_CYCLES == set(), "new import cycles"
    assert KNOWN_CYCLES - cycles == set(), "cycles gone: remove them from KNOWN_CYCLES"


def test_type_checking_imports_make_no_new_cycles():
    cycles = _cycles(_graph(everywhere=True, type_checking=True))
    assert cycles - TYPE_CHECKING_CYCLES == set(), "new import cycles through TYPE_CHECKING"
    assert TYPE_CHECKING_CYCLES - cycles == set(), "gone: update TYPE_CHECKING_CYCLES"


def test_no_module_over_400_lines():
    lengths = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules().items()
    }
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert {n: v for n, v in long.items() if n not in LONG_MODULES} == {}, "split these modules"
    grown = {n: v for n, v in long.items() if n in LONG_MODULES and v > LONG_MODULES[n]}
    assert grown == {}, "listed long modules must not grow"
    assert set(LONG_MODULES) - set(long) == set(), "short now: remove them from LONG_MODULES"


def test_the_checks_see_what_they_check(tmp_path):
    """The cycle finder finds a cycle, and relative imports resolve (the tests above could
    otherwise pass by seeing nothing)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    graph = _graph(everywhere=False)
    assert "parley.core.config" in graph["parley.core.loading"]
    assert "parley.core.store" in graph["parley.core.engine"]


def test_the_architecture_map_names_every_module():
    """docs/architecture.md's map names every module of parley/ and parley/core/, and every
    folder of plugins/ and adapters/ (a new module without a line there fails)."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = doc.split("```", 2)[1]
    names = {p.name for p in PACKAGE.glob("*.py")} | {
        p.name for p in (PACKAGE / "core").glob("*.py")
    }
    names -= {"__init__.py"}
    folders = {
        p.name + "/"
        for d in ("plugins", "adapters")
        for p in (PACKAGE / d).iterdir()
        if p.is_dir() and not p.name.startswith("__")
    }
    plugins = {p.name for p in (PACKAGE / "plugins").glob("*.py")} - {"__init__.py"}
    patterns = set(re.findall(r"[\w*]+\.py|\w+/", drawn))  # "failover*.py" names a family
    missing = sorted(
        n for n in names | folders | plugins if not any(fnmatch(n, p) for p in patterns)
    )
    assert missing == []
