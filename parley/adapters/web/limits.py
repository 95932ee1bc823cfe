"""Rate limits of the web adapter: per caller and per client address, over HTTP and the socket.

HTTP requests pass two Litestar rate-limit middlewares, one keyed by the caller (token user,
else device id, else address), one by the client address alone, so rotating device ids does not
escape the limit. The client address is the peer's, or what ``X-Forwarded-For`` says when the
peer is one of ``web.trusted_proxies`` (uvicorn's proxy headers rewrite it before the app).
With ``redis.url`` set, both count in Redis, shared by every process.

The socket's user messages count in :class:`Limiter`: the same two keys, a one-minute window,
in Redis when configured, else in memory with idle keys dropped (no entry per device forever).
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from litestar.middleware.rate_limit import RateLimitConfig

from parley.adapters.web.identity import rate_limit_key
from parley.adapters.web.settings import WebSettings

if TYPE_CHECKING:
    from litestar import Request
    from litestar.stores.base import Store
    from redis.asyncio import Redis

__all__ = ["STORE", "Limiter", "address_key", "middlewares", "redis_store"]

STORE = "rate_limit"
"""Name of the Litestar store the HTTP limits count in."""

WINDOW = 60.0


def address_key(host: str | None) -> str:
    """The rate-limit key of a client address (device ids cannot contain ``:``)."""
    return f"addr:{host or 'unknown'}"


def _caller_key(settings: WebSettings, request: Request[Any, Any, Any]) -> str:
    client = request.client.host if request.client else None
    return rate_limit_key(settings, request.headers, client)


def _address_key(request: Request[Any, Any, Any]) -> str:
    return address_key(request.client.host if request.client else None)


def middlewares(settings: WebSettings) -> list[Any]:
    """The HTTP rate-limit middlewares: per caller (``rate_limit``), per address."""
    found = []
    if settings.rate_limit:
        caller = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit),
            identifier_for_request=partial(_caller_key, settings),
            store=STORE,
        )
        found.append(caller.middleware)
    if settings.rate_limit_per_address:
        address = RateLimitConfig(
            rate_limit=("minute", settings.rate_limit_per_address),
            identifier_for_request=_address_key,
            store=STORE,
            set_rate_limit_headers=not settings.rate_limit,
        )
        found.append(address.middleware)
    return found


def redis_store(url: str, namespace: str) -> Store:
    """A Litestar store in Redis for the HTTP limits of every process."""
    from litestar.stores.redis import RedisStore

    return RedisStore.with_client(url=url, namespace=namespace)


class Limiter:
    """User messages on the socket: at most ``per_minute`` per caller and ``per_address`` per
    address in a window of ``window`` seconds (0: no limit). Counts in Redis when given a
    client; in memory, a key idle for a whole window is dropped."""

    def __init__(
        self,
        per_minute: int,
        per_address: int = 0,
        *,
        redis: Redis | None = None,
        namespace: str = "parley:rate_limit",
        window: float = WINDOW,
    ) -> None:
        self.window = window
        self.per_minute = per_minute
        self.per_address = per_address
        self.redis = redis
        self.namespace = namespace
        self._hits: dict[str, deque[float]] = {}
        self._swept = time.monotonic()

    async def allow(self, caller: str, address: str | None) -> bool:
        """Count one message of ``caller`` from ``address``; False when a window is full."""
        limits = [(caller, self.per_minute), (address_key(address), self.per_address)]
        limits = [(key, limit) for key, limit in limits if limit]
        if not limits:
            return True
        if self.redis is not None:
            return await self._allow_redis(limits)
        now = time.monotonic()
        self._sweep(now)
        windows = [(self._window(key, now), limit) for key, limit in limits]
        if any(len(hits) >= limit for hits, limit in windows):
            return False
        for hits, _ in windows:
            hits.append(now)
        return True

    def _window(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        """Drop the keys idle for a whole window (at most once a window)."""
        if now - self._swept < self.window:
            return
        self._swept = now
        cutoff = now - self.window
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]

    async def _allow_redis(self, limits: list[tuple[str, int]]) -> bool:
        """Fixed one-minute windows: INCR each key of this minute (expiring after two)."""
        assert self.redis is not None
        minute = int(time.time() // self.window)
        keys = [f"{self.namespace}:ws:{key}:{minute}" for key, _ in limits]
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, max(1, int(2 * self.window)))
            counts = (await pipe.execute())[::2]
        return all(count <= limit for count, (_, limit) in zip(counts, limits, strict=True))

    async def aclose(self) -> None:
        """Close the Redis client."""
        if self.redis is not None:
            await self.redis.aclose()
