"""The durable inbox: inbound items stored before they are acknowledged, claimed under leases.

PostgreSQL (several processes): a claim is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
SKIP LOCKED)``; leases are measured on the database's clock. SQLite (one process): the same
table, claimed by a conditional update (compare-and-set) under an in-process lock.

A lane's items are claimed one at a time and in order: an item is claimable only when no older
item of its lane is still unfinished (``queued`` or ``claimed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from parley.core.store._common import _now, _utc, _uuid
from parley.core.store.models import InboxItem, OutboundSend
from parley.core.store.records import InboxRecord

__all__ = [
    "claim_inbox",
    "claim_inbox_item",
    "finish_inbox",
    "get_inbox",
    "inbox_items",
    "prune_inbox",
    "put_inbox",
    "record_send",
    "release_inbox",
    "renew_inbox",
    "sent",
    "update_inbox",
]

UNFINISHED = ("queued", "claimed")

_sqlite_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
"""SQLite serves one process: claims are made one at a time in it (one lock per event loop)."""


def _sqlite_claims() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _sqlite_locks.get(loop)
    if lock is None:
        for old in [other for other in _sqlite_locks if other.is_closed()]:
            del _sqlite_locks[old]
        lock = _sqlite_locks[loop] = asyncio.Lock()
    return lock


_INBOX_FIELDS = frozenset({"payload", "result", "conversation_id", "user_message_id"})


def _record(row: InboxItem) -> InboxRecord:
    return InboxRecord(
        id=row.id,
        channel=row.channel,
        key=row.key,
        lane=row.lane,
        status=row.status,
        claimed_by=row.claimed_by,
        lease_until=_utc(row.lease_until),
        attempts=row.attempts,
        payload=dict(row.payload or {}),
        result=dict(row.result or {}),
        conversation_id=str(row.conversation_id) if row.conversation_id else None,
        user_message_id=str(row.user_message_id) if row.user_message_id else None,
        created_at=_utc(row.created_at) or _now(),
        done_at=_utc(row.done_at),
    )


def _postgres() -> bool:
    return InboxItem._meta.db.capabilities.dialect == "postgres"


async def _lease_pg(ids: list[int], holder: str, lease: float, *, claim: bool) -> list[int]:
    """PostgreSQL: extend (or take, ``claim``) the lease of ``ids`` on the database clock."""
    if claim:
        sql = (
            "UPDATE parley_inbox SET status = 'claimed', claimed_by = $1,"
            " lease_until = now() + $2 * interval '1 second', attempts = attempts + 1"
            " WHERE id = ANY($3::bigint[]) RETURNING id"
        )
    else:
        sql = (
            "UPDATE parley_inbox SET lease_until = now() + $2 * interval '1 second'"
            " WHERE id = ANY($3::bigint[]) AND claimed_by = $1 AND status = 'claimed'"
            " RETURNING id"
        )
    rows = await InboxItem._meta.db.execute_query_dict(sql, [holder, float(lease), ids])
    return [int(row["id"]) for row in rows]


async def put_inbox(
    channel: str,
    key: str,
    lane: str,
    *,
    payload: dict[str, Any] | None = None,
    conversation_id: str | None = None,
    user_message_id: str | None = None,
    claim_for: str | None = None,
    lease: float = 30.0,
) -> tuple[InboxRecord, bool]:
    """Store an item once per (channel, key): ``(item, True)`` the first time, else the stored
    ``(item, False)`` (a repeat). With ``claim_for`` a new item is claimed at once by that holder."""
    fields: dict[str, Any] = {
        "channel": channel,
        "key": key,
        "lane": lane,
        "payload": dict(payload or {}),
        "conversation_id": _uuid(conversation_id),
        "user_message_id": _uuid(user_message_id),
    }
    if claim_for is not None:
        fields.update(
            status="claimed",
            claimed_by=claim_for,
            attempts=1,
            lease_until=_now() + timedelta(seconds=lease),
        )
    try:
        row = await InboxItem.create(**fields)
    except IntegrityError:
        existing = await InboxItem.get_or_none(channel=channel, key=key)
        if existing is None:  # deleted in between (pruned): store it again
            return await put_inbox(
                channel,
                key,
                lane,
                payload=payload,
                conversation_id=conversation_id,
                user_message_id=user_message_id,
                claim_for=claim_for,
                lease=lease,
            )
        return _record(existing), False
    if claim_for is not None and _postgres():
        await _lease_pg([row.id], claim_for, lease, claim=False)  # the database's clock rules
    return _record(row), True


async def get_inbox(channel: str, key: str) -> InboxRecord | None:
    """The item stored under (channel, key), or None."""
    row = await InboxItem.get_or_none(channel=channel, key=key)
    return _record(row) if row else None


async def inbox_items(
    *, channel: str | None = None, status: str | None = None, lane: str | None = None
) -> list[InboxRecord]:
    """Items in arrival order, optionally of one channel, status or lane (tests, operators)."""
    query = InboxItem.all()
    if channel is not None:
        query = query.filter(channel=channel)
    if status is not None:
        query = query.filter(status=status)
    if lane is not None:
        query = query.filter(lane=lane)
    return [_record(row) for row in await query.order_by("id")]


_CLAIM_PG = """
UPDATE parley_inbox SET status = 'claimed', claimed_by = $1,
       lease_until = now() + $2 * interval '1 second', attempts = attempts + 1
