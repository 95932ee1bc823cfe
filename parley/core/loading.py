"""Settings loading: the settings folder and ``PARLEY_*`` variables, through dynaconf.

Files (all in the settings folder, each optional but ``settings.toml``): ``settings.toml``,
``personas.toml``, ``templates.toml``, ``languages.toml`` and the git-ignored ``.secrets.toml``.
Environment variables override with prefix ``PARLEY_`` and ``__`` for nesting
(``PARLEY_LLM__BASE_URL``): their tables merge into the files' tables, their other values (lists
too) replace the files' values. Keys are case-insensitive and read in lower case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from parley.core.config import (
    MODEL_KEYS,
    ConversationSettings,
    DatabaseSettings,
    Language,
    LLMSettings,
    Persona,
    PluginsSettings,
    RedisSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
    SettingsError,
    Template,
    ToolsSettings,
    parse_section,
)

__all__ = ["SETTINGS_FILES", "load_settings", "settings_dir", "settings_from_dict"]

SETTINGS_FILES = (
    "settings.toml",
    "personas.toml",
    "templates.toml",
    "languages.toml",
    ".secrets.toml",
)

_NOT_SETTINGS = ("load_dotenv", "settings_dir")
"""Keys that dynaconf (an argument) or the environment (``PARLEY_SETTINGS_DIR``) put in the tree."""


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _split_model(data: dict[str, Any]) -> dict[str, Any]:
    """Move top-level model keys of a persona/template table into its ``model`` table."""
    data = dict(data)
    model = dict(data.pop("model", None) or {}) if isinstance(data.get("model"), dict) else {}
    if isinstance(data.get("model"), str):
        model["model"] = data.pop("model")
    for key in list(data):
        if key in MODEL_KEYS:
            model[key] = data.pop(key)
    data["model"] = model
    return data


def settings_from_dict(raw: dict[str, Any], directory: Path | None = None) -> Settings:
    """Validate an already-loaded settings tree (lower-cased keys) into :class:`Settings`."""
    raw = _lower_keys(raw)

    def table(name: str) -> dict[str, Any]:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise SettingsError(f"{name}: expected a table, got {type(value).__name__}")
        return value

    personas = {}
    for pid, data in table("personas").items():
        persona = parse_section(f"personas.{pid}", _split_model(data), Persona, lift="model")
        persona.id = pid
        persona.name = persona.name or pid
        personas[pid] = persona
    templates = {}
    for tid, data in table("templates").items():
        template = parse_section(f"templates.{tid}", _split_model(data), Template, lift="model")
        template.id = tid
        template.name = template.name or tid
        for key in ("personas", "default_responders"):
            for pid in getattr(template, key):
                if pid not in personas:
                    raise SettingsError(f"templates.{tid}.{key}: unknown persona {pid!r}")
        for agent in template.agents:
            if agent.persona not in template.personas:
                raise SettingsError(
                    f"templates.{tid}.agents: persona {agent.persona!r} is not one of the "
                    "template's personas"
                )
        templates[tid] = template
    languages = {}
    for code, data in table("languages").items():
        language = parse_section(f"languages.{code}", data, Language)
        language.code = code
        languages[code] = language
    settings = Settings(
        server=parse_section("server", table("server"), ServerSettings),
        database=parse_section("database", table("database"), DatabaseSettings),
        llm=parse_section("llm", table("llm"), LLMSettings),
        conversation=parse_section("conversation", table("conversation"), ConversationSettings),
        plugins=parse_section("plugins", table("plugins"), PluginsSettings),
        redis=parse_section("redis", table("redis"), RedisSettings),
        tools=parse_section("tools", table("tools"), ToolsSettings),
        routing=parse_section("routing", table("routing"), RoutingSettings),
        personas=personas,
        templates=templates,
        languages=languages,
        raw=raw,
        directory=directory,
    )
    default = settings.conversation.default_template
    if templates and default not in templates:
        raise SettingsError(f"conversation.default_template: unknown template {default!r}")
    return settings


def settings_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The settings folder: ``explicit``, else ``PARLEY_SETTINGS_DIR``, else ``./settings``."""
    return Path(explicit or os.environ.get("PARLEY_SETTINGS_DIR") or "settings").resolve()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (lists too) replaces the one below it."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


_DYNACONF_OLD_NAMES = ("SETTINGS_MODULE", "PROJECT_ROOT")
"""Old names of dynaconf options that neither start with ``DYNACONF_`` nor end with
``_FOR_DYNACONF`` (``dynaconf.utils.RENAMED_VARS``; importing it would already read them)."""


@contextmanager
def _dynaconf_options_hidden() -> Iterator[None]:
    """Hide dynaconf's own option variables (``*_FOR_DYNACONF`` and old names) while loading.

    Dynaconf lets them win over the arguments given here: ``SETTINGS_FILE_FOR_DYNACONF`` would
    replace the settings folder's files, ``MERGE_ENABLED_FOR_DYNACONF`` or
    ``LOADERS_FOR_DYNACONF`` would change how they are read.
    """
    hidden = {
        key: os.environ.pop(key)
        for key in list(os.environ)
        if key.endswith("_FOR_DYNACONF")
        or key.startswith("DYNACONF_")
        or key in _DYNACONF_OLD_NAMES
    }
    try:
        yield
    finally:
        os.environ.update(hidden)


def _dynaconf_tree(files: list[str], *, environment: bool) -> dict[str, Any]:
    """The files' merged tree, or (``environment``) the ``PARLEY_*`` variables' tree, lower-cased."""
    with _dynaconf_options_hidden():
        from dynaconf import Dynaconf

        loaded = Dynaconf(
            envvar_prefix="PARLEY",
            settings_files=files,
            merge_enabled=not environment,
            environments=False,
            load_dotenv=False,
            loaders=["dynaconf.loaders.env_loader"] if environment else [],
        )
        tree = _lower_keys(dict(loaded.as_dict()))
    for key in _NOT_SETTINGS:
        tree.pop(key, None)
    return tree


def load_settings(directory: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the settings folder plus ``PARLEY_*`` environment overrides."""
    folder = settings_dir(directory)
    if not (folder / "settings.toml").is_file():
        raise SettingsError(f"settings: no settings.toml in {folder}")
    # Two passes: dynaconf's merge appends an environment variable's list to the file's list
    # (PARLEY_PLUGINS__DISABLE='["x"]' could never shorten it), so the environment's tree is
    # read on its own and laid over the files' tree with lists replaced.
    files = _dynaconf_tree([str(folder / name) for name in SETTINGS_FILES], environment=False)
    environment = _dynaconf_tree([], environment=True)
    return settings_from_dict(_merge(files, environment), folder)
