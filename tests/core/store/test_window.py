"""The history window kept in memory (SQLite) is always what the database holds.

After every kind of write the store makes, ``recent_messages`` (served from memory once read) is
compared with the same window read from the database (the cache dropped first).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parley.core import store
from parley.core.store import ConversationRecord
from parley.core.store.window import Windows, windows


@pytest.fixture
async def conv(db: str) -> ConversationRecord:
    user = await store.get_or_create_user("web", "w1")
    return await store.start_conversation(user.id, "web", "solo", "en")


async def _fresh(conversation_id: str, limit: int) -> list[store.MessageRecord]:
    windows.drop(conversation_id)
    return await store.recent_messages(conversation_id, limit)


async def _same(conversation_id: str, limit: int = 4) -> None:
    kept = await store.recent_messages(conversation_id, limit)
    assert kept == await _fresh(conversation_id, limit)
    await store.recent_messages(conversation_id, limit)  # kept again, for the next write


async def test_the_window_follows_every_write(conv: ConversationRecord, db: str) -> None:
    await _same(conv.id)  # empty, and kept
    first = await store.add_message(conv.id, "user", "one")
    await _same(conv.id)
    reply = await store.add_message(conv.id, "assistant", "", status="pending")
    await _same(conv.id)
    await store.set_message_fields(reply.id, content="two", status="complete")
    await _same(conv.id)
    assert (await store.recent_messages(conv.id, 4))[-1].content == "two"
    await store.update_message(first.id, content="one, edited")
    await _same(conv.id)
    for i in range(5):  # past the window: the oldest leave it
        await store.add_message(conv.id, "user", f"m{i}")
        await _same(conv.id)
    ahead = await store.add_message(conv.id, "user", "stored ahead", status="pending")
    await store.add_message(conv.id, "assistant", "meanwhile")
    await store.update_message(ahead.id, status="complete", move_to_end=True)
    await _same(conv.id)
    assert (await store.recent_messages(conv.id, 4))[-1].id == ahead.id
    await store.add_message(conv.id, "assistant", "", status="pending")
    await store.settle_abandoned(datetime.now(UTC) + timedelta(seconds=1))
    await _same(conv.id)
    await store.delete_conversation(conv.id)
    assert await store.recent_messages(conv.id, 4) == []
    assert windows.enabled == db.startswith("sqlite")


async def test_writes_that_finish_out_of_order_are_kept_in_seq_order(
    conv: ConversationRecord,
) -> None:
    """Two writes of one conversation may finish in either order (PostgreSQL's sequence, SQLite's
    clock hand out ``seq`` before the INSERT): the window is ordered by ``seq``."""
    early = await store.add_message(conv.id, "user", "early")
    late = await store.add_message(conv.id, "user", "late")
    kept = Windows()
    kept.reset(enabled=True)
    kept.fill(conv.id, 5, [])
    kept.added(20, late)
    kept.added(10, early)
    assert [m.content for m in kept.get(conv.id, 5) or []] == ["early", "late"]


async def test_a_longer_window_than_kept_is_read(conv: ConversationRecord) -> None:
    for i in range(6):
        await store.add_message(conv.id, "user", f"m{i}")
    assert len(await store.recent_messages(conv.id, 3)) == 3  # keeps 3
    assert [m.content for m in await store.recent_messages(conv.id, 5)] == [
        f"m{i}" for i in range(1, 6)
    ]
