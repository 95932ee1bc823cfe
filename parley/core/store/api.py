"""The only code that queries the ORM. Every function returns plain records (see records.py).

Lifecycle: ``await connect(db_url)`` once at start-up (applies pending migrations when asked),
``await close()`` at shutdown (aiosqlite otherwise keeps the process alive at exit).

Functions that must act on a row that does not exist (``update_*``, ``end_conversation``,
``set_user_memory``) raise :class:`LookupError`; getters return None instead.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, get_current_context
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.migrations.executor import MigrationExecutor
from tortoise.transactions import in_transaction

from parley.core.store.models import (
    Conversation,
    FailedDelivery,
    Identity,
    InboundKey,
    Message,
    User,
    tortoise_config,
)
from parley.core.store.records import (
    ConversationRecord,
    FailedDeliveryRecord,
    MessageRecord,
    UserRecord,
)

__all__ = [
    "DuplicateMessage",
    "add_failed_delivery",
    "add_message",
    "claim_inbound",
    "close",
    "connect",
    "count_messages",
    "delete_conversation",
    "end_conversation",
    "find_open_conversation",
    "get_conversation",
    "get_message",
    "get_or_create_user",
    "get_user",
    "list_conversations",
    "list_failed_deliveries",
    "list_messages",
    "migrate",
    "pending_messages",
    "ping",
    "recent_messages",
    "set_user_memory",
    "start_conversation",
    "update_conversation",
    "update_message",
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

_ctx: TortoiseContext | None = None
_db_url: str | None = None
_last_seq = 0


class DuplicateMessage(Exception):
    """A message with the same (channel, platform_message_id) is already stored."""


# --- lifecycle ---------------------------------------------------------------------------


def _prepare_sqlite_dir(db_url: str) -> None:
    """Create the parent directory of a file-backed SQLite database."""
    if not db_url.startswith("sqlite://"):
        return
    path = db_url.removeprefix("sqlite://").split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _apply_migrations(ctx: TortoiseContext) -> list[str]:
    """Apply the pending migrations on the context's connection; return their names."""
    applied: list[str] = []

    def progress(event: str, _app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(name)

    executor = MigrationExecutor(ctx.db("default"), tortoise_config("")["apps"])
    if get_current_context() is ctx:
        await executor.migrate(progress=progress)
    else:
        with ctx:  # in_transaction() inside the executor must resolve to this context
            await executor.migrate(progress=progress)
    return applied


async def connect(db_url: str, *, migrate_first: bool = True) -> None:
    """Open the database (``sqlite://path``, ``sqlite://:memory:``, ``postgres://...``).

    With ``migrate_first`` pending migrations are applied before returning.
    """
    global _ctx, _db_url
    await close()
    # Tortoise caches INSERT/DELETE SQL per (connection name, table), whatever the dialect:
    # drop it so a new connection (SQLite after PostgreSQL, say) never reuses the old SQL.
    EXECUTOR_CACHE.clear()
    _prepare_sqlite_dir(db_url)
    ctx = TortoiseContext()
    # The global fallback makes the connection visible to every task of the process (e.g.
    # request handlers outside the task that called connect()), in any thread, provided it
    # runs on the event loop that connected: asyncpg and aiosqlite connections are loop-bound.
    with ctx:  # init resolves connections through the current context
        await ctx.init(config=tortoise_config(db_url), _enable_global_fallback=True)
    _ctx, _db_url = ctx, db_url
    if migrate_first:
        try:
            await _apply_migrations(ctx)
        except BaseException:
            await close()
            raise


async def migrate(db_url: str) -> list[str]:
    """Apply pending migrations; return the names of those applied."""
    if _ctx is not None and db_url == _db_url:
        return await _apply_migrations(_ctx)
    _prepare_sqlite_dir(db_url)
    ctx = TortoiseContext()
    try:
        with ctx:  # lazy connection: only the migration executor uses it
            await ctx.init(config=tortoise_config(db_url), init_connections=False)
        return await _apply_migrations(ctx)
    finally:
        await ctx.close_connections()


async def ping() -> None:
    """Run a trivial query; raises when the store is not connected or the database is down."""
    if _ctx is None:
        raise RuntimeError("the store is not connected: call connect() first")
    await _ctx.db("default").execute_query("SELECT 1")


async def close() -> None:
    """Close every connection."""
    global _ctx, _db_url
    ctx, _ctx, _db_url = _ctx, None, None
    if ctx is not None:
        await ctx.close_connections()


# --- helpers -----------------------------------------------------------------------------


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
    """Nanosecond clock, forced strictly increasing within the process."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


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


# --- users -------------------------------------------------------------------------------


async def get_or_create_user(
    channel: str, external_id: str, *, display_name: str | None = None
) -> UserRecord:
    """Resolve (channel, external_id) to a user, creating both on first sight (race-safe).

    A non-empty ``display_name`` updates the stored one.
    """
    for _ in range(5):
        identity = await Identity.get_or_none(
            channel=channel, external_id=external_id
        ).select_related("user")
        if identity is not None:
            user = identity.user
            if display_name and user.display_name != display_name:
                user.display_name = display_name
                await user.save(update_fields=["display_name"])
            return _user_record(user)
        try:
            async with in_transaction() as conn:
                user = await User.create(display_name=display_name or None, using_db=conn)
                await Identity.create(
                    user=user, channel=channel, external_id=external_id, using_db=conn
                )
            return _user_record(user)
        except IntegrityError:
            continue  # a concurrent call created the identity first: read it back
    raise RuntimeError(f"could not resolve identity {channel}:{external_id}")


async def get_user(user_id: str) -> UserRecord | None:
    """The user with this id, or None."""
    uid = _uuid(user_id)
    user = await User.get_or_none(id=uid) if uid else None
    return _user_record(user) if user else None


async def set_user_memory(user_id: str, memory: str | None) -> None:
    """Store (or erase with None) what the agent remembers about the user."""
    uid = _uuid(user_id)
    if not uid or not await User.filter(id=uid).update(memory=memory):
        raise LookupError(f"no user {user_id!r}")


# --- conversations -----------------------------------------------------------------------


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
    now = _now()
    conv = await Conversation.create(
        user_id=uid,
        channel=channel,
        template_id=template_id,
        language=language,
        status="open",
        started_at=now,
        last_activity_at=now,
        turn_count=0,
        state=dict(state or {}),
        expires_at=_utc(expires_at),
    )
    return _conversation_record(conv)


async def _get_conversation(conversation_id: str) -> Conversation | None:
    cid = _uuid(conversation_id)
    return await Conversation.get_or_none(id=cid) if cid else None


async def get_conversation(conversation_id: str) -> ConversationRecord | None:
    """The conversation, or None (also for a malformed id)."""
    conv = await _get_conversation(conversation_id)
    return _conversation_record(conv) if conv else None


async def find_open_conversation(user_id: str, channel: str) -> ConversationRecord | None:
    """The user's most recent open conversation on ``channel``, or None."""
    uid = _uuid(user_id)
    if uid is None:
        return None
    conv = (
        await Conversation.filter(user_id=uid, channel=channel, status="open")
        .order_by("-started_at", "-id")
        .first()
    )
    return _conversation_record(conv) if conv else None


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
    conv = await _get_conversation(conversation_id)
    if conv is None:
        raise LookupError(f"no conversation {conversation_id!r}")
    if not fields:
        return _conversation_record(conv)
    for key, value in fields.items():
        if isinstance(value, datetime):
            value = _utc(value)
        elif key == "state":
            value = dict(value or {})
        setattr(conv, key, value)
    await conv.save(update_fields=list(fields))
    return _conversation_record(conv)


async def end_conversation(conversation_id: str, reason: str) -> ConversationRecord:
    """Mark ended now with ``reason``; ending an ended conversation changes nothing."""
    cid = _uuid(conversation_id)
    if cid is not None:
        # Conditional update: concurrent calls end it once, the first reason wins.
        await Conversation.filter(id=cid, status="open").update(
            status="ended", ended_at=_now(), reason_ended=reason
        )
    conv = await _get_conversation(conversation_id)
    if conv is None:
        raise LookupError(f"no conversation {conversation_id!r}")
    return _conversation_record(conv)


async def delete_conversation(conversation_id: str) -> None:
    """Erase the conversation and its messages."""
    cid = _uuid(conversation_id)
    if cid is None:
        return
    async with in_transaction() as conn:
        await Message.filter(conversation_id=cid).using_db(conn).delete()
        await Conversation.filter(id=cid).using_db(conn).delete()


# --- messages ----------------------------------------------------------------------------


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
) -> MessageRecord:
    """Store a message. Raises :class:`DuplicateMessage` when (channel, platform_message_id) exists."""
    cid = _uuid(conversation_id)
    if cid is None:
        raise LookupError(f"no conversation {conversation_id!r}")
    try:
        msg = await Message.create(
            conversation_id=cid,
            seq=_next_seq(),
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
            created_at=_now(),
        )
    except IntegrityError as exc:
        if await _is_duplicate(channel, platform_message_id):
            raise DuplicateMessage(f"{channel}:{platform_message_id}") from exc
        if not await Conversation.exists(id=cid):
            raise LookupError(f"no conversation {conversation_id!r}") from exc
        raise
    return _message_record(msg)


