"""Statements written out once, for the store's hottest calls (every WebSocket connection looks
up its caller; a new device also gets a user and a conversation; every message is inserted, and
a reply and its conversation updated).

The ORM builds each query anew (pypika), which costs several times what running it does
(docs/benchmarks.md, "Idle sockets"). These statements are plain SQL with ``?`` placeholders,
put into the connection's style once per dialect; rows become model instances through the ORM's
own decoding, so records look exactly like the ORM's.

On SQLite every statement is a round trip to aiosqlite's database thread, which wakes that thread
and then the event loop. :func:`insert_rows` runs a whole transaction in one trip.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

__all__ = ["insert_row", "insert_row_and_select", "insert_rows", "select_rows", "update_row"]

M = TypeVar("M", bound=Model)


@cache
def _styled(sql: str, dialect: str) -> str:
    """``sql`` with its ``?`` placeholders as the dialect writes them (``$1, $2...`` on PostgreSQL)."""
    if dialect != "postgres":
        return sql
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


def _client(model: type[Model]) -> BaseDBAsyncClient:
    """``model``'s connection (a transaction's, inside one)."""
    return model._meta.db


async def select_rows(model: type[M], sql: str, values: list[Any]) -> list[M]:
    """The rows of ``sql`` (every column of ``model``'s table, by name) as ``model`` instances."""
    client = _client(model)
    _, rows = await client.execute_query(_styled(sql, client.capabilities.dialect), values)
    # The ORM's own row decoding (what its querysets do with each row).
    return [model._init_from_db(**dict(row)) for row in rows]


@cache
def _insert_sql(
    model: type[Model], fields: tuple[str, ...], computed: tuple[tuple[str, str], ...], dialect: str
) -> str:
    projection = model._meta.fields_db_projection
    columns = ", ".join(f'"{projection[name]}"' for name in (*fields, *dict(computed)))
    marks = ", ".join(["?"] * len(fields) + [expression for _, expression in computed])
    sql = f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks})'
    if computed:
        sql += " RETURNING " + ", ".join(f'"{projection[name]}"' for name, _ in computed)
    return _styled(sql, dialect)


def _db_values(model: type[Model], fields: dict[str, Any]) -> list[Any]:
    """``fields``' values as the ORM writes them (its own conversion and checks)."""
    fields_map = model._meta.fields_map
    return [fields_map[name].to_db_value(value, model) for name, value in fields.items()]


async def insert_row(
    model: type[Model], *, computed: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """Insert one row of ``model`` (``fields`` by field name, converted as the ORM does).
    ``computed``: fields whose values the database works out in the same statement (field name
    -> SQL expression, e.g. a sequence's ``nextval``); their values are returned by column name
    (nothing else is)."""
    client = _client(model)
    values = _db_values(model, fields)
    dialect = client.capabilities.dialect
    sql = _insert_sql(model, tuple(fields), tuple((computed or {}).items()), dialect)
    if not computed:
        await client.execute_query(sql, values)
        return {}
    # Not execute_query: Tortoise's asyncpg client drops what an INSERT returns there.
    return (await client.execute_query_dict(sql, values))[0]


_NEW = "parley_new_"
"""Prefix of the inserted row's returned columns in :func:`insert_row_and_select`'s rows."""


@cache
def _insert_select_sql(
    model: type[Model], fields: tuple[str, ...], computed: tuple[tuple[str, str], ...], select: str
) -> str:
    projection = model._meta.fields_db_projection
    returned = ", ".join(f'new."{projection[name]}" AS "{_NEW}{name}"' for name, _ in computed)
    insert = _insert_sql(model, fields, computed, "sqlite")  # placeholders are styled below
    # The SELECT runs on the statement's one snapshot: it does not see the row inserted beside
    # it. LEFT JOIN: the inserted row's values come back when the SELECT finds nothing.
    sql = f"WITH new AS ({insert}) SELECT {returned}, w.* FROM new"
    sql += f" LEFT JOIN LATERAL ({select}) w ON true"
    return _styled(sql, "postgres")


async def insert_row_and_select(
    model: type[M], select: str, values: list[Any], *, computed: dict[str, str], **fields: Any
) -> tuple[dict[str, Any], list[M]]:
    """PostgreSQL: insert one row of ``model`` as :func:`insert_row` does and run ``select``
    (every column of ``model``'s table, ``values`` for its placeholders) in the same statement,
    one round trip: the inserted row's ``computed`` values (by field name) and the rows
    ``select`` found, which do not include the inserted row (one snapshot for both)."""
    client = _client(model)
    if client.capabilities.dialect != "postgres":
        raise NotImplementedError("insert_row_and_select runs on PostgreSQL only")
    if not computed:
        raise ValueError("insert_row_and_select returns computed values: name at least one")
    sql = _insert_select_sql(model, tuple(fields), tuple(computed.items()), select)
    rows = await client.execute_query_dict(sql, [*_db_values(model, fields), *values])
    inserted = {name: rows[0][f"{_NEW}{name}"] for name in computed}
    key = model._meta.fields_db_projection[model._meta.pk_attr]
    found = [
        model._init_from_db(**{k: v for k, v in row.items() if not k.startswith(_NEW)})
        for row in rows
        if row[key] is not None
    ]
    return inserted, found


@cache
def _update_sql(model: type[Model], fields: tuple[str, ...], dialect: str) -> str:
    projection = model._meta.fields_db_projection
    sets = ", ".join(f'"{projection[name]}"=?' for name in fields)
    key = projection[model._meta.pk_attr]
    return _styled(f'UPDATE "{model._meta.db_table}" SET {sets} WHERE "{key}"=?', dialect)


async def update_row(model: type[Model], pk: Any, **fields: Any) -> int:
    """Set ``fields`` (by field name, converted as the ORM does) of ``model``'s row ``pk``; the
    number of rows changed (0 or 1)."""
    client = _client(model)
    values = _db_values(model, {**fields, model._meta.pk_attr: pk})
    sql = _update_sql(model, tuple(fields), client.capabilities.dialect)
    changed, _ = await client.execute_query(sql, values)
    return changed


Row = tuple[type[Model], dict[str, Any]]
"""A row to insert: its model and its fields by field name."""


def _in_one_transaction(db: sqlite3.Connection, statements: list[tuple[str, list[Any]]]) -> None:
    """Run ``statements`` in one transaction on ``db`` (on aiosqlite's database thread)."""
    db.execute("BEGIN")
    try:
        for sql, values in statements:
            db.execute(sql, values)
    except BaseException:
        db.rollback()
        raise
    db.commit()


async def insert_rows(rows: Sequence[Row]) -> None:
    """Insert ``rows`` (of any tables in one database) in one transaction: all or none; the
    ORM's IntegrityError when a key is taken. Not for use inside another transaction.

    On SQLite the transaction is one call on aiosqlite's database thread (its ``_execute``, the
    only way it offers to run several statements in one call), under the lock the ORM's own
    transactions take (through the ORM, a user, its identity and a conversation took six trips:
    its BEGIN takes two). Elsewhere it is an ordinary transaction."""
    client = _client(rows[0][0])
    dialect = client.capabilities.dialect
    statements = [
        (_insert_sql(model, tuple(fields), (), dialect), _db_values(model, fields))
        for model, fields in rows
    ]
    if dialect != "sqlite":
        async with in_transaction(client.connection_name) as conn:
            for sql, values in statements:
                await conn.execute_query(sql, values)
        return
    async with client.acquire_connection() as connection:
        try:
            await connection._execute(_in_one_transaction, connection._conn, statements)
        except sqlite3.IntegrityError as exc:  # as the ORM's SQLite client translates them
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc
