"""The ``[local]`` settings: documented key by key, shipped with their defaults, checked."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, fields
from pathlib import Path
from typing import get_type_hints

import pytest

from parley.core.config import SettingsError, parse_section
from parley.core.validation import rule_of
from parley.plugins.local.settings import LocalSettings

ROOT = Path(__file__).resolve().parents[3]
PARTS = ("llm", "stt", "tts")


def _table(docs: str, part: str) -> list[str]:
    after = docs.split(f"`[local.{part}]`:\n", 1)[1]
    return [
        line for line in after.strip().split("\n\n", 1)[0].splitlines() if line.startswith("| `")
    ]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_docs_list_every_local_key_with_its_default_and_range():
    docs = (ROOT / "docs" / "settings.md").read_text("utf-8")
    defaults = LocalSettings()
    wrong = []
    for part in PARTS:
        rows = {row.split("`")[1]: row for row in _table(docs, part)}
        cls = type(getattr(defaults, part))
        hints = get_type_hints(cls, include_extras=True)
        for f in fields(cls):
            row = rows.pop(f.name, None)
            if row is None:
                wrong.append(f"local.{part}.{f.name}: no row")
                continue
            default = row.split("|")[3].strip().strip("`")
            if tomllib.loads(f"x = {default}")["x"] != getattr(getattr(defaults, part), f.name):
                wrong.append(f"local.{part}.{f.name}: default {default}")
            for bound in re.findall(r"-?[\d.]+", rule_of(hints[f.name])):
                if _number(float(bound)) not in row.replace(",", ""):
                    wrong.append(f"local.{part}.{f.name}: range not stated")
        wrong += [f"local.{part}.{name}: no such key" for name in rows]
    assert wrong == []


def test_the_shipped_file_holds_the_defaults():
    shipped = tomllib.loads((ROOT / "settings" / "settings.toml").read_text("utf-8"))
    assert shipped["local"] == asdict(LocalSettings())


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"llm": {"threads": 0}}, "local.llm.threads"),
        ({"stt": {"silence_ms": 50}}, "local.stt.silence_ms"),
        ({"tts": {"output_format": "wav"}}, "local.tts.output_format"),
    ],
)
def test_a_bad_value_names_its_key(raw, key):
    with pytest.raises(SettingsError, match=rf"^{re.escape(key)}"):
        parse_section("local", raw, LocalSettings)
