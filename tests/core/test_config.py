"""Settings: loading the folder, environment overrides, validation messages, the shipped files."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from parley.core.config import (
    Agent,
    ConversationSettings,
    DatabaseSettings,
    Language,
    LanguagePrompts,
    LLMSettings,
    ModelSettings,
    Persona,
    PluginsSettings,
    RoutingSettings,
    ServerSettings,
    SettingsError,
    Template,
    ToolsSettings,
    parse_section,
)
from parley.core.loading import load_settings

SHIPPED = Path(__file__).resolve().parents[2] / "settings"
SHIPPED_FILES = ("settings.toml", "personas.toml", "templates.toml", "languages.toml")

PERSONAS = """
[personas.alex]
name = "Alex"
system_prompt = "You are Alex."
temperature = 0.9

[personas.well-bot]
name = "Well-Bot"
"""

TEMPLATES = """
[templates.friendly-assistant]
personas = ["alex"]

[templates.smalltalk]
personas = ["well-bot"]
max_turns = 20
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PARLEY_* or dynaconf variable from the outside, and no ./settings to stumble on."""
    for key in list(os.environ):
        if key.startswith(("PARLEY_", "DYNACONF_")) or key.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def write(folder: Path, **files: str) -> Path:
    """A settings folder; keyword ``secrets`` is ``.secrets.toml``, others are ``<name>.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    files.setdefault("settings", "")
    for name, text in files.items():
        filename = ".secrets.toml" if name == "secrets" else f"{name}.toml"
        (folder / filename).write_text(text, encoding="utf-8")
    return folder


def full(folder: Path, settings: str = "", **files: str) -> Path:
    """A settings folder with the two test personas and templates."""
    return write(folder, settings=settings, personas=PERSONAS, templates=TEMPLATES, **files)


# Loading


def test_empty_settings_file_gives_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s"))

    assert settings.server == ServerSettings(host="127.0.0.1", port=8000)
    assert settings.database == DatabaseSettings(url="sqlite://parley.sqlite3")
    assert settings.llm == LLMSettings()
    assert settings.llm.provider == "auto"
    assert settings.llm.model == "gpt-4o-mini"
    assert settings.llm.base_url is None
    assert settings.llm.timeout == 60
    assert settings.llm.max_retries == 2
    assert settings.llm.max_tool_steps == 5
    assert settings.conversation == ConversationSettings()
    assert settings.conversation.default_template == "friendly-assistant"
    assert settings.conversation.history_window == 20
    assert settings.plugins == PluginsSettings(disable=[])
    assert settings.personas == settings.templates == settings.languages == {}
    assert settings.directory == (tmp_path / "s").resolve()
    assert settings.raw == {}