WHERE id IN (
    SELECT i.id FROM parley_inbox i
    WHERE i.channel = ANY($3::text[])
      AND (i.status = 'queued' OR (i.status = 'claimed' AND i.lease_until < now()))
      AND NOT EXISTS (
          SELECT 1 FROM parley_inbox o
          WHERE o.lane = i.lane AND o.id < i.id AND o.status IN ('queued', 'claimed'))
    ORDER BY i.id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING id
"""


async def claim_inbox(
    holder: str, channels: Iterable[str], *, lease: float = 30.0, limit: int = 10
) -> list[InboxRecord]:
    """Claim up to ``limit`` claimable items of ``channels`` for ``holder``, oldest first.

    Claimable: ``queued``, or ``claimed`` with an expired lease (its holder died), and the oldest
    unfinished item of its lane. Each claim counts an attempt.
    """
    channels = list(channels)
    if not channels or limit <= 0:
        return []
    if _postgres():
        rows = await InboxItem._meta.db.execute_query_dict(
            _CLAIM_PG, [holder, float(lease), channels, limit]
        )
        ids = [int(row["id"]) for row in rows]
    else:
        async with _sqlite_claims():
            ids = await _claim_sqlite(holder, channels, lease, limit)
    if not ids:
        return []
    return [_record(row) for row in await InboxItem.filter(id__in=ids).order_by("id")]


async def _claim_sqlite(holder: str, channels: list[str], lease: float, limit: int) -> list[int]:
    now = _now()
    rows = await InboxItem.filter(status__in=UNFINISHED).order_by("id")
    seen: set[str] = set()
    ids: list[int] = []
    for row in rows:
        if row.lane in seen:
            continue
        seen.add(row.lane)
        if row.channel not in channels:
            continue
        expired = row.status == "claimed" and (_utc(row.lease_until) or now) < now
        if row.status != "queued" and not expired:
            continue
        updated = await InboxItem.filter(
            id=row.id, status=row.status, claimed_by=row.claimed_by
        ).update(
            status="claimed",
            claimed_by=holder,
            lease_until=now + timedelta(seconds=lease),
            attempts=row.attempts + 1,
        )
        if updated:
            ids.append(row.id)
        if len(ids) >= limit:
            break
    return ids


async def claim_inbox_item(item_id: int, holder: str, *, lease: float = 30.0) -> InboxRecord | None:
    """Take over one item whose lease expired (its holder died); None when it is not claimable."""
    if _postgres():
        sql = (
            "UPDATE parley_inbox SET status = 'claimed', claimed_by = $1,"
            " lease_until = now() + $2 * interval '1 second', attempts = attempts + 1"
            " WHERE id = $3 AND (status = 'queued'"
            " OR (status = 'claimed' AND lease_until < now())) RETURNING id"
        )
        rows = await InboxItem._meta.db.execute_query_dict(sql, [holder, float(lease), item_id])
        taken = bool(rows)
    else:
        async with _sqlite_claims():
            row = await InboxItem.get_or_none(id=item_id)
            now = _now()
            taken = row is not None and (
                row.status == "queued"
                or (row.status == "claimed" and (_utc(row.lease_until) or now) < now)
            )
            if taken and row is not None:
                await InboxItem.filter(id=item_id).update(
                    status="claimed",
                    claimed_by=holder,
                    lease_until=now + timedelta(seconds=lease),
                    attempts=row.attempts + 1,
                )
    if not taken:
        return None
    row = await InboxItem.get_or_none(id=item_id)
    return _record(row) if row else None


async def renew_inbox(ids: Iterable[int], holder: str, *, lease: float = 30.0) -> set[int]:
    """Extend ``holder``'s leases on ``ids``; return the ids it still holds (others were lost)."""
    ids = list(ids)
    if not ids:
        return set()
    if _postgres():
        return set(await _lease_pg(ids, holder, lease, claim=False))
    held = set(
        await InboxItem.filter(id__in=ids, claimed_by=holder, status="claimed").values_list(
            "id", flat=True
        )
    )
    if held:
        until = _now() + timedelta(seconds=lease)
        await InboxItem.filter(id__in=list(held)).update(lease_until=until)
    return held


async def finish_inbox(
    item_id: int, holder: str, *, status: str = "done", result: dict[str, Any] | None = None
) -> bool:
    """Mark ``holder``'s item ``done`` (or ``failed``) with its ``result``; False when the holder
    no longer held it (its lease expired and another process took it)."""
    if status not in ("done", "failed"):
        raise ValueError(f"an item finishes done or failed, not {status!r}")
    fields: dict[str, Any] = {"status": status, "done_at": _now(), "lease_until": None}
    if result is not None:
        fields["result"] = dict(result)
    updated = await InboxItem.filter(id=item_id, claimed_by=holder, status="claimed").update(
        **fields
    )
    return bool(updated)


async def release_inbox(item_id: int, holder: str) -> bool:
    """Give an item back (``queued``), e.g. at shutdown; False when ``holder`` did not hold it."""
    updated = await InboxItem.filter(id=item_id, claimed_by=holder, status="claimed").update(
        status="queued", claimed_by=None, lease_until=None
    )
    return bool(updated)


async def refund_attempt(item_id: int, holder: str) -> bool:
    """Take back the attempt ``holder``'s claim counted (an outage cut the turn: not the
    message's fault); the item stays claimed until its lease expires, then is claimed again."""
    updated = await InboxItem.filter(
        id=item_id, claimed_by=holder, status="claimed", attempts__gt=0
    ).update(attempts=F("attempts") - 1)
    return bool(updated)


async def update_inbox(item_id: int, **fields: Any) -> None:
    """Set ``payload``, ``result``, ``conversation_id`` or ``user_message_id`` of an item."""
    unknown = set(fields) - _INBOX_FIELDS
    if unknown:
        raise TypeError(f"cannot update inbox field(s): {', '.join(sorted(unknown))}")
    for name in ("conversation_id", "user_message_id"):
        if name in fields:
            fields[name] = _uuid(fields[name])
    if fields:
        await InboxItem.filter(id=item_id).update(**fields)


async def prune_inbox(older_than: datetime) -> int:
    """Forget finished items finished before ``older_than``; return how many."""
    return await InboxItem.filter(
        status__in=("done", "failed"), done_at__lt=_utc(older_than)
    ).delete()


async def sent(channel: str, key: str) -> str | None:
    """The platform id recorded for an outbound part already delivered, or None (not sent)."""
    row = await OutboundSend.get_or_none(channel=channel, key=key)
    if row is None:
        return None
    return row.platform_id or ""


async def record_send(channel: str, key: str, platform_id: str | None) -> None:
    """Record that the outbound part ``key`` was delivered (as ``platform_id``)."""
    try:
        await OutboundSend.create(channel=channel, key=key, platform_id=platform_id)
    except IntegrityError:
        pass  # recorded already (a retry that sent it again inside the window)
