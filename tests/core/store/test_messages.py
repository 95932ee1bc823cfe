"""Messages: storing, de-duplication, ordering, windows, pending, inbound claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from parley.core import store
from parley.core.store import ConversationRecord, MessageRecord
from parley.core.store.models import Message
from parley.core.store.statements import insert_row_and_select

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def conv(db: str) -> ConversationRecord:
    user = await store.get_or_create_user("web", "u1")
    return await store.start_conversation(user.id, "web", "solo", "en")


async def _many(conv: ConversationRecord, n: int) -> list[MessageRecord]:
    return [await store.add_message(conv.id, "user", f"m{i}") for i in range(n)]


async def test_add_and_get_message(conv: ConversationRecord) -> None:
    msg = await store.add_message(
        conv.id,
        "assistant",
        "Hello",
        status="interrupted",
        name="Alex",
        character_id="alex",
        tokens_in=10,
        tokens_out=3,
        intent="greet",
        lang="en",
        metadata={"latency_ms": 12},
        channel="web",
        platform_message_id="p1",
    )
    assert isinstance(msg, MessageRecord)
    assert msg.conversation_id == conv.id
    assert (msg.role, msg.content, msg.status) == ("assistant", "Hello", "interrupted")
    assert (msg.name, msg.character_id, msg.intent, msg.lang) == ("Alex", "alex", "greet", "en")
    assert (msg.tokens_in, msg.tokens_out) == (10, 3)
    assert msg.metadata == {"latency_ms": 12}
    assert (msg.channel, msg.platform_message_id) == ("web", "p1")
    assert msg.created_at.tzinfo is not None
    assert await store.get_message(msg.id) == msg

    plain = await store.add_message(conv.id, "user", "hi")
    assert plain.status == "complete"
    assert plain.metadata == {}
    assert plain.channel is None and plain.platform_message_id is None


async def test_get_message_missing_or_malformed(db: str) -> None:
    assert await store.get_message(MISSING) is None
    assert await store.get_message("bad") is None


async def test_add_message_to_missing_conversation(db: str) -> None:
    with pytest.raises(LookupError):
        await store.add_message(MISSING, "user", "hi")
    with pytest.raises(LookupError):
        await store.add_message("bad", "user", "hi")


async def test_duplicate_platform_message(conv: ConversationRecord) -> None:
    await store.add_message(conv.id, "user", "a", channel="telegram", platform_message_id="7")
    with pytest.raises(store.DuplicateMessage):
        await store.add_message(conv.id, "user", "b", channel="telegram", platform_message_id="7")
    # same id on another channel, and NULL ids, are not duplicates
    await store.add_message(conv.id, "user", "c", channel="web", platform_message_id="7")
    for _ in range(3):
        await store.add_message(conv.id, "assistant", "d", channel="telegram")
        await store.add_message(conv.id, "assistant", "e")
    assert await store.count_messages(conv.id) == 8


async def test_messages_keep_insertion_order(conv: ConversationRecord) -> None:
    stored = await _many(conv, 30)
    listed = await store.list_messages(conv.id)
    assert [m.id for m in listed] == [m.id for m in stored]
    assert [m.content for m in listed] == [f"m{i}" for i in range(30)]


async def test_list_messages_after_and_limit(conv: ConversationRecord) -> None:
    stored = await _many(conv, 10)
    after = await store.list_messages(conv.id, after=stored[3].id)
    assert [m.id for m in after] == [m.id for m in stored[4:]]
    page = await store.list_messages(conv.id, after=stored[3].id, limit=2)
    assert [m.id for m in page] == [m.id for m in stored[4:6]]
    assert await store.list_messages(conv.id, after=stored[-1].id) == []
    assert [m.id for m in await store.list_messages(conv.id, limit=3)] == [m.id for m in stored[:3]]
    assert await store.list_messages(conv.id, after=MISSING) == []
    assert await store.list_messages(conv.id, after="bad") == []
    assert await store.list_messages("bad") == []


async def test_recent_messages_window(conv: ConversationRecord) -> None:
    assert await store.recent_messages(conv.id, 5) == []
    stored = await _many(conv, 8)
    assert [m.id for m in await store.recent_messages(conv.id, 3)] == [m.id for m in stored[-3:]]
    assert [m.id for m in await store.recent_messages(conv.id, 50)] == [m.id for m in stored]
    assert await store.recent_messages(conv.id, 0) == []
    assert await store.recent_messages("bad", 3) == []


async def test_add_message_and_window(conv: ConversationRecord, db: str) -> None:
    """The new message with the window a read just after would return; on PostgreSQL read in
    the INSERT's statement, elsewhere None (``recent_messages`` serves it from memory)."""
    on_postgres = db.startswith("postgres")
    first, read = await store.add_message_and_window(
        conv.id, "user", "first", window=3, lang="en", metadata={"a": 1}, channel="web"
    )
    assert (first.role, first.content, first.lang, first.metadata) == (
        "user",
        "first",
        "en",
        {"a": 1},
    )
    assert await store.get_message(first.id) == first
    if not on_postgres:
        assert read is None
        return
    assert read is not None and read.current() == [first]  # an empty conversation: the new one
    stored = [first, *await _many(conv, 4)]
    last, read = await store.add_message_and_window(conv.id, "user", "last", window=3)
    expected = await store.recent_messages(conv.id, 3)
    assert [m.id for m in expected] == [stored[-2].id, stored[-1].id, last.id]
    assert read is not None and read.current() == expected
    _, read = await store.add_message_and_window(conv.id, "user", "all", window=50)
    assert read is not None and read.current() == await store.recent_messages(conv.id, 50)
    assert len(read.messages) == 7


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the window comes with it there
async def test_read_window_goes_stale(conv: ConversationRecord) -> None:
    """A window read with a message is not used once this process wrote to the conversation's
    messages since: added, updated or moved (another conversation's writes do not count)."""
    other = await store.start_conversation(conv.user_id, "web", "solo", "en")
    pending = await store.add_message(conv.id, "user", "stored ahead", status="pending")
    writes = [
        lambda: store.add_message(conv.id, "assistant", "routed"),
        lambda: store.update_message(pending.id, content="edited"),
        lambda: store.update_message(pending.id, status="complete", move_to_end=True),
    ]
    for write in writes:
        _, read = await store.add_message_and_window(conv.id, "user", "hi", window=5)
        assert read is not None
        await store.add_message(other.id, "user", "elsewhere")
        assert read.current() == read.messages
        await write()
        assert read.current() is None


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_read_window_stale_after_a_write_during_its_statement(
    conv: ConversationRecord, db: str
) -> None:
    """A write to the conversation while the INSERT waits (here on a lock another connection
    holds on the conversation's row) may be missing from the window: it is read again."""
    earlier = await store.add_message(conv.id, "assistant", "said before")
    parts = urlsplit(db)
    other = await asyncpg.connect(
        parts._replace(query="").geturl(),
        server_settings={"search_path": parse_qs(parts.query)["schema"][0]},
    )
    try:
        locking = other.transaction()
        await locking.start()
        await other.execute("SELECT 1 FROM parley_conversation WHERE id = $1 FOR UPDATE", conv.id)
        adding = asyncio.create_task(store.add_message_and_window(conv.id, "user", "hi", window=5))
        blocked = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
        me = other.get_server_pid()
        for _ in range(1000):  # until the INSERT's key check waits for the row
            if await other.fetchval(blocked, me):
                break
            await asyncio.sleep(0.01)
        await store.update_message(earlier.id, content="edited meanwhile")
        await locking.commit()
        _, read = await adding
    finally:
        await other.close()
    assert read is not None and read.current() is None


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_read_window_stale_after_everything_was_forgotten(conv: ConversationRecord) -> None:
    """Windows forget everything (here: a crash's replies settled) and then see one write: a
    window read before stays stale (a count starting again at 0 would have matched it)."""
    _, read = await store.add_message_and_window(conv.id, "user", "hi", window=5)
    other = await store.start_conversation(conv.user_id, "web", "solo", "en")
    await store.add_message(other.id, "assistant", "cut by a crash", status="pending")
    assert await store.settle_abandoned(datetime.now(UTC) + timedelta(seconds=1)) == 1
    await store.add_message(conv.id, "assistant", "later")
    assert read is not None and read.current() is None


