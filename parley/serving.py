"""``parley serve``: one process, or ``--workers N`` processes on one port.

Several workers are uvicorn's own process manager: the parent binds the port once, spawns N
worker processes that accept on that same socket (the kernel hands each new connection to one
of them), restarts a worker that died and stops them all on Ctrl-C / SIGTERM. Each worker is a
full Parley (:func:`worker_app`): its own runtime, adapters and database pool. They share state
only through PostgreSQL and Redis, which is why ``--workers`` refuses SQLite and an empty
``redis.url`` (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from contextlib import suppress
from typing import Any

from parley.core.config import Settings
from parley.core.loading import load_settings
from parley.logs import RedactSecrets, configure_logging

__all__ = ["serve", "worker_app", "workers_problems"]

SETTINGS_ENV = "PARLEY_SETTINGS_DIR"


def workers_problems(settings: Settings) -> list[str]:
    """Why these settings cannot run in several processes (empty: they can)."""
    problems = []
    if settings.database.url.startswith("sqlite://"):
        problems.append(
            "database.url is SQLite, which one process owns: use PostgreSQL "
            "(postgres://user:pass@host:5432/db)"
        )
    if not settings.redis.url:
        problems.append(
            "redis.url is empty: processes share conversation locks and live events through "
            "Redis (redis://host:6379/0)"
        )
    return problems


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    from parley.adapters.web.settings import uvicorn_options

    return {
        "log_level": "info",
        "lifespan": "on",
        "ws": "websockets-sansio",
        **uvicorn_options(settings),  # size limit of frames, trusted proxies
    }


def _quiet_logs(settings: Settings) -> None:
    """After uvicorn configured its loggers: redact secrets, apply ``[logging]``."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactSecrets())
    configure_logging(settings)


def settle_heap() -> None:
    """Move everything built so far (modules, the app, settings) out of the garbage collector's
    sight, once, before serving.

    They live as long as the process, yet every full collection would walk them again: with
    the imports of a served app that is most of the heap (about 150,000 objects), and a full
    collection under load then took up to 0.2 s of the event loop. Young collections run every
    5,000 allocations instead of 700: a turn allocates thousands of short-lived objects, freed
    by reference counting anyway. Together about half the collector's time under load
    (bench/notes.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 10, 10)


def worker_app() -> Any:
    """The app of one worker process (uvicorn calls this factory in each worker)."""
    from parley.core.runtime import Runtime
    from parley.server import create_app

    settings = load_settings(os.environ.get(SETTINGS_ENV))
    _quiet_logs(settings)
    app = create_app(settings, Runtime(settings))
    settle_heap()
    return app


async def _migrate(url: str) -> list[str]:
    from parley.core import store

    try:
        return await store.migrate(url)
    finally:
        await store.close()


def serve(
    app: Any, settings: Settings, *, host: str, port: int, workers: int, settings_dir: str | None
) -> None:
    """Serve ``app`` in this process, or ``workers`` processes each building their own app.

    Raises ValueError (with every reason) when ``workers > 1`` and the settings cannot share.
    """
    import uvicorn

    options = _uvicorn_options(settings)
    if workers <= 1:
        config = uvicorn.Config(app, host=host, port=port, **options)
        _quiet_logs(settings)  # after uvicorn.Config: it configures uvicorn's loggers
        settle_heap()
        with suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after a clean shutdown
            uvicorn.Server(config).run()
        return
    problems = workers_problems(settings)
    if problems:
        raise ValueError("; ".join(problems))
    # Migrate once, here: N workers migrating together would race for the same tables.
    asyncio.run(_migrate(settings.database.url))
    if settings_dir:  # the workers load the same folder (environment variables pass on)
        os.environ[SETTINGS_ENV] = os.path.abspath(settings_dir)
    with suppress(KeyboardInterrupt):
        uvicorn.run(
            "parley.serving:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **options,
        )
