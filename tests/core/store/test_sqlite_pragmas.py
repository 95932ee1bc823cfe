"""SQLite suits a server by default: WAL and synchronous=NORMAL, unless the URL says otherwise."""

from __future__ import annotations

import pytest
from tortoise import Tortoise

from parley.core import store
from parley.core.store.db import with_sqlite_pragmas


async def _pragma(name: str) -> str:
    _, rows = await Tortoise.get_connection("default").execute_query(f"PRAGMA {name}")
    return str(rows[0][0]).lower()


@pytest.mark.parametrize(
    ("query", "synchronous"), [("", "1"), ("?synchronous=FULL", "2"), ("?synchronous=OFF", "0")]
)
async def test_sqlite_file_runs_wal_with_normal_sync_unless_the_url_says(
    tmp_path, query, synchronous
):
    await store.connect(f"sqlite://{tmp_path / 'p.sqlite3'}{query}")
    try:
        assert await _pragma("journal_mode") == "wal"
        assert await _pragma("synchronous") == synchronous  # 0 OFF, 1 NORMAL, 2 FULL
        user = await store.get_or_create_user("web", "device-1")  # the store works as ever
        assert (await store.get_or_create_user("web", "device-1")).id == user.id
    finally:
        await store.close()


async def test_in_memory_database_still_opens():
    await store.connect("sqlite://:memory:")
    try:
        await store.ping()
        assert await _pragma("synchronous") == "1"
    finally:
        await store.close()


def test_urls_keep_their_own_parameters():
    assert with_sqlite_pragmas("sqlite://a.db") == "sqlite://a.db?synchronous=NORMAL"
    assert with_sqlite_pragmas("sqlite://a.db?x=1") == "sqlite://a.db?x=1&synchronous=NORMAL"
    assert with_sqlite_pragmas("sqlite://a.db?Synchronous=FULL") == "sqlite://a.db?Synchronous=FULL"
    assert with_sqlite_pragmas("postgres://u@h/db") == "postgres://u@h/db"