def test_empty_base_url_means_the_default_endpoint(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s", settings='[llm]\nbase_url = ""\n'))

    assert settings.llm.base_url is None


def test_api_key_falls_back_to_openai_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    settings = load_settings(write(tmp_path / "s"))

    assert settings.llm.api_key == ""
    assert settings.llm.resolved_api_key() == "sk-from-env"


def test_files_are_merged_into_one_tree(tmp_path: Path) -> None:
    languages = (
        '[languages.en]\ntermination_phrases = ["bye"]\n[languages.en.prompts]\nend = "Ciao"'
    )
    settings = load_settings(full(tmp_path / "s", languages=languages))

    assert set(settings.personas) == {"alex", "well-bot"}
    assert settings.personas["alex"].id == "alex"
    assert settings.personas["alex"].model == ModelSettings(temperature=0.9)
    assert settings.templates["smalltalk"].personas == ["well-bot"]
    assert settings.templates["smalltalk"].name == "smalltalk"  # defaults to the id
    assert settings.languages["en"].termination_phrases == ["bye"]
    assert settings.languages["en"].prompts.end == "Ciao"
    assert settings.language("fr").code == "fr"
    assert settings.language("fr").termination_phrases == []


def test_model_keys_may_also_sit_in_a_model_table(tmp_path: Path) -> None:
    personas = '[personas.alex]\nmodel = "deepseek-chat"\ntop_k = 40\n'
    personas += '[personas.bob.model]\nmodel = "gpt-4o"\ntemperature = 0.2\n'
    settings = load_settings(write(tmp_path / "s", personas=personas))

    assert settings.personas["alex"].model == ModelSettings(model="deepseek-chat", top_k=40)
    assert settings.personas["bob"].model == ModelSettings(model="gpt-4o", temperature=0.2)
    assert settings.personas["bob"].name == "bob"


def test_secrets_file_is_merged_into_the_settings(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "s",
        settings='[llm]\nmodel = "deepseek-chat"\nbase_url = "https://api.deepseek.com"\n',
        secrets='[llm]\napi_key = "sk-secret"\n',
    )
    settings = load_settings(folder)

    assert settings.llm.api_key == "sk-secret"
    assert settings.llm.model == "deepseek-chat"
    assert settings.llm.base_url == "https://api.deepseek.com"


def test_unknown_sections_stay_in_raw_for_adapters(tmp_path: Path) -> None:
    folder = write(tmp_path / "s", settings='[telegram]\nmode = "polling"\n')

    assert load_settings(folder).raw["telegram"] == {"mode": "polling"}


def test_missing_settings_toml_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "personas.toml").write_text(PERSONAS)

    with pytest.raises(SettingsError, match=r"^settings: no settings.toml in .*empty"):
        load_settings(folder)


def test_settings_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write(tmp_path / "elsewhere", settings="[server]\nport = 8123\n")
    monkeypatch.setenv("PARLEY_SETTINGS_DIR", str(folder))

    settings = load_settings()

    assert settings.server.port == 8123
    assert settings.directory == folder.resolve()
    assert "settings_dir" not in settings.raw


def test_explicit_folder_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PARLEY_SETTINGS_DIR", str(write(tmp_path / "a", settings="[server]\nport = 1"))
    )

    assert load_settings(write(tmp_path / "b", settings="[server]\nport = 2")).server.port == 2


def test_default_folder_is_settings_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "settings", settings="[server]\nport = 8124\n")  # tmp_path is the cwd

    assert load_settings().server.port == 8124


# Environment overrides


def test_environment_overrides_nested_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = full(tmp_path / "s", settings='[llm]\nmodel = "deepseek-chat"\n[server]\nport = 8000')
    monkeypatch.setenv("PARLEY_LLM__BASE_URL", "https://openrouter.ai/api/v1")
    monkeypatch.setenv("PARLEY_SERVER__PORT", "9000")
    monkeypatch.setenv("PARLEY_TEMPLATES__SMALLTALK__MAX_TURNS", "5")
    monkeypatch.setenv("PARLEY_PERSONAS__WELL-BOT__TEMPERATURE", "0.4")

    settings = load_settings(folder)

    assert settings.llm.base_url == "https://openrouter.ai/api/v1"
    assert settings.llm.model == "deepseek-chat"  # the rest of [llm] is kept
    assert settings.server.port == 9000
    assert isinstance(settings.server.port, int)
    assert settings.templates["smalltalk"].max_turns == 5
    assert settings.templates["smalltalk"].personas == ["well-bot"]
    assert settings.personas["well-bot"].model.temperature == 0.4
    assert settings.personas["well-bot"].name == "Well-Bot"


def test_environment_may_add_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_PERSONAS__BOB__NAME", "Bob")
    monkeypatch.setenv("PARLEY_PERSONAS__ALEX__SYSTEM_PROMPT", "Hi from the environment.")

    settings = load_settings(full(tmp_path / "s"))

    assert settings.personas["bob"].name == "Bob"
    assert settings.personas["alex"].prompt_for("en") == "Hi from the environment."


def test_environment_list_replaces_the_files_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = full(tmp_path / "s", settings='[plugins]\ndisable = ["echo", "mentions"]\n')
    monkeypatch.setenv("PARLEY_PLUGINS__DISABLE", '["echo"]')
    monkeypatch.setenv("PARLEY_TEMPLATES__SMALLTALK__PERSONAS", '["alex"]')

    settings = load_settings(folder)

    assert settings.plugins.disable == ["echo"]
    assert settings.templates["smalltalk"].personas == ["alex"]


