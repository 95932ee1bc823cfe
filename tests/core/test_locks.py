"""Per-conversation locks: FIFO in a process; exclusive across processes through a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from parley.core import store
from parley.core.engine import Engine
from parley.core.inbound import Inbound
from parley.core.locks import LocalLocks, RedisLocks
from parley.core.plugins import Hooks, make_plugin_manager
from parley.testing import ScriptedLLM, Step, collect

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_local_locks_are_fifo():
    """One holder at a time, and waiters enter in the order they arrived (not the order their
    tasks were made, nor any other): a lock that does nothing, or serves waiters in another
    order, fails here."""
    locks = LocalLocks()
    events: list[tuple[str, int]] = []
    release = asyncio.Event()

    async def worker(i: int, gate: asyncio.Event | None = None) -> None:
        async with locks.hold("c"):
            events.append(("in", i))
            if gate is not None:
                await gate.wait()
            for _ in range(3):
                await asyncio.sleep(0)  # give any other task the chance to barge in
            events.append(("out", i))

    first = asyncio.create_task(worker(0, release))
    await asyncio.sleep(0)  # 0 holds the lock now
    arrival = [5, 2, 8, 1, 9, 3]
    waiting = []
    for i in arrival:
        waiting.append(asyncio.create_task(worker(i)))
        await asyncio.sleep(0)  # i waits before the next one arrives
    assert events == [("in", 0)]  # nobody entered while 0 holds it
    assert len(locks) == 1
    release.set()
    await asyncio.gather(first, *waiting)
    assert events == [e for i in (0, *arrival) for e in (("in", i), ("out", i))]
    assert len(locks) == 0


async def test_redis_locks_exclude_across_instances(redis_prefix):
    a = RedisLocks(REDIS_URL, prefix=redis_prefix)
    b = RedisLocks(REDIS_URL, prefix=redis_prefix)
    inside = 0
    most = 0

    async def worker(locks: RedisLocks) -> None:
        nonlocal inside, most
        async with locks.hold("conversation"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(worker(a if i % 2 else b) for i in range(8)))
    assert most == 1
    await a.close()
    await b.close()


async def test_redis_lock_is_renewed_while_held(redis_prefix):
    locks = RedisLocks(REDIS_URL, prefix=redis_prefix, ttl=1.0)
    other = RedisLocks(REDIS_URL, prefix=redis_prefix, ttl=1.0)
    acquired_by_other = asyncio.Event()

    async def contender() -> None:
        async with other.hold("long"):
            acquired_by_other.set()

    async with locks.hold("long"):
        task = asyncio.create_task(contender())
        await asyncio.sleep(1.6)  # longer than the ttl: only renewal keeps the lock
        assert not acquired_by_other.is_set()
    await asyncio.wait_for(task, timeout=5)
    assert acquired_by_other.is_set()
    await locks.close()
    await other.close()


async def test_two_engines_share_a_conversation_through_redis(db, make_settings, redis_prefix):
    settings = make_settings()
    llm = ScriptedLLM([Step([f"reply {i}"], delay=0.02) for i in range(6)])
    streaming = 0
    most = 0
    original = llm.stream

    async def counting(request):
        nonlocal streaming, most
        streaming += 1
        most = max(most, streaming)
        try:
            async for chunk in original(request):
                yield chunk
        finally:
            streaming -= 1

    llm.stream = counting
    engines = [
        Engine(
            settings,
            Hooks(make_plugin_manager((), entry_points=False)),
            llm,
            locks=RedisLocks(REDIS_URL, prefix=redis_prefix),
        )
        for _ in range(2)
    ]
    user = await store.get_or_create_user("test", "shared")
    conv = (await engines[0].open(user.id, "test")).conversation
    await asyncio.gather(
        *(collect(engines[i % 2].turn(conv.id, Inbound(text=f"m{i}"))) for i in range(6))
    )
    assert most == 1
    messages = await store.list_messages(conv.id)
    roles = [m.role for m in messages[1:]]
    assert roles == ["user", "assistant"] * 6  # each reply directly follows its question
    for engine in engines:
        await engine.locks.close()


async def test_redis_down_fails_the_lock_clearly_before_the_block_runs():
    from parley.core.outages import Unavailable

    locks = RedisLocks("redis://127.0.0.1:1/0", timeout=2)  # nothing listens on port 1
    ran = False
    with pytest.raises(Unavailable) as caught:
        async with locks.hold("conversation-1"):
            ran = True
    assert caught.value.part == "redis" and not ran
    assert len(locks) == 0  # the local FIFO entry is gone too
    await locks.close()
