"""Messages, and inbound delivery keys for de-duplication."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from parley.core.store._common import (
    MESSAGE_SEQ,
    DuplicateMessage,
    _check_fields,
    _is_duplicate,
    _message_record,
    _next_seq,
    _now,
    _seq,
    _seq_from_database,
    _uuid,
)
from parley.core.store.models import (
    Conversation,
    InboundKey,
    Message,
)
from parley.core.store.records import (
    MessageRecord,
)
from parley.core.store.statements import (
    insert_row,
    insert_row_and_select,
    select_rows,
    update_row,
)
from parley.core.store.window import ReadWindow, windows

__all__ = [
    "add_message",
    "add_message_and_window",
    "claim_inbound",
    "count_messages",
    "find_message",
    "get_message",
    "latest_message",
    "list_messages",
    "pending_messages",
    "prune_inbound",
    "recent_messages",
    "set_message_fields",
    "settle_abandoned",
    "update_message",
]

_MESSAGE_FIELDS = frozenset(
    {
        "role",
        "name",
        "character_id",
        "content",
        "status",
        "tokens_in",
        "tokens_out",
        "intent",
        "lang",
        "metadata",
        "channel",
        "platform_message_id",
    }
)

_WINDOW = (
    "SELECT id, conversation_id, seq, role, name, character_id, content, status, tokens_in,"
    " tokens_out, intent, lang, metadata, channel, platform_message_id, created_at"
    " FROM parley_message WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?"
)
"""The history window's read, written out once (on PostgreSQL every turn runs it, inside the user
message's INSERT statement: :func:`add_message_and_window`)."""

_INSERTED = ("id", "conversation_id", "created_at", *sorted(_MESSAGE_FIELDS))
"""A new message's columns besides ``seq`` (by the record's names, which are the model's)."""


async def add_message(
    conversation_id: str,
    role: str,
    content: str,
    *,
    status: str = "complete",
    name: str | None = None,
    character_id: str | None = None,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
    intent: str | None = None,
    lang: str | None = None,
    metadata: dict[str, Any] | None = None,
    channel: str | None = None,
    platform_message_id: str | None = None,
    message_id: str | None = None,
) -> MessageRecord:
    """Store a message (with ``message_id``, an id chosen ahead: a reply announced before it is
    stored). Raises :class:`DuplicateMessage` when (channel, platform_message_id) exists.

    One statement, written out once (:mod:`~parley.core.store.statements`): on PostgreSQL the
    ``seq`` comes from the database's sequence in the INSERT itself (``RETURNING`` it)."""
    record, fields = _new_message(
        conversation_id,
        role=role,
        content=content,
        status=status,
        name=name,
        character_id=character_id,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        intent=intent,
        lang=lang,
        metadata=dict(metadata or {}),
        channel=channel,
        platform_message_id=platform_message_id,
        message_id=message_id,
    )
    async with _inserting(record, conversation_id):
        if _seq_from_database():
            seq = (await insert_row(Message, computed={"seq": MESSAGE_SEQ}, **fields))["seq"]
        else:
            seq = _next_seq()
            await insert_row(Message, seq=seq, **fields)
    windows.added(int(seq), record)
    return record


