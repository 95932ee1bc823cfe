"""Named leases: a job that runs in one process at a time (Telegram polling, sweeps).

A lease is held by at most one process, renewed by its holder, and taken over by another process
when the holder dies. :func:`make_lease` picks the backend from the settings:

- :class:`RedisLease` (``redis.url`` set): ``SET key token NX PX ttl`` through redis-py's
  :class:`~redis.asyncio.lock.Lock`; the holder extends it every ``ttl / 3`` s, so a holder that
  died is replaced at most ``ttl`` s later.
- :class:`PostgresLease` (PostgreSQL, no Redis): a session advisory lock on a connection of its
  own. The server drops it as soon as the holder's connection ends: at once when the process is
  killed, after the TCP keepalive (set from ``ttl``) when its host vanished.
- :class:`FileLease` (SQLite): ``flock`` on a file next to the database, for processes of one
  host; the kernel releases it when the process dies. An in-memory database gets a lease inside
  this process only.

:meth:`Lease.run` is the usual entry: wait for the lease, run the job while renewing it, stop the
job when the lease is lost (then wait for it again).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from parley.core.config import Settings

__all__ = [
    "FileLease",
    "Lease",
    "LocalLease",
    "PostgresLease",
    "RedisLease",
    "asyncpg_dsn",
    "make_lease",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TTL = 15.0
"""Seconds a lease outlives a holder that stopped renewing it."""


class Lease(ABC):
    """One named lease; subclasses implement the four primitives on a backend."""

    def __init__(self, name: str, *, ttl: float = DEFAULT_TTL) -> None:
        self.name = name
        self.ttl = ttl
        self.holder = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """Who this process is, in log lines."""

    @abstractmethod
    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this object holds it now."""

    @abstractmethod
    async def renew(self) -> bool:
        """Extend a held lease; False when it was lost. May raise when the backend is down."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up (nothing happens when it is not held)."""

    async def close(self) -> None:
        """Release the lease and free the backend's connection."""
        await self.release()

    async def acquire(self, *, poll: float | None = None) -> None:
        """Wait until this object holds the lease, trying every ``poll`` s (default ``ttl / 3``).

        A backend that is down is logged and tried again, never raised.
        """
        poll = self.ttl / 3 if poll is None else poll
        said = False
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(max(poll, 1.0)):
                    taken = await self.try_acquire()
                if taken:
                    log.info("lease %s taken by %s", self.name, self.holder)
                    return
                if not said:
                    log.info("lease %s is held elsewhere: %s stands by", self.name, self.holder)
                    said = True
            except (Exception, TimeoutError) as exc:
                log.warning("lease %s: cannot reach its store (%s); retrying", self.name, exc)
            await asyncio.sleep(poll)

    async def keep(self) -> None:
        """Renew the held lease every ``ttl / 3`` s; returns when it is lost.

        Renewals that fail (store unreachable) are retried until the lease could have expired
        for the others: this returns one renewal period before that, so two holders never overlap.
        """
        period = self.ttl / 3
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(period)
            try:
                async with asyncio.timeout(period):
                    held = await self.renew()
                if not held:
                    log.warning("lease %s lost by %s", self.name, self.holder)
                    return
                last_ok = time.monotonic()
            except (Exception, TimeoutError) as exc:
                if time.monotonic() - last_ok + period >= self.ttl:
                    log.warning("lease %s given up: cannot renew it (%s)", self.name, exc)
                    return
                log.warning("lease %s: renewal failed (%s); trying again", self.name, exc)

    async def run(self, job: Callable[[], Awaitable[T]], *, poll: float | None = None) -> T:
        """Run ``job`` while holding the lease; return its result once it finishes.

        Waits for the lease first. When the lease is lost the job is cancelled and the lease
        waited for again, then ``job`` is called anew. Cancelling ``run`` cancels the job and
        releases the lease.
        """
        me = asyncio.current_task()
        while True:
            await self.acquire(poll=poll)
            if me is not None and me.cancelling():  # a client library swallowed our cancel
                await self.release()
                raise asyncio.CancelledError
            work: asyncio.Task[T] = asyncio.ensure_future(job())
            keeper = asyncio.create_task(self.keep())
            try:
                await asyncio.wait({work, keeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                keeper.cancel()
                work.cancel()
                try:  # asyncio.wait never swallows a cancellation of run itself
                    await asyncio.wait({keeper, work})
                finally:
                    with suppress(Exception):
                        await self.release()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            if work.done() and not work.cancelled():
                return work.result()


class RedisLease(Lease):
    """A lease in Redis: ``SET NX PX`` with a token, extended by its holder (redis-py's Lock)."""

    def __init__(
        self, name: str, url: str, *, ttl: float = DEFAULT_TTL, prefix: str = "parley:lease:"
    ) -> None:
        super().__init__(name, ttl=ttl)
        import redis.asyncio as redis

        self.client = redis.from_url(url, socket_timeout=ttl / 3, socket_connect_timeout=ttl / 3)
        self.key = prefix + name
        self._lock = self.client.lock(self.key, timeout=ttl, blocking=False, thread_local=False)

    async def try_acquire(self) -> bool:
        """``SET key token NX PX ttl``."""
        return bool(await self._lock.acquire(blocking=False))

    async def renew(self) -> bool:
        """Reset the expiry to ``ttl`` if the token is still ours."""
        from redis.exceptions import LockError

        try:
            await self._lock.reacquire()
        except LockError:
            return False
        return True

    async def release(self) -> None:
        """Delete the key if the token is still ours."""
        from redis.exceptions import LockError

        if self._lock.local.token is None:
            return
        with suppress(LockError):
            await self._lock.release()

    async def close(self) -> None:
        """Release, then close the connection pool."""
        try:
            with suppress(Exception):
                await self.release()
        finally:
            await self.client.aclose()


_NAMESPACE = 0x7061726C  # "parl": the first key of every advisory lock Parley takes
_TORTOISE_ONLY = {
    "schema",
    "minsize",
    "maxsize",
    "max_queries",
    "max_inactive_connection_lifetime",
    "connection_class",
}


def asyncpg_dsn(url: str) -> str:
    """A ``database.url`` (Tortoise's form) as a DSN asyncpg connects to."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _TORTOISE_ONLY]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


class PostgresLease(Lease):
    """A session-level advisory lock, on a connection held for as long as the lease."""

    def __init__(self, name: str, url: str, *, ttl: float = DEFAULT_TTL) -> None:
        super().__init__(name, ttl=ttl)
        self.dsn = asyncpg_dsn(url)
        self._conn: Any = None
        self._held = False

    async def _connection(self) -> Any:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            idle = str(max(1, int(self.ttl / 3)))
            self._conn = await asyncpg.connect(
                self.dsn,
                timeout=self.ttl / 3,
                # The server notices a vanished holder's host after about ttl seconds.
                server_settings={
                    "tcp_keepalives_idle": idle,
                    "tcp_keepalives_interval": idle,
                    "tcp_keepalives_count": "2",
                    "application_name": f"parley lease {self.name}"[:63],
                },
            )
        return self._conn

    async def try_acquire(self) -> bool:
        """``pg_try_advisory_lock``: taken only if no other session holds it."""
        conn = await self._connection()
        self._held = bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))", _NAMESPACE, self.name
            )
        )
        return self._held

    async def renew(self) -> bool:
        """The lock lives as long as its connection: check that the connection still answers."""
        if not self._held or self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1")
        except Exception:
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        """``pg_advisory_unlock`` (the connection stays open for the next acquire)."""
        if not self._held:
            return
        self._held = False
        try:
            await self._conn.fetchval(
                "SELECT pg_advisory_unlock($1, hashtext($2))", _NAMESPACE, self.name
            )
        except Exception:
            await self._drop()  # closing the session releases the lock too

    async def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        """Release and close the connection."""
        await self.release()
        if self._conn is not None:
            with suppress(Exception):
                await self._conn.close(timeout=self.ttl / 3)
            self._conn = None


class FileLease(Lease):
    """An exclusive ``flock`` on ``path``: one process of this host at a time."""

    def __init__(self, name: str, path: str, *, ttl: float = DEFAULT_TTL) -> None:
        super().__init__(name, ttl=ttl)
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        """Lock the file without waiting."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def renew(self) -> bool:
        """Held until released or until the process ends."""
        return self._fd is not None

    async def release(self) -> None:
        """Unlock and close the file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class LocalLease(Lease):
    """A lease among the objects of this process (an in-memory database has no other user)."""

    _held: set[str] = set()

    def __init__(self, name: str, *, ttl: float = DEFAULT_TTL) -> None:
        super().__init__(name, ttl=ttl)
        self._mine = False

    async def try_acquire(self) -> bool:
        """Taken if no other object of this process holds it."""
        if not self._mine and self.name not in LocalLease._held:
            LocalLease._held.add(self.name)
            self._mine = True
        return self._mine

    async def renew(self) -> bool:
        """Held until released."""
        return self._mine

    async def release(self) -> None:
        """Give it up."""
        if self._mine:
            LocalLease._held.discard(self.name)
            self._mine = False


def make_lease(name: str, settings: Settings, *, ttl: float = DEFAULT_TTL) -> Lease:
    """The lease ``name`` on the backend the settings give: Redis, PostgreSQL or a file."""
    if settings.redis.url:
        return RedisLease(name, settings.redis.url, ttl=ttl)
    url = settings.database.url
    if not url.startswith("sqlite://"):
        return PostgresLease(name, url, ttl=ttl)
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    if not path or path == ":memory:":
        return LocalLease(name, ttl=ttl)
    return FileLease(name, f"{path}.{name}.lease", ttl=ttl)
