"""What the conversation runtime does for the commands that are not turns: say, end, model
settings (:mod:`parley.core.conversation`), each publishing what it produced on the engine's bus."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import datetime
from typing import Any

from parley.core import store
from parley.core.conversation_commands import End
from parley.core.conversation_listening import heard_live
from parley.core.engine import Engine
from parley.core.events import ConversationEnded, Interrupted, TurnCompleted
from parley.core.inbound import Inbound
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord

__all__ = [
    "end",
    "interrupt_finished",
    "merge_metadata",
    "retrieve",
    "say",
    "set_model_settings",
    "transcribed",
]


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


async def interrupt_finished(
    engine: Engine,
    conversation_id: str,
    message_id: str,
    metadata: dict[str, Any] | None,
    origin: str | None,
) -> str | None:
    """Store the finished reply ``message_id`` as ``interrupted`` (text kept, ``metadata``
    merged) and publish :class:`Interrupted`, both under the conversation's lock (no turn starts
    in between): only when it is the latest assistant message of the conversation and
    ``complete``. Returns it, or None."""
    async with engine.hold(conversation_id):
        latest = await store.latest_message(conversation_id, role="assistant")
        if latest is None or latest.id != message_id or latest.status != "complete":
            return None
        extra = {**latest.metadata, **(metadata or {})}
        await store.update_message(message_id, status="interrupted", metadata=extra)
        await engine.bus.publish(conversation_id, Interrupted(message_id), origin)
    return message_id


async def transcribed(
    engine: Engine, conversation_id: str, known: ConversationRecord | None, inbound: Inbound
) -> None:
    """Fire the ``transcribed`` hook when ``inbound``, about to become a turn, is an utterance
    heard live (:func:`~parley.core.conversation_listening.heard_live`); a recording's transcript
    is hooked by the engine's turn. ``known``: the conversation's record, if at hand."""
    if heard_live(inbound):
        conversation = known or await store.get_conversation(conversation_id)
        await engine.hooks.call("transcribed", conversation=conversation, text=inbound.text)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: a submitter may not wait for its outcome."""
    if not future.cancelled():
        future.exception()
