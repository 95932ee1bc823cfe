"""Turns keyed for idempotency, and turns whose process died, through the durable inbox.

A turn whose :class:`~parley.core.inbound.Inbound` carries an ``idempotency_key`` (the
``Idempotency-Key`` header, a WebSocket ``client_id``) is an inbox item (channel ``turn``, key
``<conversation channel>:<user id>:<key>``, lane = the conversation) claimed by the process that
runs it. A repeat of the key never runs a second turn: it waits for the first and gets its answer
replayed as events. When the first one's process died, its lease expires and the turn is answered
again (by the repeat, or by any process's claim loop): the reply it left ``pending`` is settled as
``interrupted`` (with the text saved so far) and the stored user message is answered in place.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from parley.core import store
from parley.core.events import (
    ConversationEnded,
    ErrorEvent,
    Event,
    MessageCompleted,
    MessageStarted,
    TextDelta,
    Transcript,
    TurnCompleted,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.core.store.records import InboxRecord, MessageRecord
from parley.core.telemetry import inject

if TYPE_CHECKING:
    from parley.core.inbox import Inbox
    from parley.core.locks import Locks

__all__ = [
    "TURN_CHANNEL",
    "TurnRecorder",
    "keyed_turn",
    "recover_turn",
    "replay",
    "settle_leftovers",
    "start_inbox",
    "stored_answer",
]

log = logging.getLogger(__name__)

TURN_CHANNEL = "turn"

ITEM_KEY = "inbox_item"
"""Metadata key of a keyed turn's user message: the id of its inbox item."""

RunTurn = Callable[[str, Inbound], AsyncIterator[Event]]
"""Runs one turn unkeyed (the engine's turn under the conversation's lock)."""


class TurnRecorder:
    """Collects what a turn produced into an inbox item's ``result``."""

    def __init__(self) -> None:
        self.result: dict[str, Any] = {"replies": []}

    def see(self, event: Event) -> None:
        """Note one event of the turn."""
        result = self.result
        if isinstance(event, TurnStarted):
            result["user_message_id"] = event.user_message_id
        elif isinstance(event, MessageStarted):
            result["replies"].append(event.message_id)
        elif isinstance(event, Transcript) and event.final:
            result["transcript"] = event.text
        elif isinstance(event, ErrorEvent) and "error" not in result:
            result["error"] = {
                "code": event.code,
                "message": event.message,
                "retryable": event.retryable,
            }
        elif isinstance(event, TurnCompleted):
            result.update(
                turn_count=event.turn_count, ended=event.conversation_ended, reason=event.reason
            )


async def replay(conversation_id: str, result: dict[str, Any]) -> AsyncIterator[Event]:
    """A finished turn's ``result`` as the events it produced (text only, no audio)."""
    if result.get("transcript") is not None:
        yield Transcript(result["transcript"], final=True)
    if result.get("user_message_id"):
        yield TurnStarted(conversation_id, result["user_message_id"])
    for message_id in result.get("replies") or []:
        message = await store.get_message(message_id)
        if message is None:
            continue
        yield MessageStarted(message.id, message.character_id, message.name)
        yield TextDelta(message.id, message.content, message.character_id)
        yield MessageCompleted(
            message.id, message.content, message.status, message.character_id, message.name
        )
    error = result.get("error")
    if error:
        yield ErrorEvent(error["code"], error["message"], bool(error.get("retryable")))
    if "turn_count" in result:
        if result.get("ended"):
            yield ConversationEnded(conversation_id, result.get("reason") or "ended")
        yield TurnCompleted(
            conversation_id, result["turn_count"], bool(result.get("ended")), result.get("reason")
        )


async def keyed_turn(
    inbox: Inbox, run: RunTurn, locks: Locks, conversation_id: str, inbound: Inbound
) -> AsyncIterator[Event]:
    """Run the turn once per key: the first call runs it, a repeat gets its answer."""
    conversation = await store.get_conversation(conversation_id)
    if conversation is None or inbound.idempotency_key is None:
        async with aclosing(run(conversation_id, inbound)) as events:
            async for event in events:
                yield event
        return
    key = f"{conversation.channel}:{conversation.user_id}:{inbound.idempotency_key}"
    payload = {"text": inbound.text, "image_urls": list(inbound.image_urls)}
    item, created = await inbox.put(
        TURN_CHANNEL,
        key,
        f"conversation:{conversation_id}",
        payload=payload,
        conversation_id=conversation_id,
        claim=True,
    )
    while not created:
        item = await inbox.wait(item)
        if item.finished:
            log.info("turn %s repeated: answered from the first", inbound.idempotency_key)
            async with aclosing(replay(item.conversation_id or conversation_id, item.result)) as r:
                async for event in r:
                    yield event
            return
        taken = await inbox.take_over(item)  # its process died: this repeat answers it
        if taken is None:
            continue
        answer = await stored_answer(taken)
        if answer is not None:  # it died after storing the turn: nothing to run again
            await inbox.finish(taken, answer)
            async with aclosing(replay(conversation_id, answer)) as r:
                async for event in r:
                    yield event
            return
        item, created = taken, True
        inbound = await _resumed(locks, taken, inbound)
    if ITEM_KEY not in inbound.metadata:  # the user message names its item (see _stored_by)
        inbound = dataclasses.replace(inbound, metadata={**inbound.metadata, ITEM_KEY: item.id})
    recorder = TurnRecorder()
    try:
        async with inbox.hold(item), aclosing(run(conversation_id, inbound)) as events:
            async for event in events:
                recorder.see(event)
                if isinstance(event, TurnStarted):
                    # With the turn's trace context: a process answering it after a crash joins it.
                    payload = {**item.payload, "trace": inject()}
                    await store.update_inbox(
                        item.id, user_message_id=event.user_message_id, payload=payload
                    )
                yield event
    finally:
        await inbox.finish(item, recorder.result)