async def update_message(
    message_id: str, *, move_to_end: bool = False, **fields: Any
) -> MessageRecord:
    """Set fields of a message (content, status, tokens_in, tokens_out, metadata...).

    ``move_to_end`` orders the message after every message stored so far (an adapter stored it
    ahead of its turn; the turn places it where it is answered).
    """
    _check_fields(fields, _MESSAGE_FIELDS, "message")
    mid = _uuid(message_id)
    msg = await Message.get_or_none(id=mid) if mid else None
    if msg is None:
        raise LookupError(f"no message {message_id!r}")
    if not fields and not move_to_end:
        return _message_record(msg)
    for key, value in fields.items():
        setattr(msg, key, dict(value or {}) if key == "metadata" else value)
    update_fields = list(fields)
    if move_to_end:
        msg.seq = _next_seq()
        update_fields.append("seq")
    try:
        await msg.save(update_fields=update_fields)
    except IntegrityError as exc:
        raise DuplicateMessage(f"{msg.channel}:{msg.platform_message_id}") from exc
    return _message_record(msg)


async def get_message(message_id: str) -> MessageRecord | None:
    """The message, or None."""
    mid = _uuid(message_id)
    msg = await Message.get_or_none(id=mid) if mid else None
    return _message_record(msg) if msg else None


