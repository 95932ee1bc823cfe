"""History: the caller's conversations, their messages (resumable with ``after``), erasure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from parley.adapters.web.access import owned_conversation, owned_message
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.identity import Caller
from parley.adapters.web.shapes import conversation_json, iso, message_json
from parley.core import store
from parley.core.store.records import ConversationRecord, MessageRecord
from parley.openapi import AUTH, errors
from parley.server import ApiError

__all__ = ["HANDLERS", "HIDDEN_ROLES", "STALE_PENDING", "readable_messages"]

HIDDEN_ROLES = frozenset({"tool"})
"""Stored messages never shown to clients (tool calls and their results)."""

STALE_PENDING = 600.0
"""Seconds after which a message still ``pending`` is taken as abandoned (a crash mid-reply)."""


async def readable_messages(
    conversation: ConversationRecord, *, after: str | None, limit: int
) -> tuple[list[MessageRecord], bool]:
    """Messages clients see, oldest first after ``after``, and whether more follow.

    ``tool`` messages (a reply's tool calls and results) are internal and left out. A message
    still being written (``pending``, younger than :data:`STALE_PENDING` seconds, with nothing
    answered after it) ends the page: neither it nor anything after it is returned, so a client
    resuming from the last id it saw never skips a reply. A pending message followed by answered
    ones was cut by a crash (the inbox settles it ``interrupted`` when its turn is claimed again):
    it is shown as it is and never hides the turns that came after it.
    """
    if after is not None:
        await owned_message(conversation, after)
    now = datetime.now(UTC)
    shown: list[MessageRecord] = []
    cursor = after
    while True:
        rows = await store.list_messages(conversation.id, limit=limit + 1, after=cursor)
        for message in rows:
            if message.role in HIDDEN_ROLES:
                continue
            if (
                message.status == "pending"
                and (now - message.created_at).total_seconds() < STALE_PENDING
                and await _being_written(conversation, message)
            ):
                return shown, True
            shown.append(message)
            if len(shown) > limit:
                return shown[:limit], True
        if len(rows) <= limit:
            return shown, False
        cursor = rows[-1].id


async def _being_written(conversation: ConversationRecord, pending: MessageRecord) -> bool:
    """True unless a message stored after ``pending`` is already answered (then ``pending`` is a
    crash leftover, not a reply in progress)."""
    later = await store.list_messages(conversation.id, limit=50, after=pending.id)
    return not any(m.role not in HIDDEN_ROLES and m.status != "pending" for m in later)


async def _before(caller: Caller, before: str | None) -> datetime | None:
    """``before`` as a time: an ISO 8601 timestamp, or a conversation id (its start)."""
    if before is None:
        return None
    try:
        moment = datetime.fromisoformat(before)
    except ValueError:
        conversation = await store.get_conversation(before)
        if conversation is None or conversation.user_id != caller.user_id:
            raise ApiError(
                422, "validation_error", "before: not a timestamp nor a conversation id"
            ) from None
        return conversation.started_at
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@get("/api/v1/conversations", summary="List conversations", responses=errors(*AUTH, 422))
async def list_conversations(
    caller: NamedDependency[Caller],
    limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size.")] = 20,
    before: Annotated[
        str | None,
        QueryParameter(description="Only conversations started before this (ISO 8601 or an id)."),
    ] = None,
) -> dict[str, Any]:
    """The caller's conversations, newest first; ``next_before`` fetches the next page."""
    rows = await store.list_conversations(
        caller.user_id, limit=limit, before=await _before(caller, before)
    )
    conversations = [conversation_json(c, count) for c, count in rows]
    next_before = iso(rows[-1][0].started_at) if len(rows) == limit else None
    return {"conversations": conversations, "next_before": next_before}


@get(
    "/api/v1/conversations/{conversation_id:str}/messages",
    summary="List messages",
    responses=errors(*AUTH, 404, 422),
)
async def list_messages(
    conversation_id: FromPath[str],
    caller: NamedDependency[Caller],
    limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size.")] = 100,
    after: Annotated[
        str | None, QueryParameter(description="Only messages after this message id.")
    ] = None,
) -> dict[str, Any]:
    """Messages oldest first; pass the last id seen as ``after`` to resume without duplicates."""
    conversation = await owned_conversation(caller, conversation_id)
    messages, has_more = await readable_messages(conversation, after=after, limit=limit)
    return {
        "conversation_id": conversation.id,
        "messages": [message_json(m) for m in messages],
        "has_more": has_more,
    }


@delete(
    "/api/v1/conversations/{conversation_id:str}",
    status_code=200,
    summary="Erase",
    responses=errors(*AUTH, 404),
)
async def delete_conversation(
    conversation_id: FromPath[str],
    web: NamedDependency[WebAdapter],
    caller: NamedDependency[Caller],
) -> dict[str, Any]:
    """Erase the conversation and its messages (an open one is ended first, reason ``deleted``)."""
    conversation = await owned_conversation(caller, conversation_id)
    async with web.engine.hold(conversation.id):  # after any running turn
        if conversation.is_open:
            await web.engine.end(conversation.id, "deleted", farewell=False)
        await store.delete_conversation(conversation.id)
    return {"deleted": True, "conversation_id": conversation.id}


HANDLERS = [list_conversations, list_messages, delete_conversation]
