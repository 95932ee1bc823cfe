"""The names docs/plugins.md promises are importable from ``parley`` and are the real ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import parley

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
    table = docs.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
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
