"""Typed settings objects and their validation. Loading from files is in ``loading.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from msgspec import Meta

from parley.core.validation import InvalidSetting, SettingsError, parse_section

__all__ = [
    "MODEL_KEYS",
    "Agent",
    "ConversationSettings",
    "DatabaseSettings",
    "InvalidSetting",
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
    "parse_section",
]

T = TypeVar("T")


@dataclass(slots=True)
class ModelSettings:
    """Sampling settings for one LLM call. ``None`` means "not set here": the next layer decides."""

    model: str | None = None
    """Model name, e.g. ``gpt-4o-mini`` or ``deepseek-chat``."""
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    """Sampling temperature."""
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    """Nucleus sampling."""
    max_tokens: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    """Upper bound on the reply's tokens."""
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    """Penalty for tokens already present."""
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    """Penalty by token frequency."""
    top_k: Annotated[int, Meta(ge=0, le=1000)] | None = None
    """Sent through ``extra_body`` to servers that accept it (OpenRouter, vLLM...)."""
    min_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    """Sent through ``extra_body``."""
    repetition_penalty: Annotated[float, Meta(ge=0, le=2)] | None = None
    """Sent through ``extra_body``."""

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
    port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    """TCP port."""


@dataclass(slots=True)
class DatabaseSettings:
    """The database Tortoise connects to."""

    url: Annotated[str, Meta(pattern=r"^(sqlite|postgres|postgresql|asyncpg)://")] = (
        "sqlite://parley.sqlite3"
    )
    """``sqlite://path``, ``sqlite://:memory:`` or ``postgres://user:pass@host:5432/db``."""


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
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    """Default temperature."""
    max_tokens: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    """Default reply cap."""
    timeout: Annotated[float, Meta(ge=0.1, le=3600)] = 60.0
    """Seconds before a request is abandoned."""
    max_retries: Annotated[int, Meta(ge=0, le=20)] = 2
    """Retries on 429, 5xx and connection errors (with backoff)."""
    max_tool_steps: Annotated[int, Meta(ge=0, le=100)] = 5
    """Rounds of tool calls per reply."""

    def __post_init__(self) -> None:
        if not self.base_url:
            self.base_url = None

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
    history_window: Annotated[int, Meta(ge=0, le=10_000)] = 20
    """How many past messages go to the LLM."""
    max_turns: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    """Turns before the conversation ends (0 = unlimited)."""
    session_ttl: Annotated[float, Meta(ge=1, le=10**9)] = 86400
    """Seconds of inactivity after which a conversation expires."""
    language: str = "en"
    """Default language code."""


@dataclass(slots=True)
class RedisSettings:
    """Shared state for running several Parley processes (optional)."""

    url: Annotated[str, Meta(pattern=r"^((redis|rediss|unix)://|$)")] = ""
    """``redis://host:6379/0``; empty: one process, in-process locks."""
    lock_ttl: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    """Seconds a conversation lock survives a crashed holder (renewed while held)."""


@dataclass(slots=True)
class PluginsSettings:
    """Which plugins load."""

    disable: list[str] = field(default_factory=list)
    """Plugin names to turn off (built-in or entry point)."""


@dataclass(slots=True)
class ToolsSettings:
    """How tools run (see docs/tools.md)."""

    timeout: Annotated[float, Meta(ge=0.001, le=3600)] = 10.0
    """Seconds a tool call may take before it is cancelled and an error result goes to the model."""


@dataclass(slots=True)
class RoutingSettings:
    """Intent routing for templates with ``agents``."""

    mode: Literal["keyword", "llm"] = "keyword"
    """``keyword``: an agent whose intents appear in the message; ``llm``: the LLM classifies."""
    lock_ttl: Annotated[float, Meta(ge=0, le=10**9)] = 1800
    """Seconds a chosen agent stays locked to the conversation (0: until hand-off or the end)."""
    model: str | None = None
    """Model for ``llm`` classification (default ``llm.model``)."""


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
    """Persona ids (at least one); more than one makes a multi-character conversation."""
    default_responders: list[str] = field(default_factory=list)
    """Who answers a message that names nobody (default: every persona, in order)."""
    max_turns: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    """Overrides ``conversation.max_turns``."""
    history_window: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    """Overrides ``conversation.history_window``."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Overrides of the model settings (keys at the template's top level in TOML)."""
    nudge_after: Annotated[float, Meta(ge=0.1, le=86400)] | None = None
    """Seconds of silence before the nudge prompt (WebSocket)."""
    timeout_after: Annotated[float, Meta(ge=0.1, le=86400)] | None = None
    """Seconds of silence after the nudge before the timeout prompt ends the conversation."""
    barge_in: bool = True
    """Whether the user's speech interrupts a spoken reply."""
    agents: list[Agent] = field(default_factory=list)
    """Intent routing: ``[{persona, intents, description}]``; the first agent greets and is the
    default. A template with agents has one agent answer each turn (see docs/tools.md)."""
    greeting: str | dict[str, str] | None = None
    """The first message of its conversations: a string, or a table by language code. Unset:
    the language pack's ``prompts.start``; ``""``: no greeting."""

    def greeting_for(self, language: str, fallback: str | None) -> str | None:
        """The greeting in ``language`` (then ``en``, then any), ``fallback`` when unset, None
        for none."""
        greeting = self.greeting
        if greeting is None:
            return fallback or None
        if isinstance(greeting, dict):
            greeting = (
                greeting.get(language) or greeting.get("en") or next(iter(greeting.values()), "")
            )
        return greeting or None

    def __post_init__(self) -> None:
        if not self.personas:  # also when the key is absent: Meta does not check defaults
            raise InvalidSetting("personas", "must list at least one persona id")


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


MODEL_KEYS = frozenset(f.name for f in fields(ModelSettings))
"""Keys of :class:`ModelSettings`, written at a persona's or template's top level."""
