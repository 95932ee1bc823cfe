"""Built-in plugin ``health``: ``GET /health`` reports the database, Redis and providers.

503 when a part Parley needs is unreachable, naming it in ``down`` (a load balancer takes the
process out of rotation; an operator sees which part to look at).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from parley.core.hookspecs import hookimpl
from parley.core.plugin_context import PluginContext
from parley.plugins.local.plugin import readiness as local_readiness

__all__ = ["CHECK_TIMEOUT", "health", "register_routes"]

CHECK_TIMEOUT = 3.0
"""Seconds a check may take before its part counts as down."""


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    """``ok``, or ``error: <what went wrong>``."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe()
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@get("/health", tags=["health"])
async def health(context: NamedDependency[PluginContext]) -> Response[dict[str, Any]]:
    """Status of the database, of Redis (when ``redis.url`` is set) and of each configured
    provider; 503 when the database or Redis is down, listed in ``down``."""
    checks = {part: _check(ping) for part, ping in context.probes().items()}
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    down = [part for part, result in results.items() if result != "ok"]
    used = {"llm": context.llm, "stt": context.stt, "tts": context.tts}
    providers = {kind: getattr(provider, "name", None) for kind, provider in used.items()}
    body = {
        "status": "degraded" if down else "ok",
        **results,
        "redis": results.get("redis", "not configured"),
        "providers": providers,
        "down": down,
        "pid": os.getpid(),  # which process answered, behind a balancer or with --workers
    }
    models = local_readiness(used)
    if models:  # local providers: "loading" until their models are loaded, then "ready"
        body["models"] = models
    return Response(body, status_code=503 if down else 200)


@hookimpl
def register_routes(register: Any) -> None:
    """Mount ``GET /health``."""
    register(health)
