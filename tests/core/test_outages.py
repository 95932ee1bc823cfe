"""Telling an outage (database or Redis unreachable) from a bug, by the exception alone."""

from __future__ import annotations

import logging
import sqlite3

import pytest
import redis.asyncio as redis
from tortoise.exceptions import OperationalError

from parley.core.outages import OutageLogFilter, Unavailable, describe


async def test_redis_refusing_connections_is_a_redis_outage():
    client = redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(Exception) as caught:
        await client.ping()
    await client.aclose()
    outage = describe(caught.value)
    assert outage is not None and outage.part == "redis"
    assert "redis" in outage.message and outage.retry_after == 5


async def test_postgres_refusing_connections_is_a_database_outage():
    import asyncpg

    with pytest.raises(OSError) as caught:
        await asyncpg.connect("postgresql://u@127.0.0.1:1/db", timeout=5)
    assert describe(caught.value).part == "database"


def test_a_locked_sqlite_database_is_an_outage_but_a_missing_table_is_a_bug():
    def wrapped(message: str) -> Exception:
        try:
            try:
                raise sqlite3.OperationalError(message)
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc)  # noqa: B904 (tortoise chains implicitly too)
        except OperationalError as outer:
            return outer

    assert describe(wrapped("database is locked")).part == "database"
    assert describe(wrapped("no such table: message")) is None


def test_errors_raised_outside_the_drivers_are_not_outages():
    assert describe(ConnectionRefusedError("a provider's HTTP client")) is None
    assert describe(TimeoutError()) is None
    assert describe(ValueError("bad input")) is None


def test_unavailable_names_its_part_through_causes_and_groups():
    try:
        try:
            raise Unavailable("redis", "lock not taken")
        except Unavailable as exc:
            raise RuntimeError("turn failed") from exc
    except RuntimeError as chained:
        assert describe(chained).part == "redis"
    group = ExceptionGroup("many", [ValueError("x"), Unavailable("database")])
    assert describe(group).part == "database"


async def test_a_library_logging_an_outage_gets_one_line(caplog):
    import asyncpg

    logger = logging.getLogger("test.outage-filter")
    OutageLogFilter.install(logger.name)
    OutageLogFilter.install(logger.name)  # once only
    assert len(logger.filters) == 1
    with pytest.raises(OSError) as caught:
        await asyncpg.connect("postgresql://u@127.0.0.1:1/db", timeout=5)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("pool refill failed", exc_info=caught.value)
        logger.warning("a bug", exc_info=ValueError("x"))
    outage, bug = caplog.records[-2:]
    assert outage.exc_info is None and "pool refill failed (" in outage.getMessage()
    assert "Connect call failed" in outage.getMessage()
    assert bug.exc_info is not None  # anything else keeps its traceback
