"""Connecting, migrating and closing the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, get_current_context
from tortoise.migrations.executor import MigrationExecutor

from parley.core.store.conversation_cache import conversations
from parley.core.store.models import (
    tortoise_config,
)
from parley.core.store.window import windows

__all__ = ["close", "connect", "migrate", "ping"]

_ctx: TortoiseContext | None = None
_db_url: str | None = None


SQLITE_PRAGMAS = {"synchronous": "NORMAL"}
"""Server defaults added to a SQLite URL that does not set them (Tortoise adds WAL itself).

In WAL mode ``synchronous=NORMAL`` syncs the log at checkpoints, not at every commit: a commit
survives a crash of the process, but the last commits before a power loss or an OS crash may be
rolled back (the database is never corrupted). ``?synchronous=FULL`` in the URL restores a sync
per commit. docs/benchmarks.md ("SQLite durability") writes the trade-off down."""


def with_sqlite_pragmas(db_url: str) -> str:
    """``db_url`` with :data:`SQLITE_PRAGMAS` added as query parameters where it sets none."""
    if not db_url.startswith("sqlite://"):
        return db_url
    path, _, query = db_url.partition("?")
    given = {part.split("=", 1)[0].lower() for part in query.split("&") if part}
    extra = [f"{key}={value}" for key, value in SQLITE_PRAGMAS.items() if key not in given]
    return path + "?" + "&".join([*filter(None, [query]), *extra]) if extra else db_url


async def _keep_session(connection: Any) -> None:
    """What a PostgreSQL connection goes through when it returns to the pool, after asyncpg has
    rolled back a transaction left open: nothing more.

    asyncpg's default also sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;``, a round trip after every statement the ORM runs outside a transaction (about
    40% of a statement's CPU, 45% of its time: docs/benchmarks.md). Parley changes no session
    state on pooled connections: leases hold their advisory locks on connections of their own,
    and nothing LISTENs, SETs or keeps a cursor open there. Code that does must use a connection
    of its own too (docs/deployment.md)."""


def connection_config(db_url: str) -> str | dict[str, Any]:
    """What Tortoise connects with for ``db_url``: a SQLite URL with :data:`SQLITE_PRAGMAS`;
    for PostgreSQL, the URL expanded as Tortoise expands it, with pooled connections kept as
    they are on release (:func:`_keep_session`)."""
    db_url = with_sqlite_pragmas(db_url)
    if db_url.startswith("sqlite://"):
        return db_url
    config = expand_db_url(db_url)
    if config["engine"] == "tortoise.backends.asyncpg":
        config["credentials"]["reset"] = _keep_session
    return config


def _prepare_sqlite_dir(db_url: str) -> None:
    """Create the parent directory of a file-backed SQLite database."""
    if not db_url.startswith("sqlite://"):
        return
    path = db_url.removeprefix("sqlite://").split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _apply_migrations(ctx: TortoiseContext) -> list[str]:
    """Apply the pending migrations on the context's connection; return their names."""
    applied: list[str] = []

    def progress(event: str, _app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(name)

    executor = MigrationExecutor(ctx.db("default"), tortoise_config("")["apps"])
    if get_current_context() is ctx:
        await executor.migrate(progress=progress)
    else:
        with ctx:  # in_transaction() inside the executor must resolve to this context
            await executor.migrate(progress=progress)
    return applied


async def connect(db_url: str, *, migrate_first: bool = True) -> None:
    """Open the database (``sqlite://path``, ``sqlite://:memory:``, ``postgres://...``).

    With ``migrate_first`` pending migrations are applied before returning.
    """
    global _ctx, _db_url
    await close()
    # Tortoise caches INSERT/DELETE SQL per (connection name, table), whatever the dialect:
    # drop it so a new connection (SQLite after PostgreSQL, say) never reuses the old SQL.
    EXECUTOR_CACHE.clear()
    _prepare_sqlite_dir(db_url)
    ctx = TortoiseContext()
    # The global fallback makes the connection visible to every task of the process (e.g.
    # request handlers outside the task that called connect()), in any thread, provided it
    # runs on the event loop that connected: asyncpg and aiosqlite connections are loop-bound.
    with ctx:  # init resolves connections through the current context
        await ctx.init(
            config=tortoise_config(connection_config(db_url)), _enable_global_fallback=True
        )
    _ctx, _db_url = ctx, db_url
    # This process is a SQLite database's one writer: its history windows and conversation
    # records can live in memory.
    windows.reset(enabled=db_url.startswith("sqlite"))
    conversations.reset(enabled=db_url.startswith("sqlite"))
    if migrate_first:
        try:
            await _apply_migrations(ctx)
        except BaseException:
            await close()
            raise


async def migrate(db_url: str) -> list[str]:
    """Apply pending migrations; return the names of those applied."""
    if _ctx is not None and db_url == _db_url:
        return await _apply_migrations(_ctx)
    _prepare_sqlite_dir(db_url)
    ctx = TortoiseContext()
    try:
        with ctx:  # lazy connection: only the migration executor uses it
            await ctx.init(
                config=tortoise_config(connection_config(db_url)), init_connections=False
            )
        return await _apply_migrations(ctx)
    finally:
        await ctx.close_connections()


async def ping() -> None:
    """Run a trivial query; raises when the store is not connected or the database is down."""
    if _ctx is None:
        raise RuntimeError("the store is not connected: call connect() first")
    await _ctx.db("default").execute_query("SELECT 1")


async def close() -> None:
    """Close every connection."""
    global _ctx, _db_url
    ctx, _ctx, _db_url = _ctx, None, None
    windows.reset(enabled=False)
    conversations.reset(enabled=False)
    if ctx is not None:
        await ctx.close_connections()
