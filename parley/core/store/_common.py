"""Helpers shared by the store modules: ids, times, ordering, ORM rows to records."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from parley.core.store.models import (
    Conversation,
    Message,
    User,
)
from parley.core.store.records import (
    ConversationRecord,
    MessageRecord,
    UserRecord,
)

__all__ = ["DuplicateMessage"]

_last_seq = 0


class DuplicateMessage(Exception):
    """A message with the same (channel, platform_message_id) is already stored."""


def _uuid(value: str | uuid.UUID | None) -> uuid.UUID | None:
    """The UUID, or None when ``value`` is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _next_seq() -> int:
    """Nanosecond clock, forced strictly increasing within the process (SQLite: one process)."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


MESSAGE_SEQ = "nextval('parley_message_seq')"
"""PostgreSQL: the next message ``seq``, from the database sequence (one order across processes
and hosts)."""


def _seq_from_database() -> bool:
    """Whether messages take their ``seq`` from the database (PostgreSQL) or the process
    (:func:`_next_seq`)."""
    return bool(Message._meta.db.capabilities.dialect == "postgres")


async def _seq() -> int:
    """The next message ``seq``: the database sequence on PostgreSQL, else :func:`_next_seq`."""
    if not _seq_from_database():
        return _next_seq()
    _, rows = await Message._meta.db.execute_query(f"SELECT {MESSAGE_SEQ} AS seq")
    return int(rows[0]["seq"])


def _check_fields(fields: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"cannot update {what} field(s): {', '.join(sorted(unknown))}")


def _user_record(user: User) -> UserRecord:
    return UserRecord(
        id=str(user.id),
        display_name=user.display_name,
        memory=user.memory,
        created_at=_utc(user.created_at),
    )


def _conversation_record(conv: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=str(conv.id),
        user_id=str(conv.user_id),  # type: ignore[attr-defined]
        channel=conv.channel,
        template_id=conv.template_id,
        language=conv.language,
        status=conv.status,
        started_at=_utc(conv.started_at),
        ended_at=_utc(conv.ended_at),
        reason_ended=conv.reason_ended,
        last_activity_at=_utc(conv.last_activity_at),
        turn_count=conv.turn_count,
        state=dict(conv.state or {}),
        expires_at=_utc(conv.expires_at),
    )


def _message_record(msg: Message) -> MessageRecord:
    return MessageRecord(
        id=str(msg.id),
        conversation_id=str(msg.conversation_id),  # type: ignore[attr-defined]
        role=msg.role,
        content=msg.content,
        status=msg.status,
        created_at=_utc(msg.created_at),
        name=msg.name,
        character_id=msg.character_id,
        tokens_in=msg.tokens_in,
        tokens_out=msg.tokens_out,
        intent=msg.intent,
        lang=msg.lang,
        metadata=dict(msg.metadata or {}),
        channel=msg.channel,
        platform_message_id=msg.platform_message_id,
    )


async def _is_duplicate(channel: str | None, platform_message_id: str | None) -> bool:
    if channel is None or platform_message_id is None:
        return False
    return await Message.filter(channel=channel, platform_message_id=platform_message_id).exists()