async def add_message_and_window(
    conversation_id: str,
    role: str,
    content: str,
    *,
    window: int,
    lang: str | None = None,
    metadata: dict[str, Any] | None = None,
    channel: str | None = None,
    platform_message_id: str | None = None,
) -> tuple[MessageRecord, ReadWindow | None]:
    """Store a message as :func:`add_message` does; on PostgreSQL, also the conversation's last
    ``window`` messages (the new one last) as :func:`recent_messages` would read them just
    after, read in the INSERT's own statement (one round trip, none between a user's stored
    message and the LLM request). Elsewhere None: there :func:`recent_messages` serves the window
    from memory.

    One statement also means one outcome: should the statement fail, the message is not stored
    either (the error is raised, as for a failed INSERT)."""
    if not _seq_from_database() or window <= 0:
        record = await add_message(
            conversation_id,
            role,
            content,
            lang=lang,
            metadata=metadata,
            channel=channel,
            platform_message_id=platform_message_id,
        )
        return record, None
    record, fields = _new_message(
        conversation_id,
        role=role,
        content=content,
        status="complete",
        lang=lang,
        metadata=dict(metadata or {}),
        channel=channel,
        platform_message_id=platform_message_id,
    )
    stamp = windows.written(record.conversation_id)
    async with _inserting(record, conversation_id):
        inserted, before = await insert_row_and_select(
            Message,
            _WINDOW,
            [record.conversation_id, window],
            computed={"seq": MESSAGE_SEQ},
            **fields,
        )
    # Another task's write to the conversation while the statement ran may be missing from it.
    fresh = windows.written(record.conversation_id) == stamp
    windows.added(int(inserted["seq"]), record)  # stamped (the cache is off on PostgreSQL)
    # The SELECT did not see the new row (one snapshot): it goes in by its place.
    rows = [*((m.seq, _message_record(m)) for m in before), (inserted["seq"], record)]
    rows.sort(key=lambda row: row[0])
    messages = [message for _, message in rows[-window:]]
    written = windows.written(record.conversation_id) if fresh else 0
    return record, ReadWindow(record.conversation_id, messages, written)


def _new_message(
    conversation_id: str, *, message_id: str | None = None, **values: Any
) -> tuple[MessageRecord, dict[str, Any]]:
    """A new message's record (``values``: its fields) and its columns for the INSERT."""
    cid = _uuid(conversation_id)
    if cid is None:
        raise LookupError(f"no conversation {conversation_id!r}")
    mid = (message_id is not None and _uuid(message_id)) or uuid.uuid4()
    record = MessageRecord(id=str(mid), conversation_id=str(cid), created_at=_now(), **values)
    fields = {f: getattr(record, f) for f in _INSERTED}
    fields.update(id=mid, conversation_id=cid)
    return record, fields


@asynccontextmanager
async def _inserting(record: MessageRecord, conversation_id: str) -> AsyncIterator[None]:
    """Around a message's INSERT (``conversation_id`` as the caller gave it): a taken (channel,
    platform_message_id) raises :class:`DuplicateMessage`, a missing conversation LookupError."""
    try:
        yield
    except IntegrityError as exc:
        if await _is_duplicate(record.channel, record.platform_message_id):
            raise DuplicateMessage(f"{record.channel}:{record.platform_message_id}") from exc
        if not await Conversation.exists(id=record.conversation_id):
            raise LookupError(f"no conversation {conversation_id!r}") from exc
        raise


async def update_message(
    message_id: str, *, move_to_end: bool = False, **fields: Any
) -> MessageRecord:
    """Set fields of a message (content, status, tokens_in, tokens_out, metadata...).

    ``move_to_end`` orders a message still ``pending`` after every message stored so far (an
    adapter stored it ahead of its turn; the turn places it where it is answered). A message
    already answered keeps its place (a turn re-run after a crash answers it where it is).
    """
    _check_fields(fields, _MESSAGE_FIELDS, "message")
    mid = _uuid(message_id)
    msg = await Message.get_or_none(id=mid) if mid else None
    if msg is None:
        raise LookupError(f"no message {message_id!r}")
    move_to_end = move_to_end and msg.status == "pending"
    if not fields and not move_to_end:
        return _message_record(msg)
    for key, value in fields.items():
        setattr(msg, key, dict(value or {}) if key == "metadata" else value)
    update_fields = list(fields)
    if move_to_end:
        msg.seq = await _seq()
        update_fields.append("seq")
    try:
        await msg.save(update_fields=update_fields)
    except IntegrityError as exc:
        raise DuplicateMessage(f"{msg.channel}:{msg.platform_message_id}") from exc
    record = _message_record(msg)
    if move_to_end:
        windows.drop(record.conversation_id)  # its place changed: read the window again
        windows.wrote(record.conversation_id)
    else:
        windows.replaced(record)
    return record


async def set_message_fields(message_id: str, **fields: Any) -> None:
    """Set fields of a message in one UPDATE, reading nothing back (the hot path of a reply,
    which knows the rest of its record). Raises LookupError when there is no such message."""
    _check_fields(fields, _MESSAGE_FIELDS, "message")
    mid = _uuid(message_id)
    values = {k: dict(v or {}) if k == "metadata" else v for k, v in fields.items()}
    if mid is None or not await update_row(Message, mid, **values):
        raise LookupError(f"no message {message_id!r}")
    windows.set(str(mid), values)


