"""Opening conversations: a new one (hook ``conversation_started``, then its greeting), or the
user's open one resumed; a user seen for the first time is stored with their identity and first
conversation in one transaction.

:meth:`Engine.open <parley.core.engine.Engine.open>` and :meth:`Engine.resume_or_open
<parley.core.engine.Engine.resume_or_open>` are the entry points; adapters never call this module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from parley.core import store
from parley.core.config import Persona, Settings, Template
from parley.core.engine_types import Opened
from parley.core.locks import Locks
from parley.core.plugins import Hooks
from parley.core.responders import speaker
from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["Opener", "new_expiry", "open_conversation", "resume_or_open", "store_prompt"]


class Opener(Protocol):
    """What opening needs of the engine (:class:`~parley.core.engine.Engine` is one)."""

    settings: Settings
    hooks: Hooks
    locks: Locks

    def template(self, template_id: str | None) -> Template: ...

    def is_expired(self, conversation: ConversationRecord) -> bool: ...

    async def end(
        self, conversation_id: str, reason: str, *, farewell: bool = True
    ) -> ConversationRecord: ...


def new_expiry(settings: Settings) -> datetime:
    """When a conversation active now expires: ``conversation.session_ttl`` from now."""
    return datetime.now(UTC) + timedelta(seconds=settings.conversation.session_ttl)


async def store_prompt(
    conversation: ConversationRecord, persona: Persona, text: str
) -> MessageRecord:
    """Store a fixed prompt (a greeting, the end prompt) as ``persona``'s message."""
    return await store.add_message(
        conversation.id,
        "assistant",
        text,
        name=persona.name,
        character_id=persona.id,
        lang=conversation.language,
        channel=conversation.channel,
    )


async def _started(
    engine: Opener, conversation: ConversationRecord, template: Template, greet: bool
) -> Opened:
    """A conversation just stored: hook ``conversation_started``, then its greeting."""
    await engine.hooks.call("conversation_started", conversation=conversation)
    greeting = None
    lang = conversation.language
    start = template.greeting_for(lang, engine.settings.language(lang).prompts.start)
    if start and greet:
        greeting = await store_prompt(
            conversation, speaker(engine.settings, conversation, template), start
        )
    return Opened(conversation, greeting)


async def open_conversation(
    engine: Opener,
    user_id: str,
    channel: str,
    template_id: str | None,
    language: str | None,
    greet: bool,
) -> Opened:
    """A new conversation for ``user_id`` (see :meth:`Engine.open`)."""
    template = engine.template(template_id)
    lang = language or engine.settings.conversation.language
    conversation = await store.start_conversation(
        user_id, channel, template.id, lang, expires_at=new_expiry(engine.settings)
    )
    return await _started(engine, conversation, template, greet)


async def _first_sight(
    engine: Opener,
    channel: str,
    identity: str,
    template_id: str | None,
    language: str | None,
    greet: bool,
) -> tuple[str, Opened | None]:
    """(the user of ``identity``, None), or for a user seen for the first time (their id,
    their first conversation).

    The user, identity and conversation are stored under a lock on the identity: the first
    connections of one device (two tabs) take turns, and, as every opening, this one needs the
    lock service (Redis, when configured) to be reachable. The identity's unique key settles
    whatever the lock did not (``start_first_conversation`` then stores nothing)."""
    user = await store.find_user(channel, identity)
    if user is not None:
        return user.id, None
    template = engine.template(template_id)
    lang = language or engine.settings.conversation.language
    async with engine.locks.hold(f"identity:{channel}:{identity}"):
        conversation = await store.start_first_conversation(
            channel, identity, template.id, lang, expires_at=new_expiry(engine.settings)
        )
    if conversation is None:  # stored meanwhile by a concurrent call (another tab)
        return (await store.get_or_create_user(channel, identity)).id, None
    return conversation.user_id, await _started(engine, conversation, template, greet)


async def resume_or_open(
    engine: Opener,
    user_id: str | None,
    channel: str,
    identity: str | None,
    template_id: str | None,
    language: str | None,
    greet: bool,
) -> Opened:
    """The user's open conversation on ``channel``, or a new one (see :meth:`Engine.resume_or_open`)."""
    if user_id is None:
        if identity is None:
            raise ValueError("resume_or_open needs a user_id or an identity")
        user_id, opened = await _first_sight(
            engine, channel, identity, template_id, language, greet
        )
        if opened is not None:
            return opened
    async with engine.locks.hold(f"user:{user_id}:{channel}"):
        current = await store.find_open_conversation(user_id, channel)
        if current is not None and engine.is_expired(current):
            await engine.end(current.id, "expired", farewell=False, announce=False)
            current = None
        if current is not None:
            return Opened(current, None, resumed=True)
        opened = await open_conversation(engine, user_id, channel, template_id, language, greet)
        return opened
