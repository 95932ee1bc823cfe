"""examples/parley-weather, installed like any third-party plugin and used through entry points."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from parley.core import store
from parley.testing import install_distribution, run_parley

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """
[database]
url = "sqlite://{db}"
[llm]
provider = "forecaster"
[conversation]
default_template = "solo"
[personas.alex]
name = "Alex"
system_prompt = "You are Alex."
tools = ["weather", "current_time"]
[templates.solo]
personas = ["alex"]
"""


@pytest.fixture(scope="module")
def weather_plugin(tmp_path_factory) -> Path:
    """parley-weather installed into a folder that goes on the subprocesses' PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    install_distribution(ROOT / "examples" / "parley-weather", target)
    return target


def run(args: list[str], site: Path, tmp_path: Path, stdin: str = ""):
    folder = tmp_path / "settings"
    folder.mkdir(exist_ok=True)
    (folder / "settings.toml").write_text(SETTINGS.format(db=tmp_path / "weather.sqlite3"))
    return run_parley(
        [*args, "--settings", str(folder)], stdin=stdin, env={"PYTHONPATH": str(site)}
    )


def test_parley_plugins_lists_it(weather_plugin, tmp_path):
    result = run(["plugins"], weather_plugin, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    index = lines.index("weather  [entry point (parley-weather 0.1.0)]")
    assert lines[index + 1] == "    hooks: before_llm, register_llm_providers, register_tools"
    assert "forecaster" in next(line for line in lines if line.startswith("llm providers:"))
    assert "tools: current_time, handoff, weather" in lines


async def test_a_conversation_uses_its_tool_provider_and_hook(weather_plugin, tmp_path):
    result = run(["chat", "--user", "wes"], weather_plugin, tmp_path, "Weather in Paris?\n")
    assert result.returncode == 0, result.stderr
    # forecaster (the provider) called weather (the tool); °F comes from the before_llm hook.
    assert re.search(r"^Alex> Paris: (sunny|cloudy|rainy|windy), -?\d+°F\.$", result.stdout, re.M)

    await store.connect(f"sqlite://{tmp_path / 'weather.sqlite3'}")
    try:
        user = await store.get_or_create_user("cli", "wes")
        (conversation, _), *_ = await store.list_conversations(user.id)
        tool = next(m for m in await store.list_messages(conversation.id) if m.role == "tool")
        assert (tool.name, tool.status) == ("weather", "complete")
        assert json.loads(tool.metadata["arguments"]) == {"city": "Paris"}
        assert json.loads(tool.content)["city"] == "Paris"
    finally:
        await store.close()


def test_docs_quote_the_example_as_it_is():
    source = (ROOT / "examples" / "parley-weather" / "parley_weather" / "__init__.py").read_text()
    docs = (ROOT / "docs" / "plugins.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", docs, re.S)
    quoted = [s for s in snippets if "running_parley" not in s]
    assert len(quoted) == 5
    for snippet in quoted:
        assert snippet in source, snippet
    pyproject = (ROOT / "examples" / "parley-weather" / "pyproject.toml").read_text()
    assert '[project.entry-points.parley]\nweather = "parley_weather"' in pyproject


async def test_the_plugin_test_in_the_docs_passes(monkeypatch, tmp_path):
    """docs/plugins.md, "6. Test it": its test of the plugin inside one process, run as quoted."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    (block,) = [s for s in re.findall(r"```python\n(.*?)```", docs, re.S) if "running_parley" in s]
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "parley-weather"))
    namespace: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    await namespace["test_weather_in_paris"](tmp_path)