def test_str_prefix_keeps_a_number_a_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_LLM__API_KEY", "@str 12345")

    assert load_settings(write(tmp_path / "s")).llm.api_key == "12345"


def test_environment_beats_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path / "s", secrets='[llm]\napi_key = "sk-file"\n')
    monkeypatch.setenv("PARLEY_LLM__API_KEY", "sk-env")

    assert load_settings(folder).llm.api_key == "sk-env"


def test_loads_do_not_leak_into_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a", settings="[server]\nport = 1111\n")
    second = write(tmp_path / "b", settings='[llm]\nmodel = "b-model"\n')
    environment = dict(os.environ)

    monkeypatch.setenv("PARLEY_SERVER__HOST", "0.0.0.0")
    assert load_settings(first).server == ServerSettings(host="0.0.0.0", port=1111)
    monkeypatch.delenv("PARLEY_SERVER__HOST")
    again = load_settings(second)

    assert again.server == ServerSettings()
    assert again.llm.model == "b-model"
    assert load_settings(first).llm.model == "gpt-4o-mini"
    assert dict(os.environ) == environment


def test_dynaconf_option_variables_do_not_change_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path / "other", settings="[server]\nport = 1234\n")
    folder = full(tmp_path / "s", secrets='[llm]\napi_key = "sk-secret"\n')
    monkeypatch.setenv("SETTINGS_FILE_FOR_DYNACONF", str(other / "settings.toml"))
    monkeypatch.setenv("MERGE_ENABLED_FOR_DYNACONF", "false")
    monkeypatch.setenv("ENVVAR_PREFIX_FOR_DYNACONF", "OTHER")
    monkeypatch.setenv("PARLEY_SERVER__PORT", "9001")

    settings = load_settings(folder)

    assert settings.server.port == 9001
    assert set(settings.templates) == {"friendly-assistant", "smalltalk"}
    assert settings.llm.api_key == "sk-secret"
    assert os.environ["SETTINGS_FILE_FOR_DYNACONF"] == str(other / "settings.toml")


# Validation


