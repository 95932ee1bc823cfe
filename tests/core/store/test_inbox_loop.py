"""The inbox's claim loop: two "processes" (two Inbox objects with their own holder names) on one
database, on SQLite and PostgreSQL: every item answered once, lanes in order, dead holders'
items claimed again, lost leases stop their turn, jobs run once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from parley.core import store
from parley.core.inbox import Inbox, InboxSettings
from parley.core.outages import Unavailable
from parley.core.store.records import InboxRecord

FAST = InboxSettings(lease=1.0, poll_interval=0.05)


def _handler(name: str, answered: list[tuple[str, str, int]]):
    async def handle(item: InboxRecord) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0, 0.01))
        answered.append((name, item.lane, int(item.payload["n"])))
        return {"by": name}

    return handle


async def test_two_processes_answer_each_item_once_in_lane_order(db: str) -> None:
    answered: list[tuple[str, str, int]] = []
    inboxes = [Inbox(FAST, holder=f"p{i}") for i in range(2)]
    for inbox in inboxes:
        inbox.register("chat", _handler(inbox.holder, answered))
        await inbox.start()
    try:
        for n in range(30):
            lane = f"lane-{n % 3}"
            await inboxes[n % 2].put("chat", f"k{n}", lane, payload={"n": n})
            await inboxes[(n + 1) % 2].put("chat", f"k{n}", lane, payload={"n": n})  # repeat
        async with asyncio.timeout(30):
            await inboxes[0].idle()
    finally:
        for inbox in inboxes:
            await inbox.stop()
    assert sorted(n for _, _, n in answered) == list(range(30))  # each once
    for lane in ("lane-0", "lane-1", "lane-2"):
        order = [n for _, item_lane, n in answered if item_lane == lane]
        assert order == sorted(order), lane
    done = await store.inbox_items(channel="chat", status="done")
    assert len(done) == 30 and all(item.result["by"] in ("p0", "p1") for item in done)


async def test_a_dead_holders_item_is_answered_elsewhere(db: str) -> None:
    await store.put_inbox("chat", "k", "lane", payload={"n": 1}, claim_for="dead", lease=1)
    await store.put_inbox("chat", "k2", "lane", payload={"n": 2})
    answered: list[tuple[str, str, int]] = []
    inbox = Inbox(FAST, holder="live")
    inbox.register("chat", _handler("live", answered))
    await inbox.start()
    try:
        async with asyncio.timeout(10):
            await inbox.idle()
    finally:
        await inbox.stop()
    assert answered == [("live", "lane", 1), ("live", "lane", 2)]  # the lane waited for it
    again = await store.get_inbox("chat", "k")
    assert again is not None and again.attempts == 2 and again.status == "done"


async def test_a_lost_lease_stops_the_turn(db: str) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def slow(item: InboxRecord) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return {}

    inbox = Inbox(FAST, holder="p1")
    inbox.register("chat", slow)
    await inbox.put("chat", "k", "lane")
    await inbox.start()
    try:
        async with asyncio.timeout(10):
            await started.wait()
            item = await store.get_inbox("chat", "k")
            assert item is not None
            # Another process took it (as it would after this one stalled past its lease).
            await store.release_inbox(item.id, "p1")
            await store.claim_inbox("p2", ["chat"])
            await stopped.wait()
    finally:
        await inbox.stop()
    taken = await store.get_inbox("chat", "k")
    assert taken is not None and taken.claimed_by == "p2"


async def test_poison_item_is_given_up(db: str) -> None:
    calls = 0

    async def broken(item: InboxRecord) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise RuntimeError("this message breaks every turn")

    settings = InboxSettings(lease=1.0, poll_interval=0.05, max_attempts=2)
    inbox = Inbox(settings, holder="p1")
    inbox.register("chat", broken)
    await inbox.put("chat", "k", "lane")
    await inbox.start()
    try:
        async with asyncio.timeout(15):
            await inbox.idle()
    finally:
        await inbox.stop()
    item = await store.get_inbox("chat", "k")
    assert item is not None and item.status == "failed" and calls == 2


async def test_a_job_runs_once_across_processes(db: str) -> None:
    runs: list[str] = []
    inboxes = [Inbox(FAST, holder=f"p{i}") for i in range(3)]
    for inbox in inboxes:

        async def job(name: str = inbox.holder) -> None:
            runs.append(name)

        inbox.job("sweep", 3600.0, job)
        await inbox.start()
    try:
        async with asyncio.timeout(10):
            for _ in range(200):
                if await store.inbox_items(channel="job", status="done"):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
    finally:
        for inbox in inboxes:
            await inbox.stop()
    assert len(runs) == 1


async def _stop_while_answering(takes: float, drain: float) -> InboxRecord:
    """Stop an inbox while its one item's handler (``takes`` seconds) runs; the item after."""
    started = asyncio.Event()

    async def handle(item: InboxRecord) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(takes)
        return {"finished": True}

    inbox = Inbox(FAST, holder="p1")
    inbox.register("chat", handle, drain=drain)
    await inbox.put("chat", "k", "lane")
    await inbox.start()
    async with asyncio.timeout(10):
        await started.wait()
    await inbox.stop()
    item = await store.get_inbox("chat", "k")
    assert item is not None
    return item


async def test_stop_gives_unfinished_items_back(db: str) -> None:
    item = await _stop_while_answering(30, drain=0.1)
    assert item.status == "queued" and item.claimed_by is None


async def test_stop_lets_running_items_finish_within_their_channels_drain(db: str) -> None:
    item = await _stop_while_answering(0.3, drain=5.0)
    assert item.status == "done" and item.result == {"finished": True}


async def test_an_outage_does_not_use_up_the_items_attempts(db: str) -> None:
    calls = 0

    async def cut_by_outages(item: InboxRecord) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls <= 3:  # Redis (say) down for three claims in a row
            raise Unavailable("redis", "connection refused")
        return {"answered": True}

    settings = InboxSettings(lease=1.0, poll_interval=0.05, max_attempts=2)
    inbox = Inbox(settings, holder="p1")
    inbox.register("chat", cut_by_outages)
    await inbox.put("chat", "k", "lane")
    await inbox.start()
    try:
        async with asyncio.timeout(20):
            await inbox.idle()
    finally:
        await inbox.stop()
    item = await store.get_inbox("chat", "k")
    assert calls == 4
    assert item is not None and item.status == "done" and item.result == {"answered": True}
