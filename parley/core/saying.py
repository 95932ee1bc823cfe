"""Fixed things the assistant says outside a turn (a nudge, the timeout prompt, a replayed
greeting), as the same events a streamed reply produces, spoken when asked.

:meth:`Engine.say <parley.core.engine.Engine.say>` and :meth:`Engine.replay
<parley.core.engine.Engine.replay>` are the entry points; adapters never call this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing
from datetime import datetime
from typing import Protocol

from parley.core import store
from parley.core.config import Settings, Template
from parley.core.events import ConversationEnded, Event, MessageCompleted, MessageStarted, TextDelta
from parley.core.opening import store_prompt
from parley.core.plugins import Hooks
from parley.core.providers import TTSProvider
from parley.core.responders import speaker
from parley.core.speech import SpeechOptions, speak
from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["Speaker", "message_events", "replay", "say"]


class Speaker(Protocol):
    """What saying needs of the engine (:class:`~parley.core.engine.Engine` is one)."""

    settings: Settings
    hooks: Hooks
    tts: TTSProvider | None

    def template(self, template_id: str | None) -> Template: ...

    def is_expired(self, conversation: ConversationRecord) -> bool: ...

    def hold(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """The conversation's lock (see :meth:`parley.core.engine.Engine.hold`)."""
        ...


def message_events(message: MessageRecord) -> list[Event]:
    """A stored, complete message as the event sequence a streamed one produces."""
    return [
        MessageStarted(message.id, message.character_id, message.name),
        TextDelta(message.id, message.content, message.character_id),
        MessageCompleted(
            message.id, message.content, message.status, message.character_id, message.name
        ),
    ]


async def _stored(message: MessageRecord) -> AsyncIterator[Event]:
    for event in message_events(message):
        yield event


def replay(
    engine: Speaker, message: MessageRecord, *, speech: SpeechOptions | None = None
) -> AsyncIterator[Event]:
    """A stored message as MessageStarted, TextDelta, MessageCompleted; with ``speech`` (and a TTS
    provider) also spoken in its persona's voice (Sentence, AudioChunk, AudioCompleted)."""
    events = _stored(message)
    if speech is None or engine.tts is None:
        return events
    persona = engine.settings.personas.get(message.character_id or "")
    return speak(events, tts=engine.tts, voice=persona.voice if persona else None, options=speech)


async def say(
    engine: Speaker,
    conversation_id: str,
    text: str | None,
    *,
    speech: SpeechOptions | None = None,
    end_reason: str | None = None,
    once_since: datetime | None = None,
) -> AsyncIterator[Event]:
    """Store ``text`` as a message of the conversation's speaker and yield it (see :func:`replay`);
    then, with ``end_reason``, end the conversation (no end prompt) and yield ConversationEnded.

    Runs under the conversation's lock, after any running turn. Yields nothing when the
    conversation does not exist, is no longer open, or has expired, and, with ``once_since``,
    when its latest message is already ``text``, stored since then (another process said it).
    """
    async with engine.hold(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.is_open or engine.is_expired(conversation):
            return
        if once_since is not None and text:
            latest = await store.latest_message(conversation.id)
            if latest is not None and latest.content == text and latest.created_at >= once_since:
                return
        if text:
            persona = speaker(
                engine.settings, conversation, engine.template(conversation.template_id)
            )
            message = await store_prompt(conversation, persona, text)
            async with aclosing(replay(engine, message, speech=speech)) as events:
                async for event in events:
                    yield event
        if end_reason:
            ended, now = await store.end_open_conversation(conversation.id, end_reason)
            if now:  # else another caller ended it meanwhile, and announced it
                await engine.hooks.call("conversation_ended", conversation=ended, reason=end_reason)
                yield ConversationEnded(conversation.id, end_reason)