BAD_VALUES = [
    ({}, {"PARLEY_SERVER__PORT": "abc"}, "server.port: Expected `int`, got `str`"),
    (
        {"settings": "[server]\nport = 0\n"},
        {},
        "server.port: Expected `int` >= 1, got 0 (allowed: 1 to 65535)",
    ),
    (
        {"settings": "[server]\nport = 70000\n"},
        {},
        "server.port: Expected `int` <= 65535, got 70000 (allowed: 1 to 65535)",
    ),
    (
        {"personas": "[personas.alex]\ntemperature = 5\n"},
        {},
        "personas.alex.temperature: Expected `float` <= 2.0, got 5 (allowed: 0 to 2)",
    ),
    (
        {"personas": "[personas.alex]\npresence_penalty = -3\n"},
        {},
        "personas.alex.presence_penalty: Expected `float` >= -2.0, got -3 (allowed: -2 to 2)",
    ),
    (
        {"personas": "[personas.alex.model]\ntop_p = 2\n"},
        {},
        "personas.alex.top_p: Expected `float` <= 1.0, got 2 (allowed: 0 to 1)",
    ),
    (
        {"personas": "[personas.alex]\nname = [5]\n"},
        {},
        "personas.alex.name: Expected `str`, got `array`",
    ),
    (
        {"personas": PERSONAS, "templates": '[templates.t]\npersonas = ["alex", "maya"]\n'},
        {"PARLEY_CONVERSATION__DEFAULT_TEMPLATE": "t"},
        "templates.t.personas: unknown persona 'maya'",
    ),
    (
        {
            "personas": PERSONAS,
            "templates": '[templates.t]\npersonas = ["alex"]\ndefault_responders = ["bob"]',
        },
        {"PARLEY_CONVERSATION__DEFAULT_TEMPLATE": "t"},
        "templates.t.default_responders: unknown persona 'bob'",
    ),
    (
        {"personas": PERSONAS, "templates": TEMPLATES},
        {"PARLEY_CONVERSATION__DEFAULT_TEMPLATE": "helper"},
        "conversation.default_template: unknown template 'helper'",
    ),
    (
        {"personas": PERSONAS, "templates": '[templates.t]\nname = "Empty"\n'},
        {},
        "templates.t.personas: must list at least one persona id",
    ),
    (
        {"personas": PERSONAS, "templates": "[templates.t]\npersonas = []\n"},
        {},
        "templates.t.personas: must list at least one persona id",
    ),
    (
        {"personas": PERSONAS, "templates": TEMPLATES},
        {"PARLEY_TEMPLATES__SMALLTALK__MAX_TURNS": "-1"},
        "templates.smalltalk.max_turns: Expected `int` >= 0, got -1 (allowed: 0 to 1000000)",
    ),
    (
        {"personas": PERSONAS, "templates": TEMPLATES},
        {"PARLEY_TEMPLATES__SMALLTALK__TEMPERATURE": "3"},
        "templates.smalltalk.temperature: Expected `float` <= 2.0, got 3 (allowed: 0 to 2)",
    ),
    (
        {"settings": '[database]\nurl = "mysql://localhost/parley"\n'},
        {},
        "database.url: Expected `str` matching regex '^(sqlite|postgres|postgresql|asyncpg)://'",
    ),
    (
        {"settings": "[llm]\ntimeout = 0\n"},
        {},
        "llm.timeout: Expected `float` >= 0.1, got 0 (allowed: 0.1 to 3600)",
    ),
    (
        {"settings": "[llm]\nmax_tokens = 0\n"},
        {},
        "llm.max_tokens: Expected `int` >= 1, got 0 (allowed: 1 to 1000000)",
    ),
    (
        {"settings": "[conversation]\nhistory_window = -5\n"},
        {},
        "conversation.history_window: Expected `int` >= 0, got -5 (allowed: 0 to 10000)",
    ),
    (
        {"settings": "[plugins]\ndisable = 'echo'\n"},
        {},
        "plugins.disable: Expected `array`, got `str`",
    ),
    (
        {"languages": "[languages.en.prompts]\nstart = {a = 1}\n"},
        {},
        "languages.en.prompts.start: Expected `str | null`, got `object`",
    ),
    ({"settings": "server = 5\n"}, {}, "server: expected a table, got int"),
    (
        {"settings": '[routing]\nmode = "magic"\n'},
        {},
        "routing.mode: Invalid enum value 'magic' (allowed: one of keyword, llm)",
    ),
    (
        {"settings": "[tools]\ntimeout = 0\n"},
        {},
        "tools.timeout: Expected `float` >= 0.001, got 0 (allowed: 0.001 to 3600)",
    ),
    (
        {
            "personas": PERSONAS,
            "templates": '[templates.t]\npersonas = ["alex"]\n'
            '[[templates.t.agents]]\npersona = "well-bot"\n',
        },
        {"PARLEY_CONVERSATION__DEFAULT_TEMPLATE": "t"},
        "templates.t.agents: persona 'well-bot' is not one of the template's personas",
    ),
]


@pytest.mark.parametrize(
    ("files", "environment", "message"),
    BAD_VALUES,
    ids=[case[2].split(":")[0] for case in BAD_VALUES],
)
def test_bad_values_name_the_key_and_the_expectation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    environment: dict[str, str],
    message: str,
) -> None:
    folder = write(tmp_path / "s", **files)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(SettingsError) as error:
        load_settings(folder)

    assert str(error.value).startswith(message)


def test_default_template_is_not_checked_without_templates(tmp_path: Path) -> None:
    folder = write(tmp_path / "s", settings='[conversation]\ndefault_template = "helper"\n')

    assert load_settings(folder).conversation.default_template == "helper"


# Personas and model settings


