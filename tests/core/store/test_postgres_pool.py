"""PostgreSQL's pooled connections go back to the pool without asyncpg's reset query (a round trip
after every statement), yet never with a transaction still open."""

from __future__ import annotations

import uuid

from tortoise import Tortoise

from parley.core import store


async def test_a_pooled_connection_keeps_its_session_but_not_an_open_transaction(
    pg_schema_url: str,
) -> None:
    await store.connect(pg_schema_url)
    try:
        client = Tortoise.get_connection("default")
        async with client.acquire_connection() as connection:
            pid = connection.get_server_pid()
            await connection.execute("SET application_name = 'kept'")
            await connection.execute("BEGIN")  # left open: released mid-transaction
            await connection.execute(
                "INSERT INTO parley_user (id, created_at) VALUES ($1, now())", uuid.uuid4()
            )
        async with client.acquire_connection() as connection:
            assert connection.get_server_pid() == pid  # the same connection, from the pool
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT count(*) FROM parley_user") == 0
            # No reset query ran (it would have said RESET ALL): session state stays.
            assert await connection.fetchval("SHOW application_name") == "kept"
        assert await store.get_or_create_user("web", "after")  # the store works as ever
    finally:
        await store.close()