async def test_add_message_and_window_refused(conv: ConversationRecord) -> None:
    await store.add_message(conv.id, "user", "a", channel="web", platform_message_id="1")
    with pytest.raises(store.DuplicateMessage):
        await store.add_message_and_window(
            conv.id, "user", "b", window=5, channel="web", platform_message_id="1"
        )
    with pytest.raises(LookupError):
        await store.add_message_and_window(MISSING, "user", "c", window=5)
    with pytest.raises(LookupError):
        await store.add_message_and_window("bad", "user", "c", window=5)
    assert [m.content for m in await store.list_messages(conv.id)] == ["a"]


async def test_count_messages(conv: ConversationRecord) -> None:
    await store.add_message(conv.id, "user", "a")
    await store.add_message(conv.id, "assistant", "b")
    await store.add_message(conv.id, "user", "c")
    assert await store.count_messages(conv.id) == 3
    assert await store.count_messages(conv.id, role="user") == 2
    assert await store.count_messages(conv.id, role="tool") == 0
    assert await store.count_messages("bad") == 0


async def test_update_message(conv: ConversationRecord) -> None:
    msg = await store.add_message(conv.id, "assistant", "", status="pending")
    updated = await store.update_message(
        msg.id, content="Done", status="complete", tokens_in=5, tokens_out=7, metadata={"x": 1}
    )
    assert (updated.content, updated.status) == ("Done", "complete")
    assert (updated.tokens_in, updated.tokens_out, updated.metadata) == (5, 7, {"x": 1})
    assert updated.created_at == msg.created_at
    assert await store.get_message(msg.id) == updated
    with pytest.raises(TypeError):
        await store.update_message(msg.id, conversation_id=MISSING)
    with pytest.raises(LookupError):
        await store.update_message(MISSING, content="x")


