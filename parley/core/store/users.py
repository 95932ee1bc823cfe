"""Users and their identities on each channel."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from parley.core.store._common import (
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

__all__ = ["get_or_create_user", "get_user", "move_identity", "set_user_memory"]


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
