"""Built-in plugin ``health``: ``GET /health`` reports the database and providers."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State

from parley.core import store
from parley.core.hookspecs import hookimpl
from parley.plugins.local.plugin import readiness as local_readiness

__all__ = ["health", "register_routes"]


@get("/health", tags=["health"])
async def health(state: State) -> Response[dict[str, Any]]:
    """Status of the database and of each configured provider; 503 when the database is down."""
    runtime = state.runtime
    database = "ok"
    try:
        await store.ping()
    except Exception as exc:
        database = f"error: {type(exc).__name__}"
    providers = {
        kind: getattr(getattr(runtime, kind), "name", None) for kind in ("llm", "stt", "tts")
    }
    ok = database == "ok"
    body = {"status": "ok" if ok else "degraded", "database": database, "providers": providers}
    models = local_readiness(runtime)
    if models:  # local providers: "loading" until their models are loaded, then "ready"
        body["models"] = models
    return Response(body, status_code=200 if ok else 503)


@hookimpl
def register_routes(register: Any) -> None:
    """Mount ``GET /health``."""
    register(health)
