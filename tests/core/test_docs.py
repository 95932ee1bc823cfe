"""Docs are checked: every hook has a section in docs/hooks.md and a test named after it."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy

from parley.core import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def _hooks() -> set[str]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return {name for name in dir(pm.hook) if not name.startswith("_")}


def test_every_hook_has_a_docs_section():
    text = (ROOT / "docs" / "hooks.md").read_text()
    documented = set(re.findall(r"^## (\w+)$", text, re.MULTILINE))
    assert _hooks() - documented == set(), "hooks without a section in docs/hooks.md"
    assert documented - _hooks() == set(), "docs/hooks.md documents hooks that do not exist"


def test_every_hook_has_a_test():
    source = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    tested = set(re.findall(r"def test_hook_(\w+)\(", source))
    assert _hooks() - tested == set(), "hooks without a test named test_hook_<name>"


def test_every_hook_has_a_docstring():
    for name in _hooks():
        assert getattr(hookspecs, name).__doc__, name