async def _resumed(locks: Locks, item: InboxRecord, inbound: Inbound) -> Inbound:
    """Settle what the dead attempt left and point the inbound at its stored user message."""
    if item.conversation_id is not None:
        if item.user_message_id is None:  # stored, but the attempt died before linking it
            item = dataclasses.replace(item, user_message_id=await _stored_by(item))
        async with locks.hold(item.conversation_id):
            await settle_leftovers(item)
    trace = item.payload.get("trace") or inbound.metadata.get("trace")
    metadata = {**inbound.metadata, ITEM_KEY: item.id}
    return dataclasses.replace(
        inbound,
        idempotency_key=None,
        user_message_id=item.user_message_id or None,
        metadata={**metadata, "trace": trace} if trace else metadata,
    )


async def _stored_by(item: InboxRecord) -> str | None:
    """The user message an attempt of ``item`` stored (its metadata names the item), or None."""
    assert item.conversation_id is not None
    for message in reversed(await store.recent_messages(item.conversation_id, 50)):
        if message.role == "user" and message.metadata.get(ITEM_KEY) == item.id:
            await store.update_inbox(item.id, user_message_id=message.id)
            return message.id
    return None


async def settle_leftovers(item: InboxRecord) -> list[MessageRecord]:
    """The replies a dead attempt left ``pending`` after the item's user message become
    ``interrupted`` (their saved text kept); returns them."""
    if item.conversation_id is None or item.user_message_id is None:
        return []
    settled = []
    for message in await store.list_messages(item.conversation_id, after=item.user_message_id):
        if message.role == "user":
            break
        if message.role == "assistant" and message.status == "pending":
            settled.append(await store.update_message(message.id, status="interrupted"))
    if settled:
        log.info(
            "turn item %s: %d reply(ies) cut by a crash kept as interrupted", item.id, len(settled)
        )
    return settled


async def stored_answer(item: InboxRecord) -> dict[str, Any] | None:
    """The result of a turn a dead attempt had already stored (a complete reply after its user
    message), or None when it must run again."""
    if item.conversation_id is None or item.user_message_id is None:
        return None
    replies = []
    for message in await store.list_messages(item.conversation_id, after=item.user_message_id):
        if message.role == "user":
            break
        if message.role == "assistant":
            replies.append(message)
    if not any(m.status == "complete" for m in replies):
        return None
    conversation = await store.get_conversation(item.conversation_id)
    return {
        "user_message_id": item.user_message_id,
        "replies": [m.id for m in replies if m.status != "pending"],
        "turn_count": conversation.turn_count if conversation else 0,
        "ended": bool(conversation and not conversation.is_open),
        "reason": conversation.reason_ended if conversation else None,
    }


async def recover_turn(run: RunTurn, locks: Locks, item: InboxRecord) -> dict[str, Any]:
    """Answer a keyed turn whose process died (the claim loop's handler for ``turn`` items)."""
    if item.conversation_id is None:
        return {"error": {"code": "not_found", "message": "no conversation"}}
    answer = await stored_answer(item)
    if answer is not None:
        return answer
    inbound = Inbound(
        text=str(item.payload.get("text") or ""),
        image_urls=list(item.payload.get("image_urls") or []),
    )
    inbound = await _resumed(locks, item, inbound)
    recorder = TurnRecorder()
    async with aclosing(run(item.conversation_id, inbound)) as events:
        async for event in events:
            recorder.see(event)
    return recorder.result


def start_inbox(inbox: Inbox, run: RunTurn, locks: Locks) -> None:
    """Give ``inbox`` the core's handler (keyed turns left by a dead process) and jobs (prune
    finished items, settle replies abandoned outside any item)."""
    settings = inbox.settings

    async def turns(item: InboxRecord) -> dict[str, Any]:
        return await recover_turn(run, locks, item)

    async def prune() -> int:
        return await store.prune_inbox(_now() - timedelta(days=settings.keep_days))

    async def leftovers() -> int:
        return await store.settle_abandoned(_now() - timedelta(seconds=settings.abandon_after))

    inbox.register(TURN_CHANNEL, turns)
    inbox.job("inbox-prune", 3600.0, prune)
    inbox.job("leftovers", 60.0, leftovers)


def _now() -> datetime:
    return datetime.now(UTC)
