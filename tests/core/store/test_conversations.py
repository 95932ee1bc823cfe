"""Conversations: start, find, list, update, end, delete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from parley.core import store
from parley.core.store import ConversationRecord, UserRecord
from parley.core.store.models import Conversation, Identity, User

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def user(db: str) -> UserRecord:
    return await store.get_or_create_user("web", "u1", display_name="Ann")


async def test_start_and_get(user: UserRecord) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    conv = await store.start_conversation(
        user.id, "web", "solo", "en", expires_at=expires, state={"k": [1, 2]}
    )
    assert isinstance(conv, ConversationRecord)
    assert conv.is_open and conv.status == "open"
    assert (conv.user_id, conv.channel, conv.template_id, conv.language) == (
        user.id,
        "web",
        "solo",
        "en",
    )
    assert conv.turn_count == 0
    assert conv.ended_at is None and conv.reason_ended is None
    assert conv.state == {"k": [1, 2]}
    assert conv.expires_at == expires
    assert conv.started_at.tzinfo is not None
    assert conv.last_activity_at == conv.started_at
    assert await store.get_conversation(conv.id) == conv


async def test_get_conversation_missing_or_malformed(db: str) -> None:
    assert await store.get_conversation(MISSING) is None
    assert await store.get_conversation("nope") is None
    assert await store.get_conversation("") is None


async def test_find_open_conversation(user: UserRecord) -> None:
    assert await store.find_open_conversation(user.id, "web") is None
    older = await store.start_conversation(user.id, "web", "solo", "en")
    newer = await store.start_conversation(user.id, "web", "duo", "en")
    await store.start_conversation(user.id, "telegram", "solo", "en")
    assert (await store.find_open_conversation(user.id, "web")).id == newer.id
    await store.end_conversation(newer.id, "done")
    assert (await store.find_open_conversation(user.id, "web")).id == older.id
    await store.end_conversation(older.id, "done")
    assert await store.find_open_conversation(user.id, "web") is None
    assert await store.find_open_conversation("bad", "web") is None


async def test_list_conversations_newest_first_with_counts(user: UserRecord) -> None:
    convs = [await store.start_conversation(user.id, "web", "solo", "en") for _ in range(3)]
    for i, conv in enumerate(convs):
        for _ in range(i):
            await store.add_message(conv.id, "user", "hi")
    other = await store.get_or_create_user("web", "u2")
    await store.start_conversation(other.id, "web", "solo", "en")

    listed = await store.list_conversations(user.id)
    assert [(c.id, n) for c, n in listed] == [(convs[2].id, 2), (convs[1].id, 1), (convs[0].id, 0)]
    assert [c.id for c, _ in await store.list_conversations(user.id, limit=2)] == [
        convs[2].id,
        convs[1].id,
    ]
    before = await store.list_conversations(user.id, before=convs[2].started_at)
    assert [c.id for c, _ in before] == [convs[1].id, convs[0].id]
    assert await store.list_conversations(user.id, before=convs[0].started_at) == []
    assert await store.list_conversations("bad") == []


async def test_update_conversation(user: UserRecord) -> None:
    conv = await store.start_conversation(user.id, "web", "solo", "en")
    when = datetime.now(UTC) + timedelta(minutes=5)
    updated = await store.update_conversation(
        conv.id,
        state={"a": 1},
        turn_count=3,
        last_activity_at=when,
        expires_at=when,
        template_id="duo",
        language="de",
    )
    assert updated.state == {"a": 1}
    assert updated.turn_count == 3
    assert updated.last_activity_at == when
    assert updated.expires_at == when
    assert (updated.template_id, updated.language) == ("duo", "de")
    assert await store.get_conversation(conv.id) == updated
    cleared = await store.update_conversation(conv.id, expires_at=None)
    assert cleared.expires_at is None
    assert await store.update_conversation(conv.id) == cleared


async def test_update_conversation_rejects_unknown(user: UserRecord) -> None:
    conv = await store.start_conversation(user.id, "web", "solo", "en")
    with pytest.raises(TypeError, match="colour"):
        await store.update_conversation(conv.id, colour="red")
    with pytest.raises(TypeError):
        await store.update_conversation(conv.id, id=MISSING)
    with pytest.raises(LookupError):
        await store.update_conversation(MISSING, turn_count=1)


async def test_end_conversation_is_idempotent(user: UserRecord) -> None:
    conv = await store.start_conversation(user.id, "web", "solo", "en")
    ended = await store.end_conversation(conv.id, "user_goodbye")
    assert not ended.is_open
    assert ended.status == "ended"
    assert ended.reason_ended == "user_goodbye"
    assert ended.ended_at is not None and ended.ended_at >= conv.started_at
    again = await store.end_conversation(conv.id, "expired")
    assert again == ended
    with pytest.raises(LookupError):
        await store.end_conversation(MISSING, "x")


async def test_delete_conversation_removes_messages(user: UserRecord) -> None:
    conv = await store.start_conversation(user.id, "web", "solo", "en")
    keep = await store.start_conversation(user.id, "web", "solo", "en")
    msg = await store.add_message(conv.id, "user", "hi", channel="web", platform_message_id="1")
    await store.add_message(conv.id, "assistant", "hello")
    kept = await store.add_message(keep.id, "user", "stay")
    await store.delete_conversation(conv.id)
    assert await store.get_conversation(conv.id) is None
    assert await store.get_message(msg.id) is None
    assert await store.count_messages(conv.id) == 0
    assert await store.get_message(kept.id) == kept
    # the platform id is free again
    await store.add_message(keep.id, "user", "again", channel="web", platform_message_id="1")
    await store.delete_conversation(conv.id)  # deleting twice is fine
    await store.delete_conversation("bad")


async def test_start_first_conversation(db: str) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    conv = await store.start_first_conversation(
        "web", "new-device", "solo", "en", expires_at=expires
    )
    assert conv.is_open and conv.channel == "web" and conv.expires_at == expires
    assert await store.get_conversation(conv.id) == conv
    user = await store.find_user("web", "new-device")
    assert user is not None and user.id == conv.user_id
    assert await store.get_user(user.id) == user
    assert await store.get_or_create_user("web", "new-device") == user
    assert (await store.find_open_conversation(user.id, "web")).id == conv.id


async def test_start_first_conversation_once_per_identity(db: str) -> None:
    known = await store.get_or_create_user("web", "known")
    assert await store.start_first_conversation("web", "known", "solo", "en") is None
    assert await store.list_conversations(known.id) == []  # nothing stored
    started = await asyncio.gather(
        *(store.start_first_conversation("web", "race", "solo", "en") for _ in range(5))
    )
    assert len([c for c in started if c is not None]) == 1
    assert await User.all().count() == 2  # the losers' users were rolled back with them
    assert await Identity.filter(external_id="race").count() == 1
    assert await Conversation.all().count() == 1
