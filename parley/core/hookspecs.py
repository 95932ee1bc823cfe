"""Every Parley hook, one docstring each.

Implementations of lifecycle and per-turn hooks may be plain functions or ``async def``; the
engine awaits what needs awaiting. ``register_*`` hooks must be plain functions. A hook
implementation that raises is logged with the plugin's name and the turn goes on. Arguments are
passed by keyword; an implementation may accept any subset of them. pluggy wrappers
(``wrapper=True``, ``hookwrapper=True``) are refused at registration (docs/hooks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from parley.core.config import Persona, Template
    from parley.core.inbound import Inbound
    from parley.core.plugin_context import PluginContext
    from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "parley"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- contributions (called once at start-up) -------------------------------------------------


@hookspec
def register_llm_providers(register: Callable[..., None]) -> None:
    """Contribute LLM providers: ``register(name, factory)``.

    ``factory(settings)`` returns an object with ``name`` and ``stream(request)`` (see
    :class:`parley.core.providers.LLMProvider`). Called once when the runtime starts.
    """


@hookspec
def register_stt_providers(register: Callable[..., None]) -> None:
    """Contribute speech-to-text providers: ``register(name, factory)``.

    ``factory(settings)`` returns a :class:`parley.core.providers.STTProvider`.
    """


@hookspec
def register_tts_providers(register: Callable[..., None]) -> None:
    """Contribute text-to-speech providers: ``register(name, factory)``.

    ``factory(settings)`` returns a :class:`parley.core.providers.TTSProvider`.
    """


@hookspec
def register_adapters(register: Callable[..., None]) -> None:
    """Contribute platform adapters: ``register(name, factory)``.

    ``factory(context)`` gets a :class:`parley.AdapterContext` (settings, store, the engine, the
    live conversations, the inbox, locks, telemetry, background tasks; never the runtime) and
    returns a :class:`parley.Adapter`, or None when the adapter is disabled by its settings. Called
    once when the runtime collects plugins; ``parley serve`` mounts each adapter's routes and
    starts it.
    """


@hookspec
def register_settings(register: Callable[..., None]) -> None:
    """Declare a plugin's own settings section: ``register(section, SettingsClass)``.

    Every registered section is validated into its class when the runtime collects plugins,
    before anything starts: a bad value stops start-up with the key's name (exit code 2),
    exactly like the core settings. Read it later with ``context.section(...)`` (``startup``).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add ``parley`` CLI commands: ``@cli.command()`` on a function, as with any click group.

    Called when the ``parley`` command looks up a command it does not know, or lists them
    (``parley --help``). A name taken by a built-in command or an earlier plugin is refused with
    a warning.
    """


@hookspec
def register_routes(register: Callable[..., None]) -> None:
    """Contribute extra Litestar route handlers: ``register(handler)``, mounted by ``parley serve``.

    A route reaches the running instance through the dependency ``context`` (the
    :class:`~parley.core.plugin_context.PluginContext` that ``startup`` gets), never the runtime.
    """


@hookspec
def register_tools(register: Callable[..., None]) -> None:
    """Contribute tools the model may call: ``register(tool)`` with a :class:`parley.core.tools.Tool`.

    A persona may call the tools named in ``personas.<id>.tools``. The first tool registered under
    a name wins (third-party plugins run before the built-ins). Called once when the engine is built.
    """


# -- lifecycle -------------------------------------------------------------------------------


@hookspec
def startup(context: PluginContext) -> None:
    """The runtime has started (database open, providers built). May be async.

    ``context`` (:class:`parley.PluginContext`) is what a plugin may use: settings, store, the
    providers, engine commands (``say``, ``end``) and tracked background tasks. Keep it.
    """


@hookspec
def shutdown(context: PluginContext) -> None:
    """The runtime is stopping (adapters already stopped); release what ``startup`` took and
    finish background work. May be async. Tasks still running afterwards are cancelled."""


@hookspec
def conversation_started(conversation: ConversationRecord) -> None:
    """A conversation was opened (before its greeting is stored)."""


@hookspec
def conversation_ended(conversation: ConversationRecord, reason: str) -> None:
    """A conversation ended: ``reason`` is ``user_ended``, ``max_turns``, ``expired``, ``timeout``..."""


# -- per turn --------------------------------------------------------------------------------


@hookspec
def transcribed(conversation: ConversationRecord, text: str) -> None:
    """Speech of the user was transcribed to ``text`` (before the turn runs): once per recording
    (by the engine's turn) or live utterance (by the conversation runtime, as it becomes a turn)."""


@hookspec(firstresult=True)
def select_responders(
    conversation: ConversationRecord, template: Template, text: str, personas: list[Persona]
) -> list[str] | None:
    """Choose which personas answer ``text``: return their ids in speaking order.

    Stops at the first non-None result. The built-in rule: a mentioned character answers
    (``@Name`` or the name as a word), otherwise the template's default responders, or all.
    """


@hookspec(firstresult=True)
def route(conversation: ConversationRecord, inbound: Inbound, template: Template) -> str | None:
    """Pick the agent (a persona id of ``template.agents``) that answers this turn.

    Called only for templates with ``agents`` and only while no agent is locked to the
    conversation (``routing.lock_ttl``, hand-off). ``inbound.text`` includes the transcript of a
    voice message. Stops at the first non-None result; None everywhere keeps the previous agent
    (or the template's first). The built-in ``router`` plugin matches intents as keywords, or asks
    the LLM when ``routing.mode = "llm"``.
    """


@hookspec
def before_llm(
    conversation: ConversationRecord, persona: Persona, messages: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """Inspect or edit the OpenAI-style messages about to be sent for ``persona``.

    Edit ``messages`` in place, or return a new list to replace it. Implementations run in turn,
    each receiving the list the previous one left (edited in place or returned), so both styles
    combine.
    """


@hookspec
def transform_response(conversation: ConversationRecord, persona: Persona, text: str) -> str | None:
    """Edit a finished reply before it is stored: return the new text, or None to keep it.

    Implementations run in turn, each seeing the previous one's result.
    """


@hookspec
def turn_completed(conversation: ConversationRecord, messages: list[MessageRecord]) -> None:
    """A turn finished; ``messages`` are the turn's messages (user first). For analytics and
    external services: runs after the reply reached the user."""
