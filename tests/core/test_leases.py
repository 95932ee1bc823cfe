"""Named leases on a real Redis, a real PostgreSQL and a real file: one holder, renewal, takeover."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis

from parley.core.leases import FileLease, Lease, PostgresLease, RedisLease, asyncpg_dsn, make_lease
from parley.core.loading import settings_from_dict

REDIS_URL = "redis://127.0.0.1:6379/0"

BACKENDS = ["redis", "postgres", "file"]


@pytest.fixture(params=BACKENDS)
async def new_lease(
    request, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Callable[..., Lease]]:
    """Makes leases of one unique name on one backend (each call: another would-be holder)."""
    backend = request.param
    name = f"job-{uuid.uuid4().hex[:10]}"
    made: list[Lease] = []

    def make(ttl: float = 3.0) -> Lease:
        if backend == "redis":
            lease: Lease = RedisLease(name, REDIS_URL, ttl=ttl, prefix=redis_prefix)
        elif backend == "postgres":
            lease = PostgresLease(name, request.getfixturevalue("postgres_url"), ttl=ttl)
        else:
            lease = FileLease(name, str(tmp_path / f"{name}.lease"), ttl=ttl)
        made.append(lease)
        return lease

    make.backend = backend  # type: ignore[attr-defined]
    make.name = name  # type: ignore[attr-defined]
    yield make
    for lease in made:
        await lease.close()


async def test_one_holder_at_a_time(new_lease):
    a, b = new_lease(), new_lease()
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert await a.renew()
    await a.release()
    assert await b.try_acquire()
    assert not await a.try_acquire()
    assert not await a.renew()


async def test_run_hands_the_job_over_when_the_holder_stops(new_lease):
    a, b = new_lease(), new_lease()
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def job(who: str):
        async def work() -> str:
            running.append(who)
            if len(running) > 1:
                overlaps.append(tuple(running))
            started[who].set()
            try:
                await asyncio.sleep(3600)
            finally:
                running.remove(who)
            return who

        return work

    first = asyncio.create_task(a.run(job("a"), poll=0.05))
    await asyncio.wait_for(started["a"].wait(), 10)
    second = asyncio.create_task(b.run(job("b"), poll=0.05))
    await asyncio.sleep(0.3)
    assert not started["b"].is_set()
    first.cancel()  # the holder shuts down: its job stops and the lease is released
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(started["b"].wait(), 10)
    assert running == ["b"] and overlaps == []
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_run_returns_the_job_result_and_releases(new_lease):
    a, b = new_lease(), new_lease()

    async def job() -> int:
        return 42

    assert await a.run(job, poll=0.05) == 42
    assert await b.try_acquire()


async def test_a_lost_lease_stops_the_job(new_lease, redis_prefix, request):
    """The lease is taken away behind the holder's back: its job is cancelled at the next renewal."""
    if new_lease.backend == "file":
        return  # nobody can take a file lock away from its holder
    lease = new_lease(ttl=1.5)
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = asyncio.create_task(lease.run(job, poll=0.05))
    await asyncio.wait_for(started.wait(), 10)
    if new_lease.backend == "redis":
        client = redis.from_url(REDIS_URL)
        await client.delete(f"{redis_prefix}{new_lease.name}")
        await client.aclose()
    else:
        admin = await asyncpg.connect(asyncpg_dsn(request.getfixturevalue("postgres_url")))
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"parley lease {new_lease.name}",
        )
        await admin.close()
    await asyncio.wait_for(cancelled.wait(), 10)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_renewal_keeps_a_short_lease(redis_prefix):
    """A Redis lease of 1 s held for 3 s by a live holder is never free for another."""
    name = f"job-{uuid.uuid4().hex[:10]}"
    holder = RedisLease(name, REDIS_URL, ttl=1.0, prefix=redis_prefix)
    other = RedisLease(name, REDIS_URL, ttl=1.0, prefix=redis_prefix)
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.sleep(3.0)

    runner = asyncio.create_task(holder.run(job, poll=0.05))
    await asyncio.wait_for(started.wait(), 10)
    while not runner.done():
        assert not await other.try_acquire()
        await asyncio.sleep(0.1)
    await runner
    assert await other.try_acquire()
    await holder.close()
    await other.close()


_HOLDER = """
import asyncio, sys
from parley.core.leases import FileLease, PostgresLease, RedisLease

backend, name, where, prefix = sys.argv[1:5]
if backend == "redis":
    lease = RedisLease(name, where, ttl=2.0, prefix=prefix)
elif backend == "postgres":
    lease = PostgresLease(name, where, ttl=2.0)
else:
    lease = FileLease(name, where, ttl=2.0)

async def main():
    async def job():
        print("held", flush=True)
        await asyncio.sleep(3600)
    await lease.run(job, poll=0.05)

asyncio.run(main())
"""


async def test_takeover_after_the_holder_is_killed(new_lease, tmp_path, redis_prefix, request):
    """A holder killed with SIGKILL never releases: another process takes the lease over."""
    backend = new_lease.backend
    where = {
        "redis": REDIS_URL,
        "postgres": request.getfixturevalue("postgres_url") if backend == "postgres" else "",
        "file": str(tmp_path / f"{new_lease.name}.lease"),
    }[backend]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        backend,
        new_lease.name,
        where,
        redis_prefix,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"held"
        contender = new_lease(ttl=2.0)
        assert not await contender.try_acquire()
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
        await asyncio.wait_for(contender.acquire(poll=0.05), 15)
        assert await contender.renew()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_make_lease_picks_the_backend(tmp_path):
    def settings(database: str, redis_url: str = ""):
        return settings_from_dict(
            {
                "llm": {"provider": "echo", "model": "m"},
                "database": {"url": database},
                "redis": {"url": redis_url},
            }
        )

    pg = "postgres://u@127.0.0.1:5432/db?schema=s1&minsize=2&sslmode=disable"
    assert isinstance(make_lease("x", settings(pg, REDIS_URL)), RedisLease)
    lease = make_lease("x", settings(pg))
    assert isinstance(lease, PostgresLease)
    assert lease.dsn == "postgresql://u@127.0.0.1:5432/db?sslmode=disable"
    lease = make_lease("x", settings(f"sqlite://{tmp_path}/p.db"))
    assert isinstance(lease, FileLease) and lease.path == f"{tmp_path}/p.db.x.lease"
    assert type(make_lease("x", settings("sqlite://:memory:"))).__name__ == "LocalLease"
