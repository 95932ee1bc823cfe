"""Per-conversation ordering: turns of one conversation run one at a time, in arrival order.

:class:`LocalLocks` serves one process. :class:`RedisLocks` (setting ``redis.url``) serves several
processes or hosts: the local FIFO lock keeps arrival order inside a process, and a Redis lock,
renewed while held, keeps other processes out. Redis unreachable when a lock is taken raises
:class:`~parley.core.outages.Unavailable` (a 503 for HTTP clients) before the turn starts, so a
turn never runs half-locked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

from parley.core.outages import Unavailable

__all__ = ["LocalLocks", "Locks", "RedisLocks"]

log = logging.getLogger(__name__)


class Locks(Protocol):
    """What the engine needs: ``async with locks.hold(conversation_id)``."""

    def hold(self, key: str) -> Any:
        """An async context manager holding the lock of ``key``."""
        ...

    def __len__(self) -> int: ...


class LocalLocks:
    """In-process FIFO locks keyed by conversation id; entries vanish when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key``; waiters are served in the order they arrived."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)

    async def close(self) -> None:
        """Nothing to release."""


class RedisLocks:
    """Locks shared by every process using the same Redis.

    ``ttl`` bounds how long a crashed process can keep a conversation locked; a live holder renews
    its lock every ``ttl / 3`` seconds.
    """

    def __init__(
        self, url: str, *, ttl: float = 30.0, prefix: str = "parley:lock:", timeout: float = 5.0
    ) -> None:
        import redis.asyncio as redis
        from redis import exceptions

        self._outages = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
        # Bounded waits: a Redis that stopped answering is an outage, not a hang.
        self.client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.ttl = ttl
        self.prefix = prefix
        self.local = LocalLocks()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` in this process (FIFO), then across processes."""
        async with self.local.hold(key):
            lock = self.client.lock(
                self.prefix + key,
                timeout=self.ttl,
                sleep=0.02,
                blocking=True,
                thread_local=False,
            )
            try:
                await lock.acquire()
            except self._outages as exc:
                raise Unavailable("redis", f"{type(exc).__name__}: {exc}") from exc
            renew = asyncio.create_task(self._renew(lock, key))
            try:
                yield
            finally:
                renew.cancel()
                with suppress(asyncio.CancelledError):
                    await renew
                try:
                    await lock.release()
                except Exception as exc:  # expired while held: someone may already have it
                    log.warning("lock for %s was lost before release: %s", key, exc)

    async def _renew(self, lock: Any, key: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await lock.reacquire()
            except Exception as exc:
                log.warning("could not renew the lock for %s: %s", key, exc)
                return

    def __len__(self) -> int:
        return len(self.local)

    async def close(self) -> None:
        """Close the Redis connection pool."""
        await self.client.aclose()