async def test_update_message_move_to_end(conv: ConversationRecord) -> None:
    early = await store.add_message(conv.id, "user", "stored ahead", status="pending")
    later = await store.add_message(conv.id, "assistant", "said meanwhile")
    moved = await store.update_message(early.id, status="complete", move_to_end=True)
    assert moved.status == "complete" and moved.created_at == early.created_at
    assert [m.id for m in await store.list_messages(conv.id)] == [later.id, early.id]
    assert [m.id for m in await store.recent_messages(conv.id, 1)] == [early.id]


async def test_update_message_duplicate_platform_id(conv: ConversationRecord) -> None:
    await store.add_message(conv.id, "user", "a", channel="web", platform_message_id="1")
    other = await store.add_message(conv.id, "user", "b", channel="web")
    with pytest.raises(store.DuplicateMessage):
        await store.update_message(other.id, platform_message_id="1")


async def test_pending_messages(conv: ConversationRecord) -> None:
    tg_user = await store.get_or_create_user("telegram", "9")
    tg_conv = await store.start_conversation(tg_user.id, "telegram", "solo", "en")
    first = await store.add_message(conv.id, "user", "1", status="pending", channel="web")
    await store.add_message(conv.id, "assistant", "x", status="pending", channel="web")
    await store.add_message(conv.id, "user", "done", channel="web")
    await store.add_message(tg_conv.id, "user", "tg", status="pending", channel="telegram")
    second = await store.add_message(conv.id, "user", "2", status="pending")  # channel from conv
    assert [m.id for m in await store.pending_messages("web")] == [first.id, second.id]
    await store.update_message(first.id, status="complete")
    assert [m.id for m in await store.pending_messages("web")] == [second.id]
    assert [m.content for m in await store.pending_messages("telegram")] == ["tg"]
    assert await store.pending_messages("sms") == []


async def test_claim_inbound(db: str) -> None:
    assert await store.claim_inbound("telegram", "1001") is True
    assert await store.claim_inbound("telegram", "1001") is False
    assert await store.claim_inbound("telegram", "1002") is True
    assert await store.claim_inbound("whatsapp", "1001") is True


async def test_claim_inbound_is_race_safe(db: str) -> None:
    results = await asyncio.gather(*(store.claim_inbound("telegram", "race") for _ in range(10)))
    assert results.count(True) == 1


async def test_prune_inbound_forgets_old_keys_only(db: str) -> None:
    from datetime import UTC, datetime, timedelta

    assert await store.claim_inbound("telegram", "old")
    assert await store.claim_inbound("whatsapp", "other-channel")
    cutoff = datetime.now(UTC) + timedelta(seconds=1)  # everything so far counts as old
    assert await store.claim_inbound("telegram", "kept")
    assert await store.prune_inbound("telegram", datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.prune_inbound("telegram", cutoff) == 2
    assert await store.claim_inbound("telegram", "old")  # forgotten: claimable again
    assert not await store.claim_inbound("whatsapp", "other-channel")  # other channels untouched


async def test_insert_row_and_select_refuses(conv: ConversationRecord, db: str) -> None:
    """PostgreSQL only, and something to return from the INSERT (the SELECT may find nothing)."""
    refused = ValueError if db.startswith("postgres") else NotImplementedError
    with pytest.raises(refused):
        await insert_row_and_select(Message, "SELECT 1", [], computed={}, content="x")
    assert await store.list_messages(conv.id) == []
