"""The conversation records kept in memory (SQLite) are always what the database holds.

After every kind of write the store makes, ``get_conversation`` (served from memory once read) is
compared with the same conversation read from the database (the cache emptied first), and the
second read is checked to run no SQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from parley.core import store
from parley.core.store import ConversationRecord
from parley.core.store.conversation_cache import ConversationCache, conversations


@pytest.fixture
async def conv(db: str) -> ConversationRecord:
    user = await store.get_or_create_user("web", "w1")
    return await store.start_conversation(user.id, "web", "solo", "en")


async def _fresh(conversation_id: str) -> ConversationRecord | None:
    """The conversation as the database has it (the cache left as it is)."""
    enabled = conversations.enabled
    conversations.enabled = False
    try:
        return await store.get_conversation(conversation_id)
    finally:
        conversations.enabled = enabled


async def _same(conversation_id: str, db: str) -> ConversationRecord | None:
    """The kept record equals the database's; once kept, reading it runs no SQL (SQLite)."""
    kept = await store.get_conversation(conversation_id)  # kept by the write, or read and kept
    fresh = await _fresh(conversation_id)
    assert kept == fresh
    statements: list[str] = []
    if db.startswith("sqlite"):
        connection = Tortoise.get_connection("default")._connection
        await connection.set_trace_callback(statements.append)
        again = await store.get_conversation(conversation_id)
        await connection.set_trace_callback(None)
        assert again == fresh
        assert statements == []
    return fresh


async def test_the_record_follows_every_write(conv: ConversationRecord, db: str) -> None:
    await store.get_conversation(conv.id)
    later = datetime.now(UTC) + timedelta(minutes=5)
    await store.set_conversation_fields(conv.id, turn_count=3, expires_at=later)
    assert (await _same(conv.id, db)).turn_count == 3
    await store.update_state(conv.id, lambda state: state.update(mood="calm"), language="fr")
    record = await _same(conv.id, db)
    assert (record.state, record.language) == ({"mood": "calm"}, "fr")
    await store.update_conversation(conv.id, template_id="other")
    assert (await _same(conv.id, db)).template_id == "other"
    await store.end_conversation(conv.id, "user_ended")
    assert (await _same(conv.id, db)).status == "ended"
    await store.delete_conversation(conv.id)
    assert await store.get_conversation(conv.id) is None
    assert conversations.enabled == db.startswith("sqlite")


async def test_a_record_handed_out_cannot_change_what_is_kept(
    conv: ConversationRecord, db: str
) -> None:
    await store.update_state(conv.id, lambda state: state.update(step=1))
    first = await store.get_conversation(conv.id)
    first.state["step"] = 99  # a careless caller
    assert (await store.get_conversation(conv.id)).state == {"step": 1}
    assert await _fresh(conv.id) == await store.get_conversation(conv.id)


async def test_concurrent_writes_and_reads_end_as_the_database(
    conv: ConversationRecord, db: str
) -> None:
    async def count(n: int) -> None:
        await store.set_conversation_fields(conv.id, turn_count=n)

    async def mood(n: int) -> None:
        await store.update_state(conv.id, lambda state: state.update(mood=n))

    jobs = [count(n) for n in range(10)] + [mood(n) for n in range(10)]
    jobs += [store.get_conversation(conv.id) for _ in range(10)]
    await asyncio.gather(*jobs)
    assert await store.get_conversation(conv.id) == await _fresh(conv.id)


def test_a_read_overtaken_by_a_write_is_not_kept(conv: ConversationRecord) -> None:
    cache = ConversationCache()
    cache.reset(enabled=True)
    before = cache.version(conv.id)
    cache.wrote(conv.id, cache.version(conv.id), None)  # a write counted while we read
    cache.read(conv, before)
    assert cache.get(conv.id) is None
    # A write whose own noted version is stale does not keep its record either...
    stale = cache.version(conv.id)
    cache.wrote(conv.id, cache.version(conv.id), conv)
    assert cache.get(conv.id) == conv
    cache.wrote(conv.id, stale, conv)
    assert cache.get(conv.id) is None
    # ...and neither do set fields applied to a record that was not current.
    cache.changed(conv.id, stale, turn_count=7)
    assert cache.get(conv.id) is None
