"""Users and their identities on each channel."""

from __future__ import annotations

import dataclasses
import uuid

from tortoise.exceptions import IntegrityError

from parley.core.store._common import (
    _now,
    _user_record,
    _uuid,
)
from parley.core.store.models import (
    Identity,
    User,
)
from parley.core.store.records import (
    UserRecord,
)
from parley.core.store.statements import Row, insert_rows, select_rows

__all__ = [
    "find_user",
    "get_or_create_user",
    "get_user",
    "move_identity",
    "set_user_memory",
]


_USER_BY_IDENTITY = (
    "SELECT u.id, u.display_name, u.memory, u.created_at FROM parley_user u"
    " JOIN parley_identity i ON i.user_id = u.id WHERE i.channel = ? AND i.external_id = ?"
)


async def find_user(channel: str, external_id: str) -> UserRecord | None:
    """The user of identity (``channel``, ``external_id``), or None (one statement)."""
    users = await select_rows(User, _USER_BY_IDENTITY, [channel, external_id])
    return _user_record(users[0]) if users else None


def _new_user(
    channel: str, external_id: str, display_name: str | None = None
) -> tuple[UserRecord, list[Row]]:
    """A new user with its identity (``channel``, ``external_id``): its record, and the rows to
    insert (with :func:`~parley.core.store.statements.insert_rows`, after others of the same
    transaction that need the user)."""
    user_id, now = uuid.uuid4(), _now()
    rows: list[Row] = [
        (User, {"id": user_id, "display_name": display_name, "created_at": now}),
        (
            Identity,
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "channel": channel,
                "external_id": external_id,
                "created_at": now,
            },
        ),
    ]
    return UserRecord(id=str(user_id), display_name=display_name, memory=None, created_at=now), rows


async def get_or_create_user(
    channel: str, external_id: str, *, display_name: str | None = None
) -> UserRecord:
    """Resolve (channel, external_id) to a user, creating both on first sight (race-safe).

    A non-empty ``display_name`` updates the stored one.
    """
    for _ in range(5):
        user = await find_user(channel, external_id)
        if user is not None:
            if display_name and user.display_name != display_name:
                await User.filter(id=user.id).update(display_name=display_name)
                user = dataclasses.replace(user, display_name=display_name)
            return user
        try:
            user, rows = _new_user(channel, external_id, display_name or None)
            await insert_rows(rows)
            return user
        except IntegrityError:
            pass  # a concurrent call created the identity first: read it back
    raise RuntimeError(f"could not resolve identity {channel}:{external_id}")


async def get_user(user_id: str) -> UserRecord | None:
    """The user with this id, or None."""
    uid = _uuid(user_id)
    user = await User.get_or_none(id=uid) if uid else None
    return _user_record(user) if user else None


_memory_writes = 0


def memory_writes() -> int:
    """How many times this process has written a user's memory (a copy of a memory read before
    a change here is stale: the memory plugin reads it again)."""
    return _memory_writes


async def set_user_memory(user_id: str, memory: str | None) -> None:
    """Store (or erase with None) what the agent remembers about the user."""
    global _memory_writes
    uid = _uuid(user_id)
    if not uid or not await User.filter(id=uid).update(memory=memory):
        raise LookupError(f"no user {user_id!r}")
    _memory_writes += 1


async def move_identity(channel: str, old_external_id: str, new_external_id: str) -> bool:
    """Point the identity (``channel``, old id) at the new id (a user changed their number), so
    the user and their history follow. False when there is no old identity or the new id is
    already someone's (nothing changes)."""
    if await Identity.exists(channel=channel, external_id=new_external_id):
        return False
    try:
        moved = await Identity.filter(channel=channel, external_id=old_external_id).update(
            external_id=new_external_id
        )
    except IntegrityError:
        return False  # the new id appeared meanwhile
    return bool(moved)
