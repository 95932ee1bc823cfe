"""The durable inbox in the store: idempotent puts, claims under leases, lane order, sends, state.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from parley.core import store


async def test_put_is_idempotent_per_channel_and_key(db: str) -> None:
    first, created = await store.put_inbox("whatsapp", "wamid.1", "wa:1", payload={"n": 1})
    assert created and first.status == "queued" and first.payload == {"n": 1}
    again, created = await store.put_inbox("whatsapp", "wamid.1", "wa:1", payload={"n": 2})
    assert not created and again.id == first.id and again.payload == {"n": 1}
    other, created = await store.put_inbox("telegram", "wamid.1", "tg:1")
    assert created and other.id > first.id  # the database's sequence orders arrivals


async def test_concurrent_puts_store_once(db: str) -> None:
    results = await asyncio.gather(*(store.put_inbox("web", "k", "lane") for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({item.id for item, _ in results}) == 1


async def test_claims_follow_lane_order(db: str) -> None:
    a1, _ = await store.put_inbox("whatsapp", "a1", "lane-a")
    a2, _ = await store.put_inbox("whatsapp", "a2", "lane-a")
    b1, _ = await store.put_inbox("whatsapp", "b1", "lane-b")
    claimed = await store.claim_inbox("p1", ["whatsapp"], limit=10)
    # Only the oldest unfinished item of each lane is claimable.
    assert [item.id for item in claimed] == [a1.id, b1.id]
    assert all(item.status == "claimed" and item.claimed_by == "p1" for item in claimed)
    assert await store.claim_inbox("p2", ["whatsapp"]) == []
    assert await store.finish_inbox(a1.id, "p1", result={"ok": True})
    nxt = await store.claim_inbox("p2", ["whatsapp"])
    assert [item.id for item in nxt] == [a2.id]
    done = await store.get_inbox("whatsapp", "a1")
    assert done is not None and done.status == "done" and done.result == {"ok": True}
    assert done.finished


async def test_claims_only_registered_channels(db: str) -> None:
    await store.put_inbox("telegram", "u1", "tg:1")
    assert await store.claim_inbox("p1", ["whatsapp"]) == []
    assert len(await store.claim_inbox("p1", ["telegram"])) == 1


async def test_expired_lease_is_claimed_again(db: str) -> None:
    item, _ = await store.put_inbox("web", "k1", "conv:1", claim_for="dead", lease=0.2)
    assert item.status == "claimed" and item.attempts == 1
    assert await store.claim_inbox("live", ["web"]) == []  # the lease still runs
    assert await store.claim_inbox_item(item.id, "live") is None
    await asyncio.sleep(0.4)
    again = await store.claim_inbox("live", ["web"], lease=30)
    assert [(i.id, i.claimed_by, i.attempts) for i in again] == [(item.id, "live", 2)]
    # The dead holder can neither renew nor finish what it lost.
    assert await store.renew_inbox([item.id], "dead") == set()
    assert not await store.finish_inbox(item.id, "dead")
    assert await store.renew_inbox([item.id], "live") == {item.id}
    assert await store.finish_inbox(item.id, "live")


async def test_renewed_lease_is_not_taken(db: str) -> None:
    item, _ = await store.put_inbox("web", "k1", "conv:1", claim_for="p1", lease=0.5)
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert await store.renew_inbox([item.id], "p1", lease=0.5) == {item.id}
        assert await store.claim_inbox("p2", ["web"]) == []


async def test_take_over_one_expired_item(db: str) -> None:
    item, _ = await store.put_inbox("web", "k1", "conv:1", claim_for="dead", lease=0.1)
    await asyncio.sleep(0.3)
    taken = await store.claim_inbox_item(item.id, "p2")
    assert taken is not None and taken.claimed_by == "p2" and taken.attempts == 2
    assert await store.claim_inbox_item(item.id, "p3") is None


async def test_release_puts_back(db: str) -> None:
    item, _ = await store.put_inbox("web", "k1", "conv:1", claim_for="p1")
    assert await store.release_inbox(item.id, "p1")
    again = await store.claim_inbox("p2", ["web"])
    assert [i.id for i in again] == [item.id]


async def test_prune_forgets_old_finished_items(db: str) -> None:
    done, _ = await store.put_inbox("web", "old", "l1", claim_for="p")
    await store.finish_inbox(done.id, "p")
    waiting, _ = await store.put_inbox("web", "new", "l2")
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert await store.prune_inbox(future) == 1
    assert await store.get_inbox("web", "old") is None
    assert await store.get_inbox("web", "new") == waiting


async def test_send_records(db: str) -> None:
    assert await store.sent("whatsapp", "item:1:0") is None
    await store.record_send("whatsapp", "item:1:0", "wamid.out")
    await store.record_send("whatsapp", "item:1:0", "wamid.twice")  # ignored
    assert await store.sent("whatsapp", "item:1:0") == "wamid.out"


async def test_update_state_loses_no_update(db: str) -> None:
    user = await store.get_or_create_user("web", "u1")
    conv = await store.start_conversation(user.id, "web", "solo", "en", state={"keep": 1})

    async def put(key: str) -> None:
        def change(state: dict) -> None:
            state[key] = True

        await store.update_state(conv.id, change)

    await asyncio.gather(*(put(f"k{i}") for i in range(10)))
    final = await store.get_conversation(conv.id)
    assert final is not None
    assert final.state == {"keep": 1, **{f"k{i}": True for i in range(10)}}
    changed = await store.update_state(conv.id, lambda s: s.pop("keep"), language="de")
    assert changed.language == "de" and "keep" not in changed.state
    with pytest.raises(LookupError):
        await store.update_state("00000000-0000-0000-0000-000000000000", lambda s: None)


async def test_postgres_messages_use_a_sequence(postgres_url: str) -> None:
    schema = "parley_test_seq_" + datetime.now(UTC).strftime("%H%M%S%f")
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await store.connect(f"{postgres_url}?schema={schema}")
        user = await store.get_or_create_user("web", "u1")
        conv = await store.start_conversation(user.id, "web", "solo", "en")
        first = await store.add_message(conv.id, "user", "a")
        second = await store.add_message(conv.id, "user", "b")
        seqs = await admin.fetch(f'SELECT seq FROM "{schema}".parley_message ORDER BY seq')
        last = await admin.fetchval(f'SELECT last_value FROM "{schema}".parley_message_seq')
        assert [r["seq"] for r in seqs][-1] == last  # taken from the sequence
        assert [m.id for m in await store.list_messages(conv.id)] == [first.id, second.id]
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
