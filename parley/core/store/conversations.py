"""Conversations: start, find, list, update, end, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from parley.core.store._common import (
    _check_fields,
    _conversation_record,
    _now,
    _utc,
    _uuid,
)
from parley.core.store.conversation_cache import conversations as kept
from parley.core.store.models import (
    Conversation,
    Message,
)
from parley.core.store.records import (
    ConversationRecord,
)
from parley.core.store.statements import insert_row, insert_rows, select_rows, update_row
from parley.core.store.users import _new_user
from parley.core.store.window import windows

__all__ = [
    "delete_conversation",
    "end_conversation",
    "end_open_conversation",
    "find_open_conversation",
    "get_conversation",
    "list_conversations",
    "set_conversation_fields",
    "start_conversation",
    "start_first_conversation",
    "state_writes",
    "update_conversation",
    "update_state",
]

_CONVERSATION_FIELDS = frozenset(
    {
        "channel",
        "template_id",
        "language",
        "status",
        "ended_at",
        "reason_ended",
        "last_activity_at",
        "turn_count",
        "state",
        "expires_at",
    }
)


_state_writes = 0


def state_writes() -> int:
    """How many times this process has written a conversation's ``state`` (a turn that sees this
    change while it runs reads its conversation again rather than trust the record it holds)."""
    return _state_writes


def _new_conversation(
    user_id: uuid.UUID,
    channel: str,
    template_id: str,
    language: str,
    expires_at: datetime | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a new open conversation."""
    now = _now()
    return {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "channel": channel,
        "template_id": template_id,
        "language": language,
        "status": "open",
        "started_at": now,
        "last_activity_at": now,
        "turn_count": 0,
        "state": dict(state or {}),
        "expires_at": _utc(expires_at),
    }


def _record(fields: dict[str, Any]) -> ConversationRecord:
    return ConversationRecord(
        **{**fields, "id": str(fields["id"]), "user_id": str(fields["user_id"])},
        ended_at=None,
        reason_ended=None,
    )


async def start_conversation(
    user_id: str,
    channel: str,
    template_id: str,
    language: str,
    *,
    expires_at: datetime | None = None,
    state: dict[str, Any] | None = None,
) -> ConversationRecord:
    """Create an open conversation."""
    uid = _uuid(user_id)
    if uid is None:
        raise LookupError(f"no user {user_id!r}")
    fields = _new_conversation(uid, channel, template_id, language, expires_at, state)
    await insert_row(Conversation, **fields)
    return _record(fields)


async def start_first_conversation(
    channel: str,
    external_id: str,
    template_id: str,
    language: str,
    *,
    expires_at: datetime | None = None,
) -> ConversationRecord | None:
    """A user seen for the first time: the user, its identity (``channel``, ``external_id``) and
    an open conversation on ``channel``, stored in one transaction. None when the identity
    exists already (a concurrent call created it first): nothing is stored then."""
    try:
        user, rows = _new_user(channel, external_id)
        fields = _new_conversation(uuid.UUID(user.id), channel, template_id, language, expires_at)
        await insert_rows([*rows, (Conversation, fields)])
    except IntegrityError:
        return None
    return _record(fields)


async def _get_conversation(conversation_id: str) -> Conversation | None:
    cid = _uuid(conversation_id)
    return await Conversation.get_or_none(id=cid) if cid else None


def _key(cid: uuid.UUID | None, conversation_id: str) -> str:
    """The cache's key: the id in its canonical form (as given when malformed)."""
    return str(cid) if cid else conversation_id


_CONVERSATIONS = (
    "SELECT id, user_id, channel, template_id, language, status, started_at, ended_at,"
    " reason_ended, last_activity_at, turn_count, state, expires_at FROM parley_conversation"
)
_OPEN_CONVERSATION = (
    f"{_CONVERSATIONS} WHERE user_id = ? AND channel = ? AND status = 'open'"
    " ORDER BY started_at DESC, id DESC LIMIT 1"
)
_CONVERSATION = f"{_CONVERSATIONS} WHERE id = ?"


async def get_conversation(conversation_id: str) -> ConversationRecord | None:
    """The conversation, or None (also for a malformed id). Kept in memory on SQLite: see
    :mod:`parley.core.store.conversation_cache`."""
    cid = _uuid(conversation_id)
    key = _key(cid, conversation_id)
    record = kept.get(key)
    if record is not None:
        return record
    version = kept.version(key)
    found = await select_rows(Conversation, _CONVERSATION, [str(cid)]) if cid else []
    if not found:
        return None
    record = _conversation_record(found[0])
    kept.read(record, version)
    return record


async def find_open_conversation(user_id: str, channel: str) -> ConversationRecord | None:
    """The user's most recent open conversation on ``channel``, or None."""
    uid = _uuid(user_id)
    if uid is None:
        return None
    found = await select_rows(Conversation, _OPEN_CONVERSATION, [str(uid), channel])
    return _conversation_record(found[0]) if found else None


