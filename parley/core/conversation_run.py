"""What the conversation runtime does for the commands that are not turns: say, end, model
settings (:mod:`parley.core.conversation`), each publishing what it produced on the engine's bus."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import datetime
from typing import Any

from parley.core import store
from parley.core.conversation_commands import End
from parley.core.engine import Engine
from parley.core.events import ConversationEnded, TurnCompleted
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord

__all__ = ["end", "merge_metadata", "retrieve", "say", "set_model_settings"]


async def say(
    engine: Engine,
    conversation_id: str,
    text: str | None,
    speech: SpeechOptions | None,
    end_reason: str | None,
    origin: str | None,
    once_since: datetime | None = None,
) -> None:
    """Say ``text`` outside a turn; when it ended the conversation, close that the way a turn
    does (TurnCompleted with ``conversation_ended``). ``once_since``: see :meth:`Engine.say`."""
    events = engine.say(
        conversation_id,
        text,
        speech=speech,
        end_reason=end_reason,
        origin=origin,
        once_since=once_since,
    )
    ended = False
    async with aclosing(events) as stream:
        async for event in stream:
            ended = ended or isinstance(event, ConversationEnded)
    if ended and end_reason:
        conversation = await store.get_conversation(conversation_id)
        turns = conversation.turn_count if conversation else 0
        completed = TurnCompleted(conversation_id, turns, True, end_reason)
        await engine.bus.publish(conversation_id, completed, origin)


async def end(engine: Engine, conversation_id: str, command: End) -> None:
    """End the conversation (saying the end prompt when asked); nothing when it is not open."""
    conversation = await store.get_conversation(conversation_id)
    if conversation is None or not conversation.is_open:
        return
    if command.farewell:
        prompt = engine.settings.language(conversation.language).prompts.end
        await say(engine, conversation_id, prompt, None, command.reason, command.origin)
        return
    await engine.end(conversation_id, command.reason, farewell=False, origin=command.origin)


async def set_model_settings(
    conversation_id: str, values: dict[str, Any]
) -> ConversationRecord | None:
    """Store ``values`` as the conversation's ``state.model_settings`` (atomically: a routing
    lock written meanwhile by a turn stays); None when the conversation is gone."""

    def change(state: dict[str, Any]) -> None:
        state["model_settings"] = dict(values)

    try:
        return await store.update_state(conversation_id, change)
    except LookupError:
        return None


async def merge_metadata(message_id: str, extra: dict[str, Any]) -> None:
    """Merge ``extra`` into a stored message's metadata."""
    stored = await store.get_message(message_id)
    if stored is not None:
        await store.update_message(message_id, metadata={**stored.metadata, **extra})


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: a submitter may not wait for its outcome."""
    if not future.cancelled():
        future.exception()