async def get_message(message_id: str) -> MessageRecord | None:
    """The message, or None."""
    mid = _uuid(message_id)
    msg = await Message.get_or_none(id=mid) if mid else None
    return _message_record(msg) if msg else None


async def find_message(channel: str, platform_message_id: str) -> MessageRecord | None:
    """The message stored under (channel, platform message id), or None."""
    msg = await Message.get_or_none(channel=channel, platform_message_id=platform_message_id)
    return _message_record(msg) if msg else None


async def recent_messages(conversation_id: str, limit: int) -> list[MessageRecord]:
    """The last ``limit`` messages, oldest first (the LLM history window; kept in memory on
    SQLite, see :mod:`parley.core.store.window`)."""
    cid = _uuid(conversation_id)
    if cid is None or limit <= 0:
        return []
    kept = windows.get(str(cid), limit) if windows.enabled else None
    if kept is not None:
        return list(kept)
    msgs = await select_rows(Message, _WINDOW, [str(cid), limit])
    rows = [(m.seq, _message_record(m)) for m in reversed(msgs)]
    windows.fill(str(cid), limit, rows)
    return [record for _, record in rows]


async def latest_message(conversation_id: str, *, role: str | None = None) -> MessageRecord | None:
    """The conversation's last message (of ``role``), or None."""
    cid = _uuid(conversation_id)
    if cid is None:
        return None
    query = Message.filter(conversation_id=cid)
    if role is not None:
        query = query.filter(role=role)
    msg = await query.order_by("-seq").first()
    return _message_record(msg) if msg else None


async def list_messages(
    conversation_id: str, *, limit: int = 100, after: str | None = None
) -> list[MessageRecord]:
    """Messages oldest first; ``after`` (a message id) returns only those stored after it.

    An ``after`` id that is not a message of this conversation gives [].
    """
    cid = _uuid(conversation_id)
    if cid is None or limit <= 0:
        return []
    query = Message.filter(conversation_id=cid)
    if after is not None:
        aid = _uuid(after)
        rows = (
            await Message.filter(id=aid, conversation_id=cid).values_list("seq", flat=True)
            if aid
            else []
        )
        if not rows:
            return []
        query = query.filter(seq__gt=rows[0])
    msgs = await query.order_by("seq").limit(limit)
    return [_message_record(m) for m in msgs]


async def count_messages(conversation_id: str, *, role: str | None = None) -> int:
    """How many messages (of ``role``) the conversation has."""
    cid = _uuid(conversation_id)
    if cid is None:
        return 0
    query = Message.filter(conversation_id=cid)
    if role is not None:
        query = query.filter(role=role)
    return await query.count()


async def pending_messages(channel: str) -> list[MessageRecord]:
    """User messages on ``channel`` with status ``pending`` (stored, not yet answered), oldest first."""
    msgs = (
        await Message.filter(role="user", status="pending")
        .filter(Q(channel=channel) | Q(channel__isnull=True, conversation__channel=channel))
        .order_by("seq")
    )
    return [_message_record(m) for m in msgs]


async def settle_abandoned(older_than: datetime) -> int:
    """Replies still ``pending`` that were started before ``older_than`` were cut by a crash:
    mark them ``interrupted`` (their saved text kept); return how many."""
    settled = await Message.filter(
        role="assistant", status="pending", created_at__lt=older_than
    ).update(status="interrupted")
    if settled:
        windows.drop()
    return settled


async def claim_inbound(channel: str, key: str) -> bool:
    """Record an inbound delivery key (e.g. a Telegram update_id) once: True the first time only."""
    try:
        await InboundKey.create(channel=channel, key=str(key))
    except IntegrityError:
        return False
    return True


async def prune_inbound(channel: str, older_than: datetime) -> int:
    """Forget delivery keys of ``channel`` recorded before ``older_than``; return how many."""
    return await InboundKey.filter(channel=channel, created_at__lt=older_than).delete()
