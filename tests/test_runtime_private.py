"""The runtime stays private (issue 16): nothing in ``parley.plugins`` or ``parley.adapters``
reaches the :class:`~parley.core.runtime.Runtime`. Plugins get a ``PluginContext``, adapters an
``AdapterContext``, and routes the ``context`` dependency (or their adapter's own dependency),
never the Litestar app state the runtime sits in. Checked with the standard library's ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "parley"
PACKAGES = ("plugins", "adapters")


def reaches_runtime(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, what)`` for each way ``tree`` reaches the runtime: ``x.runtime``, the key or
    attribute name ``"runtime"`` (``state["runtime"]``, ``getattr(state, "runtime")``), an
    import of ``parley.core.runtime``, the app state (``app.state``, litestar's ``State``)."""
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr == "runtime":
            found.append((line, f".runtime: {ast.unparse(node)}"))
        elif isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "app":
                found.append((line, f"the app state: {ast.unparse(node)}"))
        elif isinstance(node, ast.Constant) and node.value == "runtime":
            found.append((line, '"runtime"'))
        elif isinstance(node, ast.Import):
            found += [(line, a.name) for a in node.names if a.name == "parley.core.runtime"]
        elif isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if node.module == "parley.core.runtime" or (
                node.module == "parley.core" and "runtime" in names
            ):
                found.append((line, f"import from {node.module}"))
            if node.module == "litestar.datastructures" and "State" in names:
                found.append((line, "litestar's State (the app state holds the runtime)"))
    return found


def test_plugins_and_adapters_never_reach_the_runtime():
    offenders = []
    for package in PACKAGES:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            where = path.relative_to(PACKAGE.parent)
            offenders += [f"{where}:{line}: {what}" for line, what in reaches_runtime(tree)]
    hint = "use the context (docs/plugins.md#routes), not the runtime"
    assert offenders == [], "\n".join([hint, *offenders])


def test_the_check_sees_each_way_in():
    """Each way a route used to reach the runtime is caught (and plain code is not)."""
    caught = [
        "async def health(state: State):\n    runtime = state.runtime",
        "def f(request):\n    return request.app.state",
        'def f(state):\n    return state["runtime"]',
        'def f(state):\n    return getattr(state, "runtime")',
        "from parley.core.runtime import Runtime",
        "from parley.core import runtime",
        "import parley.core.runtime",
        "from litestar.datastructures import State",
    ]
    for source in caught:
        assert reaches_runtime(ast.parse(source)), source
    fine = 'def f(context):\n    """The runtime\'s settings."""\n    return context.settings'
    assert reaches_runtime(ast.parse(fine)) == []