def test_system_prompt_by_language_falls_back_to_english_then_to_any() -> None:
    persona = Persona(id="w", system_prompt={"en": "Hello.", "de": "Hallo."})

    assert persona.prompt_for("de") == "Hallo."
    assert persona.prompt_for("en") == "Hello."
    assert persona.prompt_for("fr") == "Hello."
    assert Persona(system_prompt={"de": "Hallo."}).prompt_for("fr") == "Hallo."
    assert Persona(system_prompt={}).prompt_for("en") == ""
    assert Persona(system_prompt="Always this.").prompt_for("de") == "Always this."


def test_system_prompt_table_from_files(tmp_path: Path) -> None:
    personas = '[personas.w.system_prompt]\nen = "Hello."\nde = "Hallo."\n'

    persona = load_settings(write(tmp_path / "s", personas=personas)).personas["w"]

    assert persona.prompt_for("de") == "Hallo."
    assert persona.prompt_for("es") == "Hello."


def test_model_settings_merge_later_set_values_win() -> None:
    defaults = LLMSettings(model="gpt-4o-mini", temperature=0.7, max_tokens=200).defaults()
    persona = ModelSettings(temperature=0.9, max_tokens=50, presence_penalty=0.6)
    template = ModelSettings(temperature=0.6, top_k=40)

    merged = defaults.merged(persona, None, template)

    assert merged == ModelSettings(
        model="gpt-4o-mini", temperature=0.6, max_tokens=50, presence_penalty=0.6, top_k=40
    )
    assert merged.as_dict() == {
        "model": "gpt-4o-mini",
        "temperature": 0.6,
        "max_tokens": 50,
        "presence_penalty": 0.6,
        "top_k": 40,
    }
    assert defaults.temperature == 0.7  # merged() returns a copy
    assert ModelSettings().merged(ModelSettings(), None) == ModelSettings()


def test_model_settings_check_ranges() -> None:
    with pytest.raises(SettingsError, match=r"^m\.top_p: Expected `float` <= 1\.0, got 1\.5"):
        parse_section("m", {"top_p": 1.5}, ModelSettings)
    assert parse_section("m", {"top_p": 1}, ModelSettings) == ModelSettings(top_p=1)


# The shipped settings


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the tracked files of settings/ (a local .secrets.toml must not count)."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    for name in SHIPPED_FILES:
        shutil.copy(SHIPPED / name, folder / name)
    return folder


def test_shipped_settings_load(shipped: Path) -> None:
    settings = load_settings(shipped)

    assert settings.server == ServerSettings(host="127.0.0.1", port=8000)
    assert settings.database.url == "sqlite://parley.sqlite3"
    assert settings.llm.provider == "auto"
    assert settings.llm.base_url is None
    assert settings.llm.api_key == ""
    assert settings.llm.model == "gpt-4o-mini"
    assert settings.conversation.default_template == "friendly-assistant"
    assert settings.conversation.language == "en"
    assert settings.plugins.disable == []

    assert settings.tools.timeout == 10
    assert (settings.routing.mode, settings.routing.lock_ttl) == ("keyword", 1800)
    assert set(settings.templates) == {
        "friendly-assistant",
        "smalltalk",
        "roundtable",
        "medical-intake",
    }
    assistant = settings.template("friendly-assistant")
    assert (assistant.name, assistant.personas) == ("Friendly assistant", ["alex"])
    smalltalk = settings.template("smalltalk")
    assert (smalltalk.name, smalltalk.personas) == ("Small talk", ["well-bot"])
    assert smalltalk.max_turns == 20
    assert smalltalk.model.temperature == 0.6
    assert (smalltalk.nudge_after, smalltalk.timeout_after) == (30, 60)
    roundtable = settings.template("roundtable")
    assert len(roundtable.personas) == 2
    characters = [settings.personas[pid] for pid in roundtable.personas]
    assert len({c.name for c in characters}) == 2
    assert len({c.voice for c in characters}) == 2
    for character in characters:
        assert "1-3 sentences" in character.prompt_for("en")
        assert "labelled by name" in character.prompt_for("en")

    alex = settings.personas["alex"]
    assert alex.name == "Alex"
    assert alex.prompt_for("en").startswith("You are a friendly, helpful assistant.")
    assert alex.model == ModelSettings(
        temperature=0.9, max_tokens=50, presence_penalty=0.6, frequency_penalty=0.6
    )
    assert alex.voice

    well_bot = settings.personas["well-bot"]
    assert well_bot.name == "Well-Bot"
    assert well_bot.model.temperature == 0.6
    assert isinstance(well_bot.system_prompt, dict)
    assert {"en", "de"} <= set(well_bot.system_prompt)
    assert well_bot.prompt_for("de") != well_bot.prompt_for("en")

    english = settings.language("en")
    for phrase in ("goodbye", "bye", "stop", "quit", "end chat", "see you"):
        assert phrase in english.termination_phrases
    assert english.prompts.start and "How are you feeling" not in english.prompts.start
    smalltalk = settings.templates["smalltalk"].greeting_for("en", english.prompts.start)
    assert smalltalk is not None and "How are you feeling today?" in smalltalk
    assert english.prompts.nudge and english.prompts.timeout and english.prompts.end
    german = settings.language("de")
    assert german.termination_phrases
    assert german.prompts.start and german.prompts.nudge
    assert german.prompts.timeout and german.prompts.end