async def recent_messages(conversation_id: str, limit: int) -> list[MessageRecord]:
    """The last ``limit`` messages, oldest first (the LLM history window)."""
    cid = _uuid(conversation_id)
    if cid is None or limit <= 0:
        return []
    msgs = await Message.filter(conversation_id=cid).order_by("-seq").limit(limit)
    return [_message_record(m) for m in reversed(msgs)]


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


async def claim_inbound(channel: str, key: str) -> bool:
    """Record an inbound delivery key (e.g. a Telegram update_id) once: True the first time only."""
    try:
        await InboundKey.create(channel=channel, key=str(key))
    except IntegrityError:
        return False
    return True


# --- outbound deliveries -----------------------------------------------------------------


def _delivery_record(row: FailedDelivery) -> FailedDeliveryRecord:
    return FailedDeliveryRecord(
        id=str(row.id),
        url=row.url,
        event=row.event,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
        status_code=row.status_code,
        error=row.error,
        created_at=_utc(row.created_at),
    )


async def add_failed_delivery(
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    attempts: int,
    status_code: int | None = None,
    error: str | None = None,
) -> FailedDeliveryRecord:
    """Keep a notification that failed after its retries."""
    row = await FailedDelivery.create(
        url=url,
        event=event,
        payload=dict(payload),
        attempts=attempts,
        status_code=status_code,
        error=error,
        created_at=_now(),
    )
    return _delivery_record(row)


async def list_failed_deliveries(*, limit: int = 100) -> list[FailedDeliveryRecord]:
    """Failed notifications, newest first."""
    rows = await FailedDelivery.all().order_by("-created_at").limit(max(limit, 0))
    return [_delivery_record(row) for row in rows]
