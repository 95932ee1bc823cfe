"""Typed settings objects and their validation. Loading from files is in ``loading.py``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec

__all__ = [
    "Agent",
    "ConversationSettings",
    "DatabaseSettings",
    "LLMSettings",
    "Language",
    "ModelSettings",
    "Persona",
    "PluginsSettings",
    "RedisSettings",
    "RoutingSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "Template",
    "ToolsSettings",
    "check_range",
    "parse_section",
]

T = TypeVar("T")


class SettingsError(Exception):
    """A setting is missing or has the wrong type or value. The message names the key."""


def check_range(name: str, value: float | None, low: float, high: float) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is None or within [low, high]."""
    if value is not None and not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


@dataclass(slots=True)
class ModelSettings:
    """Sampling settings for one LLM call. ``None`` means "not set here": the next layer decides."""

    model: str | None = None
    """Model name, e.g. ``gpt-4o-mini`` or ``deepseek-chat``."""
    temperature: float | None = None
    """0 to 2."""
    top_p: float | None = None
    """0 to 1."""
    max_tokens: int | None = None
    """Upper bound on the reply's tokens."""
    presence_penalty: float | None = None
    """-2 to 2."""
    frequency_penalty: float | None = None
    """-2 to 2."""
    top_k: int | None = None
    """Sent through ``extra_body`` to servers that accept it (OpenRouter, vLLM...)."""
    min_p: float | None = None
    """0 to 1; sent through ``extra_body``."""
    repetition_penalty: float | None = None
    """0 to 2; sent through ``extra_body``."""

    def __post_init__(self) -> None:
        check_range("temperature", self.temperature, 0, 2)
        check_range("top_p", self.top_p, 0, 1)
        check_range("min_p", self.min_p, 0, 1)
        check_range("presence_penalty", self.presence_penalty, -2, 2)
        check_range("frequency_penalty", self.frequency_penalty, -2, 2)
        check_range("repetition_penalty", self.repetition_penalty, 0, 2)
        check_range("max_tokens", self.max_tokens, 1, 1_000_000)
        check_range("top_k", self.top_k, 0, 1000)

    def merged(self, *overrides: ModelSettings | None) -> ModelSettings:
        """A copy where each later override's set (non-None) values win."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for override in overrides:
            if override is None:
                continue
            for f in fields(override):
                value = getattr(override, f.name)
                if value is not None:
                    values[f.name] = value
        return ModelSettings(**values)

    def as_dict(self) -> dict[str, Any]:
        """The set values only."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


@dataclass(slots=True)
class ServerSettings:
    """Where ``parley serve`` listens."""

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8000
    """TCP port."""

    def __post_init__(self) -> None:
        check_range("port", self.port, 1, 65535)


@dataclass(slots=True)
class DatabaseSettings:
    """The database Tortoise connects to."""

    url: str = "sqlite://parley.sqlite3"
    """``sqlite://path``, ``sqlite://:memory:`` or ``postgres://user:pass@host:5432/db``."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise ValueError(f"url must start with sqlite:// or postgres://, got {self.url!r}")


@dataclass(slots=True)
class LLMSettings:
    """The LLM provider and its defaults."""

    provider: str = "auto"
    """Name of a registered LLM provider (``openai``, ``local``, ``echo`` or a plugin's);
    ``auto``: ``openai`` with a key or ``base_url``, else ``local`` when installed, else ``echo``."""
    base_url: str | None = None
    """OpenAI-compatible endpoint; empty for api.openai.com."""
    api_key: str = ""
    """Empty: the ``OPENAI_API_KEY`` environment variable is used."""
    model: str = "gpt-4o-mini"
    """Default model."""
    temperature: float | None = None
    """Default temperature (0 to 2)."""
    max_tokens: int | None = None
    """Default reply cap."""
    timeout: float = 60.0
    """Seconds before a request is abandoned."""
    max_retries: int = 2
    """Retries on 429, 5xx and connection errors (with backoff)."""
    max_tool_steps: int = 5
    """Rounds of tool calls per reply."""

    def __post_init__(self) -> None:
        if not self.base_url:
            self.base_url = None
        check_range("temperature", self.temperature, 0, 2)
        check_range("max_tokens", self.max_tokens, 1, 1_000_000)
        check_range("timeout", self.timeout, 0.1, 3600)
        check_range("max_retries", self.max_retries, 0, 20)
        check_range("max_tool_steps", self.max_tool_steps, 0, 100)

    def resolved_api_key(self) -> str:
        """``api_key``, or the ``OPENAI_API_KEY`` environment variable."""
        return self.api_key or os.environ.get("OPENAI_API_KEY", "")

    def defaults(self) -> ModelSettings:
        """The model settings these defaults stand for."""
        return ModelSettings(
            model=self.model, temperature=self.temperature, max_tokens=self.max_tokens
        )


@dataclass(slots=True)
class ConversationSettings:
    """Defaults for every conversation."""

    default_template: str = "friendly-assistant"
    """Template used when a channel names none."""
    history_window: int = 20
    """How many past messages go to the LLM."""
    max_turns: int = 0
    """Turns before the conversation ends (0 = unlimited)."""
    session_ttl: float = 86400
    """Seconds of inactivity after which a conversation expires."""
    language: str = "en"
    """Default language code."""

    def __post_init__(self) -> None:
        check_range("history_window", self.history_window, 0, 10_000)
        check_range("max_turns", self.max_turns, 0, 1_000_000)
        check_range("session_ttl", self.session_ttl, 1, 10**9)


@dataclass(slots=True)
class RedisSettings:
    """Shared state for running several Parley processes (optional)."""

    url: str = ""
    """``redis://host:6379/0``; empty: one process, in-process locks."""
    lock_ttl: float = 30.0
    """Seconds a conversation lock survives a crashed holder (renewed while held)."""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"url must start with redis://, rediss:// or unix://, got {self.url!r}"
            )
        check_range("lock_ttl", self.lock_ttl, 1, 3600)