def test_shipped_settings_take_environment_overrides(
    shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TEMPLATES__SMALLTALK__MAX_TURNS", "5")
    monkeypatch.setenv("PARLEY_LLM__BASE_URL", "https://api.deepseek.com")

    settings = load_settings(shipped)

    assert settings.template("smalltalk").max_turns == 5
    assert settings.llm.base_url == "https://api.deepseek.com"


CORE_SECTIONS = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "llm": LLMSettings,
    "conversation": ConversationSettings,
    "plugins": PluginsSettings,
    "tools": ToolsSettings,
    "routing": RoutingSettings,
}


def test_shipped_settings_toml_spells_out_every_default() -> None:
    data = tomllib.loads((SHIPPED / "settings.toml").read_text(encoding="utf-8"))
    # shown commented out
    unset_by_default = {("llm", "temperature"), ("llm", "max_tokens"), ("routing", "model")}

    for section, cls in CORE_SECTIONS.items():
        default = cls()
        for f in fields(cls):
            if (section, f.name) in unset_by_default:
                assert f.name not in data[section]
                continue
            value = data[section][f.name]
            expected = getattr(default, f.name)
            assert value == ("" if f.name == "base_url" else expected), f"{section}.{f.name}"
        assert set(data[section]) <= {f.name for f in fields(cls)}, section


def test_docs_describe_every_key() -> None:
    docs = (SHIPPED.parent / "docs" / "settings.md").read_text(encoding="utf-8")
    documented = [*CORE_SECTIONS.items(), ("personas", Persona), ("templates", Template)]
    documented += [("model", ModelSettings), ("languages", Language), ("agents", Agent)]

    for section, cls in documented:
        assert f"`{section}" in docs or f"[{section}]" in docs, section
        for f in fields(cls):
            if f.name in {"id", "code", "model", "prompts"}:
                continue
            assert f"| `{f.name}` |" in docs, f"{section}.{f.name}"
    for prompt in fields(LanguagePrompts):
        assert f"| `prompts.{prompt.name}` |" in docs
    for variable in ("PARLEY_LLM__BASE_URL", "PARLEY_TEMPLATES__SMALLTALK__MAX_TURNS"):
        assert variable in docs
    assert "PARLEY_SETTINGS_DIR" in docs and "--settings DIR" in docs
    assert "settings error: server.port: Expected `int` >= 1, got 0 (allowed: 1 to 65535)" in docs


