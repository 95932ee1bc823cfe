"""One user turn, as :meth:`Engine.turn <parley.core.engine.Engine.turn>` runs it under the
conversation's lock: the conversation read once, the user's message stored (first, durable), the
replies streamed (:mod:`parley.core.answering`), then the turn counted in one UPDATE.

A plain text turn runs 4 SQL statements on SQLite: the user's message, the reply's pending row
(inserted once the LLM request has left) and its final UPDATE, the turn count. The conversation
is read from memory there once read (:mod:`parley.core.store.conversation_cache`), and nothing
reaches the database between the stored user message and the LLM request: the history window
is kept in memory too (:mod:`parley.core.store.window`), and what is remembered about the user
comes from the memory plugin (``before_llm``). On PostgreSQL, where other processes write, a
turn runs 5: the conversation's read comes on top, and the history window is read in the user
message's own INSERT statement (:func:`~parley.core.store.add_message_and_window`), so nothing
reaches the database between that message and the LLM request there either; each INSERT takes
the message sequence's next value itself (``tests/adapters/web/test_ws_sql.py`` counts both).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Protocol

from parley.core import store
from parley.core.answering import Answerer, answer, history_window
from parley.core.config import Template
from parley.core.context import is_termination
from parley.core.engine_types import EngineError
from parley.core.events import (
    ConversationEnded,
    ErrorEvent,
    Event,
    Transcript,
    TurnCompleted,
    TurnStarted,
)
from parley.core.hearing import store_audio_message, store_user_message, transcribe
from parley.core.inbound import Inbound
from parley.core.providers import STTProvider
from parley.core.saying import message_events
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["TurnEngine", "count_turn", "turn"]

_SPEECH_ERRORS = frozenset({"tts_failed"})
"""Error codes that leave the reply itself intact."""


class TurnEngine(Answerer, Protocol):
    """What a turn needs of the engine (:class:`~parley.core.engine.Engine` is one)."""

    stt: STTProvider | None

    def template(self, template_id: str | None) -> Template: ...

    def is_expired(self, conversation: ConversationRecord) -> bool: ...

    def _expires_at(self) -> datetime: ...

    async def end(
        self, conversation_id: str, reason: str, *, farewell: bool = True, announce: bool = True
    ) -> ConversationRecord: ...

    async def _farewell(self, conversation: ConversationRecord) -> MessageRecord | None: ...


async def turn(
    engine: TurnEngine, conversation_id: str, inbound: Inbound, speech: SpeechOptions | None
) -> AsyncIterator[Event]:
    """One turn's events (the caller holds the conversation's lock and publishes them)."""
    started_at = time.perf_counter()
    state_writes = store.state_writes()
    conversation = await store.get_conversation(conversation_id)
    if conversation is None:
        yield ErrorEvent("not_found", "conversation not found")
        return
    if conversation.is_open and engine.is_expired(conversation):
        await engine.end(conversation.id, "expired", farewell=False, announce=False)
        yield ConversationEnded(conversation.id, "expired")
        yield ErrorEvent("conversation_ended", "the conversation expired; start a new one")
        return
    if not conversation.is_open:
        yield ErrorEvent("conversation_ended", "the conversation has ended")
        return
    text = inbound.text
    timing: dict[str, int] = {}
    if isinstance(inbound.metadata.get("stt_ms"), int):
        timing["stt_ms"] = inbound.metadata["stt_ms"]  # transcribed live by the adapter
    if inbound.audio is not None:
        # The user's message is stored before any provider is called: a recording that cannot
        # be transcribed stays on record as a failed user message, and no turn runs.
        inbound = await store_audio_message(conversation, inbound)
        transcription, error = await transcribe(engine.stt, conversation, inbound, text)
        if error is not None or transcription is None:
            assert error is not None
            yield error
            return
        timing["stt_ms"] = round((time.perf_counter() - started_at) * 1000)
        text = " ".join(part for part in (text, transcription.text) if part)
        yield Transcript(transcription.text, final=True)
        await engine.hooks.call("transcribed", conversation=conversation, text=transcription.text)
    ending = is_termination(text, engine.settings.language(conversation.language))
    window = 0 if ending else _window(engine, conversation)
    user_message, read = await store_user_message(
        conversation, inbound, text, timing, window=window
    )
    yield TurnStarted(conversation.id, user_message.id)
    turn_messages = [user_message]
    template = engine.template(conversation.template_id)
    ended_reason = None
    failed = False
    if ending:
        ended_reason = "user_ended"
    else:
        routed = dataclasses.replace(inbound, text=text)
        replies = answer(
            engine,
            conversation,
            template,
            routed,
            started_at,
            turn_messages,
            speech,
            timing,
            read,
        )
        async with aclosing(replies) as events:
            async for event in events:
                # A reply that failed; not its speech (the text still arrived).
                failed = failed or (
                    isinstance(event, ErrorEvent) and event.code not in _SPEECH_ERRORS
                )
                yield event
    turn_count = conversation.turn_count + 1
    conversation = await count_turn(engine, conversation, turn_count, state_writes)
    max_turns = template.max_turns
    if max_turns is None:
        max_turns = engine.settings.conversation.max_turns
    if ended_reason is None and max_turns and turn_count >= max_turns and not failed:
        ended_reason = "max_turns"
    if ended_reason:
        farewell = await engine._farewell(conversation)
        if farewell is not None:
            turn_messages.append(farewell)
            for event in message_events(farewell):
                yield event
        conversation, now = await store.end_open_conversation(conversation.id, ended_reason)
        if now:  # else another caller ended it meanwhile, and announced it
            await engine.hooks.call(
                "conversation_ended", conversation=conversation, reason=ended_reason
            )
            yield ConversationEnded(conversation.id, ended_reason)
    await engine.hooks.call("turn_completed", conversation=conversation, messages=turn_messages)
    yield TurnCompleted(conversation.id, turn_count, bool(ended_reason), ended_reason)


def _window(engine: TurnEngine, conversation: ConversationRecord) -> int:
    """The history window the turn's reply reads (0 when its template is gone: the turn fails
    once its message is stored, as it did before the window was read with it)."""
    try:
        return history_window(engine.settings, engine.template(conversation.template_id))
    except EngineError:
        return 0


async def count_turn(
    engine: TurnEngine, conversation: ConversationRecord, turn_count: int, state_writes: int
) -> ConversationRecord:
    """Store the turn's count and the conversation's new expiry; the record as it is now.

    One UPDATE and no read-back when nothing in this process wrote a conversation's state
    during the turn (a routing hand-off, model settings): the turn holds the rest of the
    record, read under the conversation's lock."""
    fields = {
        "turn_count": turn_count,
        "last_activity_at": datetime.now(UTC),
        "expires_at": engine._expires_at(),
    }
    if store.state_writes() != state_writes:
        return await store.update_conversation(conversation.id, **fields)
    await store.set_conversation_fields(conversation.id, **fields)
    return dataclasses.replace(conversation, **fields)