async def list_conversations(
    user_id: str, *, limit: int = 20, before: datetime | None = None
) -> list[tuple[ConversationRecord, int]]:
    """The user's conversations newest first, each with its message count."""
    uid = _uuid(user_id)
    if uid is None or limit <= 0:
        return []
    query = Conversation.filter(user_id=uid)
    if before is not None:
        query = query.filter(started_at__lt=_utc(before))
    convs = await query.order_by("-started_at", "-id").limit(limit)
    if not convs:
        return []
    rows = (
        await Message.filter(conversation_id__in=[c.id for c in convs])
        .annotate(n=Count("id"))
        .group_by("conversation_id")
        .values_list("conversation_id", "n")
    )
    counts = {str(cid): n for cid, n in rows}
    return [(_conversation_record(c), counts.get(str(c.id), 0)) for c in convs]


async def update_conversation(conversation_id: str, **fields: Any) -> ConversationRecord:
    """Set fields (state, turn_count, last_activity_at, expires_at, template_id, language...)."""
    _check_fields(fields, _CONVERSATION_FIELDS, "conversation")
    with kept.writing(_key(_uuid(conversation_id), conversation_id)) as write:
        conv = await _get_conversation(conversation_id)
        if conv is None:
            raise LookupError(f"no conversation {conversation_id!r}")
        if fields:
            if "state" in fields:
                _count_state_write()
            for name, value in fields.items():
                if isinstance(value, datetime):
                    value = _utc(value)
                elif name == "state":
                    value = dict(value or {})
                setattr(conv, name, value)
            await conv.save(update_fields=list(fields))
        write.record = _conversation_record(conv)
        return write.record


async def set_conversation_fields(conversation_id: str, **fields: Any) -> None:
    """Set fields of a conversation in one UPDATE, reading nothing back (the end of a turn, which
    holds the rest of the record). Raises LookupError when there is no such conversation."""
    _check_fields(fields, _CONVERSATION_FIELDS - {"state"}, "conversation")
    cid = _uuid(conversation_id)
    values = {k: _utc(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    with kept.writing(_key(cid, conversation_id)) as write:
        if cid is None or not await update_row(Conversation, cid, **values):
            raise LookupError(f"no conversation {conversation_id!r}")
        write.fields = values


def _count_state_write() -> None:
    global _state_writes
    _state_writes += 1


async def update_state(
    conversation_id: str, change: Callable[[dict[str, Any]], Any], **fields: Any
) -> ConversationRecord:
    """Change the conversation's ``state`` atomically: ``change(state)`` edits the current state in
    place, under a row lock (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite transactions are
    serialised), so concurrent changes of different keys never erase each other. ``fields``
    (e.g. ``language``) are written in the same transaction.

    Write ``state`` only through this function: :func:`update_conversation` with ``state`` replaces
    the whole dict and can lose a concurrent change.
    """
    _check_fields(fields, _CONVERSATION_FIELDS - {"state"}, "conversation")
    cid = _uuid(conversation_id)
    _count_state_write()
    with kept.writing(_key(cid, conversation_id)) as write:
        async with in_transaction() as conn:
            conv = (
                await Conversation.filter(id=cid).using_db(conn).select_for_update().first()
                if cid
                else None
            )
            if conv is None:
                raise LookupError(f"no conversation {conversation_id!r}")
            state = dict(conv.state or {})
            change(state)
            conv.state = state
            for name, value in fields.items():
                setattr(conv, name, _utc(value) if isinstance(value, datetime) else value)
            await conv.save(using_db=conn, update_fields=["state", *fields])
        write.record = _conversation_record(conv)
        return write.record


async def end_conversation(conversation_id: str, reason: str) -> ConversationRecord:
    """Mark ended now with ``reason``; ending an ended conversation changes nothing."""
    return (await end_open_conversation(conversation_id, reason))[0]


async def end_open_conversation(
    conversation_id: str, reason: str
) -> tuple[ConversationRecord, bool]:
    """Like :func:`end_conversation`, and whether this call ended it: of concurrent calls one
    ends it (its reason wins), so only that one announces the end and calls its hooks."""
    cid = _uuid(conversation_id)
    ended = False
    with kept.writing(_key(cid, conversation_id)) as write:
        if cid is not None:
            # Conditional update: concurrent calls end it once, the first reason wins.
            ended = bool(
                await Conversation.filter(id=cid, status="open").update(
                    status="ended", ended_at=_now(), reason_ended=reason
                )
            )
        conv = await _get_conversation(conversation_id)
        if conv is None:
            raise LookupError(f"no conversation {conversation_id!r}")
        write.record = _conversation_record(conv)
        return write.record, ended


async def delete_conversation(conversation_id: str) -> None:
    """Erase the conversation and its messages."""
    cid = _uuid(conversation_id)
    if cid is None:
        return
    with kept.writing(str(cid)):  # nothing kept: the conversation is gone
        async with in_transaction() as conn:
            await Message.filter(conversation_id=cid).using_db(conn).delete()
            await Conversation.filter(id=cid).using_db(conn).delete()
    windows.drop(str(cid))
