"""Users and identities."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from parley.core import store
from parley.core.store.models import Identity, User


async def test_get_or_create_user_creates_once(db: str) -> None:
    first = await store.get_or_create_user("telegram", "42", display_name="Ann")
    again = await store.get_or_create_user("telegram", "42")
    assert again.id == first.id
    assert again.display_name == "Ann"
    assert first.memory is None
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset() == UTC.utcoffset(None)


async def test_identity_is_per_channel(db: str) -> None:
    tg = await store.get_or_create_user("telegram", "42")
    web = await store.get_or_create_user("web", "42")
    other = await store.get_or_create_user("telegram", "43")
    assert len({tg.id, web.id, other.id}) == 3


async def test_display_name_updates_only_when_given(db: str) -> None:
    user = await store.get_or_create_user("web", "u", display_name="Ann")
    renamed = await store.get_or_create_user("web", "u", display_name="Anna")
    kept = await store.get_or_create_user("web", "u", display_name="")
    assert renamed.id == user.id
    assert renamed.display_name == "Anna"
    assert kept.display_name == "Anna"
    assert (await store.get_user(user.id)).display_name == "Anna"


async def test_get_or_create_user_is_race_safe(db: str) -> None:
    users = await asyncio.gather(
        *(store.get_or_create_user("telegram", "race", display_name="R") for _ in range(10))
    )
    assert len({u.id for u in users}) == 1
    assert await Identity.filter(channel="telegram", external_id="race").count() == 1
    assert await User.all().count() == 1


async def test_get_user(db: str) -> None:
    user = await store.get_or_create_user("web", "u")
    assert await store.get_user(user.id) == user
    assert await store.get_user("00000000-0000-0000-0000-000000000000") is None
    assert await store.get_user("not-a-uuid") is None


async def test_set_user_memory(db: str) -> None:
    user = await store.get_or_create_user("web", "u")
    await store.set_user_memory(user.id, "likes tea")
    assert (await store.get_user(user.id)).memory == "likes tea"
    await store.set_user_memory(user.id, None)
    assert (await store.get_user(user.id)).memory is None
    with pytest.raises(LookupError):
        await store.set_user_memory("00000000-0000-0000-0000-000000000000", "x")
    with pytest.raises(LookupError):
        await store.set_user_memory("bad", "x")
