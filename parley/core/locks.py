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
import time
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
        self._stale: dict[str, tuple[Any, Any, float]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` in this process (FIFO), then across processes."""
        async with self.local.hold(key):
            await self._release_stale(key)
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
            token = lock.local.token
            renew = asyncio.create_task(self._renew(lock, key))
            try:
                yield
            finally:
                renew.cancel()
                with suppress(asyncio.CancelledError):
                    await renew
                try:
                    await lock.release()
                except self._outages as exc:
                    # Redis went away during the turn: the key outlives it. Delete it (if it is
                    # still ours) before the next turn here, instead of waiting out its ttl.
                    self._stale[key] = (lock, token, time.monotonic())
                    log.warning("lock for %s not released: Redis unreachable (%s)", key, exc)
                except Exception as exc:  # expired while held: someone may already have it
                    log.warning("lock for %s was lost before release: %s", key, exc)

    async def _release_stale(self, key: str) -> None:
        """Delete this process's own lock on ``key`` left behind by a Redis outage."""
        if not self._stale:
            return
        now = time.monotonic()
        for old in [k for k, (*_, at) in self._stale.items() if now - at > self.ttl]:
            del self._stale[old]  # expired in Redis by now
        stale = self._stale.pop(key, None)
        if stale is None:
            return
        lock, token, _at = stale
        try:
            await lock.do_release(token)  # compare-and-delete: only if the token is still ours
        except self._outages:
            self._stale[key] = stale  # still down: acquiring will say so
        except Exception as exc:  # expired meanwhile
            log.debug("stale lock for %s already gone: %s", key, exc)

    async def _renew(self, lock: Any, key: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await lock.reacquire()
            except self._outages as exc:  # a Redis blip: the key may still be ours after it
                log.warning("could not renew the lock for %s (trying again): %s", key, exc)
            except Exception as exc:  # expired and taken: nothing left to renew
                log.warning("could not renew the lock for %s: %s", key, exc)
                return

    def __len__(self) -> int:
        return len(self.local)

    async def close(self) -> None:
        """Close the Redis connection pool."""
        await self.client.aclose()