@dataclass(slots=True)
class PluginsSettings:
    """Which plugins load."""

    disable: list[str] = field(default_factory=list)
    """Plugin names to turn off (built-in or entry point)."""


@dataclass(slots=True)
class ToolsSettings:
    """How tools run (see docs/tools.md)."""

    timeout: float = 10.0
    """Seconds a tool call may take before it is cancelled and an error result goes to the model."""

    def __post_init__(self) -> None:
        check_range("timeout", self.timeout, 0.001, 3600)


ROUTING_MODES = ("keyword", "llm")


@dataclass(slots=True)
class RoutingSettings:
    """Intent routing for templates with ``agents``."""

    mode: str = "keyword"
    """``keyword``: an agent whose intents appear in the message; ``llm``: the LLM classifies."""
    lock_ttl: float = 1800
    """Seconds a chosen agent stays locked to the conversation (0: until hand-off or the end)."""
    model: str | None = None
    """Model for ``llm`` classification (default ``llm.model``)."""

    def __post_init__(self) -> None:
        if self.mode not in ROUTING_MODES:
            raise ValueError(f"mode must be one of {', '.join(ROUTING_MODES)}, got {self.mode!r}")
        check_range("lock_ttl", self.lock_ttl, 0, 10**9)


@dataclass(slots=True)
class Agent:
    """One routed agent of a template: a persona and the intents that lead to it."""

    persona: str = ""
    """Persona id (one of the template's ``personas``)."""
    intents: list[str] = field(default_factory=list)
    """Keywords or short phrases; a message containing one is routed here (``keyword`` mode)."""
    description: str = ""
    """What the agent handles, for ``llm`` classification (default: its intents)."""


@dataclass(slots=True)
class Persona:
    """A character the agent plays."""

    id: str = ""
    """Filled from the table key."""
    name: str = ""
    """Display name; also what users mention (``@Name``)."""
    system_prompt: str | dict[str, str] = ""
    """A string, or a table by language code."""
    voice: str | None = None
    """TTS voice id (wins over ``tts.voice``)."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Model settings for this persona (keys at the persona's top level in TOML)."""
    tools: list[str] = field(default_factory=list)
    """Tool names this persona may call."""

    def prompt_for(self, language: str) -> str:
        """The system prompt in ``language`` (falls back to ``en``, then to any)."""
        if isinstance(self.system_prompt, str):
            return self.system_prompt
        prompts = self.system_prompt
        return prompts.get(language) or prompts.get("en") or next(iter(prompts.values()), "")


