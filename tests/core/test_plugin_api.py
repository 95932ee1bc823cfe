"""The names docs/plugins.md promises are importable from ``parley`` and are the real ones, and
every import the docs show resolves without reaching an internal module."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import parley
import parley.commands

ROOT = Path(__file__).resolve().parents[2]


def test_every_documented_name_is_importable_from_parley():
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    table = docs.split("## What a plugin imports", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    assert documented == set(parley.__all__)
    for name in set(parley.__all__) - {"hookimpl"}:
        assert getattr(parley, name).__name__ == name, name
    assert parley.hookimpl.project_name == "parley"


def _doc_imports() -> list[tuple[str, str, list[str]]]:
    """``(where, module, names)`` of each import of ``parley`` in the Python of the docs: code
    blocks of README.md and docs/*.md, and the example files they quote."""
    sources = [
        (path.name, block)
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for block in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    ]
    examples = [*(ROOT / "docs" / "examples").glob("*.py"), *(ROOT / "examples").rglob("*.py")]
    sources += [(path.name, path.read_text(encoding="utf-8")) for path in examples]
    ours = re.compile(r"parley(\.|$)")
    found = []
    for where, code in sources:
        for node in ast.walk(ast.parse(textwrap.dedent(code))):
            if isinstance(node, ast.ImportFrom) and ours.match(node.module or ""):
                found.append((where, node.module, [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                found += [(where, a.name, []) for a in node.names if ours.match(a.name)]
    return found


def test_every_import_in_the_docs_resolves_to_a_public_module():
    imports = _doc_imports()
    assert {"parley", "parley.commands", "parley.testing"} <= {module for _, module, _ in imports}
    internal = ("parley.core", "parley.plugins", "parley.adapters")
    for where, module, names in imports:
        assert not module.startswith(internal), f"{where}: imports the internal {module}"
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"{where}: from {module} import {name}"
            assert name in getattr(loaded, "__all__", [name]), f"{where}: {module}.{name}"


def test_the_commands_module_holds_the_conversation_commands():
    from parley.core import conversation_commands

    for name in parley.commands.__all__:
        assert getattr(parley.commands, name) is getattr(conversation_commands, name)
    assert parley.commands.ModelSettings is not parley.ModelSettings  # the command, not settings


def test_importing_parley_stays_cheap():
    """``import parley`` loads none of the heavy parts (the ORM, the web framework)."""
    code = (
        "import sys, parley; print(sorted(m for m in ('tortoise', 'litestar') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _members(doc: str, section: str) -> set[str]:
    """The names in the first cells of the table under ``section`` of ``docs/<doc>``."""
    docs = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    table = re.split(r"\n##+ ", docs.split(f"## {section}", 1)[1], maxsplit=1)[0]
    first_cells = re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"(\w+)[(`]", cell)}


def _public(cls: type) -> set[str]:
    public = {name for name in dir(cls) if not name.startswith("_")}
    public.discard("close")  # the runtime's, after the shutdown hooks
    return public


def test_every_member_of_the_plugin_context_is_documented():
    assert _public(parley.PluginContext) - _members("plugins.md", "The plugin context") == set()


def test_every_member_of_the_adapter_context_is_documented():
    """An adapter's context is the plugin context plus the members docs/adapters.md lists."""
    plugin = _members("plugins.md", "The plugin context")
    adapter = _members("adapters.md", "The adapter context")
    assert _public(parley.AdapterContext) - plugin - adapter == set()
    assert adapter - _public(parley.AdapterContext) == set()  # no stale row either