def test_numeric_environment_values_for_string_settings(tmp_path, monkeypatch):
    (tmp_path / "settings.toml").write_text('[llm]\nmodel = "m"\n')
    monkeypatch.setenv("PARLEY_LLM__API_KEY", "12345")
    monkeypatch.setenv("PARLEY_LLM__MAX_RETRIES", "4")
    settings = load_settings(tmp_path)
    assert settings.llm.api_key == "12345"  # a str field: the number is kept as text
    assert settings.llm.max_retries == 4  # an int field stays an int


def _docs_sections(text: str) -> dict[str, str]:
    """docs/settings.md cut at its headings: the heading's first backticked name (or its words)."""
    sections: dict[str, str] = {}
    for block in re.split(r"^#{2,3} ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        name = re.search(r"`\[*([a-z_]+)", heading)
        sections.setdefault(name[1] if name else heading.strip(), body)
    return sections


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _documented_classes() -> dict[str, type]:
    from parley.adapters.telegram.settings import TelegramSettings
    from parley.adapters.web.settings import WebSettings
    from parley.adapters.whatsapp.settings import WhatsAppSettings
    from parley.core.inbox import InboxSettings
    from parley.plugins.deepgram.settings import DeepgramSettings
    from parley.plugins.elevenlabs.settings import ElevenLabsSettings
    from parley.plugins.memory import MemorySettings
    from parley.plugins.notify import NotifySettings

    return {
        **CORE_SECTIONS,
        "Model settings": ModelSettings,
        "personas": Persona,
        "templates": Template,
        "inbox": InboxSettings,
        "memory": MemorySettings,
        "notify": NotifySettings,
        "stt": DeepgramSettings,
        "tts": ElevenLabsSettings,
        "whatsapp": WhatsAppSettings,
        "telegram": TelegramSettings,
        "web": WebSettings,
    }


def test_docs_tables_hold_every_key_its_default_and_its_range() -> None:
    """The settings classes are the truth: each key has a row in its section of
    docs/settings.md, the row's default is the class's, and a ``Meta`` range is stated."""
    from typing import get_type_hints

    from parley.core.validation import rule_of

    sections = _docs_sections((SHIPPED.parent / "docs" / "settings.md").read_text("utf-8"))
    wrong: list[str] = []
    for section, cls in _documented_classes().items():
        body = sections[section]
        hints = get_type_hints(cls, include_extras=True)
        for f in fields(cls):
            if f.name in {"id", "code", "model", "prompts"} and cls in (Persona, Template):
                continue
            row = next((r for r in body.splitlines() if r.startswith(f"| `{f.name}` |")), None)
            if not row:
                wrong.append(f"{section}.{f.name}: no row")
                continue
            cells = [c.strip() for c in row.split("|")[1:-1]]
            rule = rule_of(hints[f.name])
            low_high = re.findall(r"-?[\d.]+", rule) if "one of" not in rule else []
            text = row.replace(",", "").replace("`", "")
            for bound in low_high:
                if _number(float(bound)) not in text:
                    wrong.append(f"{section}.{f.name}: range {rule} not stated")
            if "Default" not in body.split("\n|", 1)[1].split("\n")[0]:
                continue
            default = cells[2].strip("`")
            try:
                documented = tomllib.loads(f"x = {default}")["x"]
            except tomllib.TOMLDecodeError:
                continue  # "unset", "both", "the id"... said in words
            defaults = cls(personas=["p"]) if cls is Template else cls()
            if documented != (getattr(defaults, f.name) or type(documented)()):
                wrong.append(f"{section}.{f.name}: default {default}")
    assert wrong == [], "\n".join(wrong)


def test_a_plugin_section_validated_every_turn_resolves_its_types_once(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from parley.core import validation

    @dataclass
    class Phone:
        number_id: str = ""
        retries: int = 1

    folder = write(tmp_path / "s", settings="[phone]\nnumber_id = 123\nretries = 2\n")
    settings = load_settings(folder)

    first = settings.section("phone", Phone)
    assert Phone in validation._HINTS  # resolved once, kept for the next call
    second = settings.section("phone", Phone)

    # The kept types still turn a number given for a str field into a string, every time.
    assert first == second == Phone(number_id="123", retries=2)