@dataclass(slots=True)
class Template:
    """A kind of conversation: who speaks, for how long, with which settings."""

    id: str = ""
    """Filled from the table key."""
    name: str = ""
    """Display name."""
    personas: list[str] = field(default_factory=list)
    """Persona ids; more than one makes a multi-character conversation."""
    default_responders: list[str] = field(default_factory=list)
    """Who answers a message that names nobody (default: every persona, in order)."""
    max_turns: int | None = None
    """Overrides ``conversation.max_turns``."""
    history_window: int | None = None
    """Overrides ``conversation.history_window``."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Overrides of the model settings (keys at the template's top level in TOML)."""
    nudge_after: float | None = None
    """Seconds of silence before the nudge prompt (WebSocket)."""
    timeout_after: float | None = None
    """Seconds of silence after the nudge before the timeout prompt ends the conversation."""
    barge_in: bool = True
    """Whether the user's speech interrupts a spoken reply."""
    agents: list[Agent] = field(default_factory=list)
    """Intent routing: ``[{persona, intents, description}]``; the first agent greets and is the
    default. A template with agents has one agent answer each turn (see docs/tools.md)."""

    def __post_init__(self) -> None:
        if not self.personas:
            raise ValueError("personas must list at least one persona id")
        check_range("max_turns", self.max_turns, 0, 1_000_000)
        check_range("history_window", self.history_window, 0, 10_000)
        check_range("nudge_after", self.nudge_after, 0.1, 86400)
        check_range("timeout_after", self.timeout_after, 0.1, 86400)


@dataclass(slots=True)
class LanguagePrompts:
    """Fixed things the assistant says in a language."""

    start: str | None = None
    """Greeting that opens a conversation."""
    nudge: str | None = None
    """Said after ``nudge_after`` seconds of silence."""
    timeout: str | None = None
    """Said when the silence lasts ``timeout_after`` more seconds; the conversation ends."""
    end: str | None = None
    """Said when the conversation ends (termination phrase, max turns, /end)."""


@dataclass(slots=True)
class Language:
    """A language pack."""

    code: str = ""
    """Filled from the table key (``en``, ``de``...)."""
    termination_phrases: list[str] = field(default_factory=list)
    """A user message equal to one of these (ignoring case and punctuation) ends the conversation."""
    prompts: LanguagePrompts = field(default_factory=LanguagePrompts)
    """Greeting, nudge, timeout and end prompts."""


@dataclass(slots=True)
class Settings:
    """All validated settings. ``raw`` keeps every section for plugins and adapters."""

    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    plugins: PluginsSettings = field(default_factory=PluginsSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    tools: ToolsSettings = field(default_factory=ToolsSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    personas: dict[str, Persona] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    languages: dict[str, Language] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    def section(self, name: str, cls: type[T]) -> T:
        """Validate ``raw[name]`` into ``cls`` (adapters and plugins keep their own settings class)."""
        return parse_section(name, self.raw.get(name) or {}, cls)

    def template(self, template_id: str) -> Template:
        """The template, or KeyError."""
        return self.templates[template_id]

    def language(self, code: str) -> Language:
        """The language pack for ``code`` (an empty pack when there is none)."""
        return self.languages.get(code) or Language(code=code)

    def with_overrides(self, **sections: Any) -> Settings:
        """A copy with whole sections replaced (tests and the CLI use it)."""
        return replace(self, **sections)


_MODEL_KEYS = {f.name for f in fields(ModelSettings)}


_CHECK_MESSAGE = re.compile(r"([a-z_]+) must ")
"""A ``__post_init__`` message (``port must be between...``) starts with its field's name."""


def _wants_str(hint: Any) -> bool:
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    return str in options and not {int, float, bool} & set(options)


def _numbers_as_strings(data: Any, cls: Any) -> Any:
    """Numbers given for ``str`` fields become strings: an environment variable's ``123`` (a phone
    number id, a numeric voice id) is parsed as TOML, so it arrives as an integer."""
    if not (is_dataclass(cls) and isinstance(data, dict)):
        return data
    try:
        hints = get_type_hints(cls)
    except Exception:  # a class whose annotations cannot be resolved: validate as given
        return data
    out = dict(data)
    for f in fields(cls):
        if f.name not in out:
            continue
        value, hint = out[f.name], hints.get(f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and _wants_str(hint):
            out[f.name] = str(value)
        elif is_dataclass(hint):
            out[f.name] = _numbers_as_strings(value, hint)
    return out


def parse_section(name: str, data: Any, cls: type[T]) -> T:
    """Validate ``data`` into ``cls``; a failure raises SettingsError naming the key."""
    try:
        return msgspec.convert(_numbers_as_strings(data, cls), cls, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        detail, _, where = message.rpartition(" - at `$")
        if not detail:
            detail, where = message, ""
        key = f"{name}{where.rstrip('`')}"
        checked = _CHECK_MESSAGE.match(detail)
        if checked:
            # Raised by a __post_init__ check, which names its own field. Model keys are
            # written at the persona's or template's top level, so name them there.
            if checked[1] in _MODEL_KEYS and key.endswith(".model"):
                key = key.removesuffix(".model")
            key = f"{key}.{checked[1]}"
        raise SettingsError(f"{key}: {detail}") from None
