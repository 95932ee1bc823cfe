"""connect / migrate / close: migrations build the schema, and every task sees the connection."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient, TestClient
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext, get_current_context
from tortoise.migrations.autodetector import MigrationAutodetector

from parley.core import store
from parley.core.store.models import APP_LABEL, tortoise_config

PARLEY_TABLES = {
    "parley_user",
    "parley_identity",
    "parley_conversation",
    "parley_message",
    "parley_inbound_key",
    "parley_failed_delivery",
    "parley_inbox",
    "parley_outbound_send",
}
MIGRATIONS = ["0001_initial", "0002_failed_delivery", "0003_inbox"]


async def _tables() -> set[str]:
    conn = get_connection("default")
    if conn.capabilities.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    _, rows = await conn.execute_query(sql)
    return {row["name"] for row in rows}


async def _recorded_migrations() -> list[tuple[str, str]]:
    _, rows = await get_connection("default").execute_query(
        'SELECT "app", "name" FROM "tortoise_migrations" ORDER BY "name"'
    )
    return [(row["app"], row["name"]) for row in rows]


def _no_generate_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the schema must come from migrations, not generate_schemas")

    monkeypatch.setattr(Tortoise, "generate_schemas", forbidden)
    monkeypatch.setattr(TortoiseContext, "generate_schemas", forbidden)


async def test_migrate_builds_fresh_database_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_generate_schemas(monkeypatch)
    assert await store.migrate(db_url) == MIGRATIONS
    assert await store.migrate(db_url) == []
    await store.connect(db_url)
    try:
        assert PARLEY_TABLES <= await _tables()
        assert await _recorded_migrations() == [(APP_LABEL, name) for name in MIGRATIONS]
        assert await store.migrate(db_url) == []
        user = await store.get_or_create_user("web", "u")
        assert await store.get_user(user.id) == user
    finally:
        await store.close()


async def test_connect_migrates_fresh_database(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_generate_schemas(monkeypatch)
    await store.connect(db_url)
    try:
        assert PARLEY_TABLES <= await _tables()
        assert await store.migrate(db_url) == []
    finally:
        await store.close()
    await store.connect(db_url)  # reconnecting applies nothing and keeps the data
    try:
        assert await _recorded_migrations() == [(APP_LABEL, name) for name in MIGRATIONS]
    finally:
        await store.close()


async def test_connect_without_migrating(db_url: str) -> None:
    await store.connect(db_url, migrate_first=False)
    try:
        assert not PARLEY_TABLES & await _tables()
        assert await store.migrate(db_url) == MIGRATIONS
        assert PARLEY_TABLES <= await _tables()
    finally:
        await store.close()


async def test_models_match_migrations(db: str) -> None:
    """Fails when a model changed without a new migration (see migration_config)."""
    apps = tortoise_config(db)["apps"]
    ctx = get_current_context()
    assert ctx is not None and ctx.apps is not None
    writers = await MigrationAutodetector(ctx.apps, apps).changes()
    assert [w.name for w in writers] == []


async def test_in_memory_sqlite() -> None:
    await store.connect("sqlite://:memory:")
    try:
        user = await store.get_or_create_user("web", "mem")
        conv = await store.start_conversation(user.id, "web", "solo", "en")
        await store.add_message(conv.id, "user", "hi")
        assert await store.count_messages(conv.id) == 1
    finally:
        await store.close()


async def test_connect_twice_replaces_connection(db_url: str, tmp_path) -> None:
    other = f"sqlite://{tmp_path / 'other.db'}"
    await store.connect(other)
    await store.get_or_create_user("web", "elsewhere")
    await store.connect(db_url)
    try:
        user = await store.get_or_create_user("web", "here")
        assert await store.get_user(user.id) == user
        assert await store.list_conversations(user.id) == []
    finally:
        await store.close()
    await store.close()  # closing twice is fine


async def test_other_tasks_see_the_connection(db: str) -> None:
    user = await store.get_or_create_user("web", "u")
    # A task started from an empty context, like a server's request handler.
    task = asyncio.create_task(store.get_user(user.id), context=contextvars.Context())
    assert await task == user


def _app(db_url: str) -> Litestar:
    async def startup() -> None:
        await store.connect(db_url)

    @get("/user/{external_id:str}")
    async def handler(external_id: FromPath[str]) -> dict[str, str]:
        user = await store.get_or_create_user("web", external_id)
        return {"id": user.id}

    return Litestar([handler], on_startup=[startup], on_shutdown=[store.close])


async def test_litestar_handlers_see_the_connection(db_url: str) -> None:
    async with AsyncTestClient(_app(db_url)) as client:
        first = (await client.get("/user/a")).json()
        assert (await client.get("/user/a")).json() == first


def test_litestar_handlers_in_server_thread(db_url: str) -> None:
    with TestClient(_app(db_url)) as client:  # the app runs in its own thread and loop
        first = client.get("/user/b")
        assert first.status_code == 200, first.text
        assert client.get("/user/b").json() == first.json()


async def test_ping(db_url: str) -> None:
    with pytest.raises(RuntimeError, match="not connected"):
        await store.ping()
    await store.connect(db_url)
    try:
        await store.ping()
    finally:
        await store.close()
    with pytest.raises(RuntimeError):
        await store.ping()
