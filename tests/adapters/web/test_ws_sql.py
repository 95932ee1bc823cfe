"""The SQL of one plain text turn over ``/ws``, and of a new device's connection, counted where
SQLite runs it (its trace hook); on PostgreSQL, where asyncpg sends it (its query loggers).

The user's message is committed before the LLM request leaves (read back from a second
connection, which sees only committed rows), and nothing reaches the database in between.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, closing
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from tortoise import Tortoise

from parley.core.providers import LLMChunk, LLMRequest
from parley.testing import ScriptedLLM

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

MAX_STATEMENTS = 4
"""Statements of a plain text turn (11 before issue 13): the user's message, the reply (pending,
then final) and the conversation's turn count. The conversation itself is read under its lock
from memory (``parley.core.store.conversation_cache``; its first turn in the process reads it from
the database). Never raise it."""
MAX_COMMITS = 4
"""Commits (autocommitted writes plus COMMITs) of a plain text turn today; the aim is one after
the user's message."""
MAX_BEFORE_REQUEST = 0
"""Statements between storing the user's message and the LLM request (3 before issue 13: the
user row for memory, the history window, the pending reply)."""
BACKGROUND = (
    "parley_inbox",
    '"status"=\'pending\' AND "created_at"<',
    'AND "created_at"<?',
)
"""Work of the server's own background jobs, not part of what is measured (left out of the
trace and of the calls): the inbox's poll, and the sweep that settles replies a crash left
``pending`` (as the trace shows it, its values bound, and as aiosqlite is called, with ``?``)."""
DRIVER = "SELECT last_insert_rowid()"
"""aiosqlite's bookkeeping after each INSERT (no table read): not counted."""


def _recorder(trace: list[str]) -> Callable[[str], None]:
    """A trace callback that keeps what a turn or a connection runs (not the inbox's poll)."""

    def record(sql: str) -> None:
        if not any(mark in sql for mark in BACKGROUND):
            trace.append(sql)

    return record


class WatchedLLM(ScriptedLLM):
    """Notes, at each request, how many statements had run and whether the user's message
    was committed."""

    def __init__(self, path: str, trace: list[str]) -> None:
        super().__init__()
        self.path = path
        self.trace = trace
        self.at_request: list[tuple[int, bool]] = []

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        text = request.messages[-1]["content"]
        with closing(sqlite3.connect(self.path)) as other:
            committed = other.execute(
                "SELECT count(*) FROM parley_message WHERE role = 'user' AND content = ?", (text,)
            ).fetchone()[0]
        self.at_request.append((len(self.trace), committed == 1))
        async for chunk in super().stream(request):
            yield chunk


def _count(statements: list[str]) -> tuple[list[str], int]:
    """The statements that are not transaction control, and the commits among all of them."""
    plain, commits, in_transaction = [], 0, False
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper().rstrip(";")
        if head in ("BEGIN", "SAVEPOINT"):
            in_transaction = True
        elif head in ("COMMIT", "RELEASE") and in_transaction:
            in_transaction, commits = False, commits + 1
        elif head == "ROLLBACK":
            in_transaction = False
        elif head not in TRANSACTION and sql.strip() != DRIVER:
            plain.append(sql)
            commits += _writes(sql) and not in_transaction
    return plain, commits


def _writes(sql: str) -> bool:
    """Whether ``sql`` writes: its first word, or, for a ``WITH``, its common table expressions
    (an INSERT there, its rows returned to the SELECT that follows)."""
    head = sql.lstrip().split(None, 1)[0].upper()
    if head == "WITH":
        return any(f"({write} " in sql.upper() for write in WRITES)
    return head in WRITES


def _inserts_message(sql: str) -> bool:
    """Whether ``sql`` inserts a message, alone or as a ``WITH`` before a SELECT."""
    return sql.startswith(
        ('INSERT INTO "parley_message"', 'WITH new AS (INSERT INTO "parley_message"')
    )


def _check_turn(trace: list[str], at_request: tuple[int, bool], most: int, most_before: int) -> str:
    """Check a turn's ``trace``: at most ``most`` statements and ``MAX_COMMITS`` commits, the
    user's message committed before the LLM request (``at_request``: the trace's length then,
    and whether it was) and at most ``most_before`` statements between its INSERT and the
    request. Returns the turn's first message INSERT."""
    statements, commits = _count(trace)
    report = "\n".join(statements)
    assert len(statements) <= most, report
    assert commits <= MAX_COMMITS, "\n".join(trace)
    length, committed = at_request
    assert committed, "the user's message must be committed before the LLM request"
    before, _ = _count(trace[:length])
    stored = [i for i, sql in enumerate(before) if _inserts_message(sql)]
    assert stored, report
    assert len(before) - stored[0] - 1 <= most_before, report
    return before[stored[0]]


async def test_plain_text_turn_sql(serve, make_settings, tmp_path):
    trace: list[str] = []
    path = str(tmp_path / "db.sqlite3")
    llm = WatchedLLM(path, trace)
    async with serve(provider=llm) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "user_message", text="warm up")
        await web.recv_until(socket, "turn_complete")
        connection = Tortoise.get_connection("default")._connection
        await connection.set_trace_callback(_recorder(trace))
        await web.send(socket, "user_message", text="the measured turn")
        frames = await web.recv_until(socket, "turn_complete")
        await asyncio.sleep(0.25)  # a write left for after turn_complete is counted too
        await connection.set_trace_callback(None)
    assert frames[-2]["type"] == "message_complete" and frames[-2]["status"] == "complete"
    with closing(sqlite3.connect(path)) as other:
        content, status, tokens_out, metadata = other.execute(
            "SELECT content, status, tokens_out, metadata FROM parley_message WHERE id = ?",
            (frames[-2]["message_id"],),
        ).fetchone()
    assert (content, status, tokens_out) == ("ok", "complete", 1)
    assert "llm_ms" in json.loads(metadata)  # the reply's one UPDATE wrote all of it

    first_write = _check_turn(trace, llm.at_request[-1], MAX_STATEMENTS, MAX_BEFORE_REQUEST)
    assert "'user'" in first_write  # the user's message is the turn's first write


# -- on PostgreSQL ----------------------------------------------------------------------------

PG_MAX_STATEMENTS = 5
"""Statements of a plain text turn on PostgreSQL, where other processes write too: the four of
SQLite, and the conversation's read under its lock (not kept in memory there). The history
window, not kept in memory either, is read in the user message's INSERT statement (6 statements
before). Each INSERT takes its message's place from the database's sequence itself (one order
across processes; SQLite takes a clock). Never raise it."""
PG_MAX_BEFORE_REQUEST = 0
"""Statements between the stored user message and the LLM request on PostgreSQL (1 before: the
history window's read)."""
PG_BACKGROUND = ("parley_inbox", 'AND "created_at"<$')
"""The inbox's poll and the pending-reply sweep (see ``BACKGROUND``), as asyncpg sends them."""
PG_RESET = "SELECT pg_advisory_unlock_all();"
"""The start of asyncpg's default reset of a connection released to its pool, a round trip after
each statement: Parley's pool skips it (``parley.core.store.db._keep_session``)."""


class PgWatchedLLM(ScriptedLLM):
    """:class:`WatchedLLM` on PostgreSQL: reads the user's message from a connection of its own."""

    def __init__(self, url: str, trace: list[str]) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.dsn = parts._replace(query="").geturl()
        self.schema = parse_qs(parts.query)["schema"][0]
        self.trace = trace
        self.at_request: list[tuple[int, bool]] = []

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        at = len(self.trace)
        text = request.messages[-1]["content"]
        other = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            committed = await other.fetchval(
                "SELECT count(*) FROM parley_message WHERE role = 'user' AND content = $1", text
            )
        finally:
            await other.close()
        self.at_request.append((at, committed == 1))
        async for chunk in super().stream(request):
            yield chunk


@asynccontextmanager
async def _pg_tracing(trace: list[str]) -> AsyncIterator[None]:
    """The statements asyncpg sends on any of Tortoise's pooled connections inside the block
    (every connection the pool may open is opened and watched: they are held together once)."""

    def record(query: Any) -> None:
        if not any(mark in query.query for mark in PG_BACKGROUND):
            trace.append(query.query)

    async def each(change: str) -> None:
        client = Tortoise.get_connection("default")
        async with AsyncExitStack() as held:
            for _ in range(client.pool_maxsize):
                connection = await held.enter_async_context(client.acquire_connection())
                getattr(connection, change)(record)

    await each("add_query_logger")
    try:
        yield
    finally:
        await each("remove_query_logger")


async def test_plain_text_turn_sql_on_postgres(serve, pg_schema_url):
    trace: list[str] = []
    llm = PgWatchedLLM(pg_schema_url, trace)
    async with serve({"database": {"url": pg_schema_url}}, provider=llm) as web:
        async with web.ws() as socket:
            await web.start_chat(socket)
            await web.send(socket, "user_message", text="warm up")
            await web.recv_until(socket, "turn_complete")
            async with _pg_tracing(trace):
                await web.send(socket, "user_message", text="the measured turn")
                frames = await web.recv_until(socket, "turn_complete")
                await asyncio.sleep(0.25)  # a write left for after turn_complete is counted too
    assert frames[-2]["type"] == "message_complete" and frames[-2]["status"] == "complete"

    assert not [sql for sql in trace if sql.startswith(PG_RESET)], "pooled connections are reset"
    _check_turn(trace, llm.at_request[-1], PG_MAX_STATEMENTS, PG_MAX_BEFORE_REQUEST)
    # The window read with the user's message: the turn before, then this turn's message.
    history = [
        (m["role"], m["content"]) for m in llm.requests[-1].messages if m["role"] != "system"
    ]
    assert history[-3:] == [("user", "warm up"), ("assistant", "ok"), ("user", "the measured turn")]


# -- a new device's connection ------------------------------------------------------------------

CONNECT_MAX_STATEMENTS = 5
"""Statements of a brand-new device's connection up to its greeting (6 before issue 13): the
identity lookup, then user, identity and conversation inserted together, then the greeting
(stored after the ``conversation_started`` hook, as hookspecs promise). Never raise it."""
CONNECT_MAX_COMMITS = 2
"""Commits of a brand-new device's connection (3 before issue 13): the user with its identity
and conversation, then the greeting."""
RECONNECT_MAX_STATEMENTS = 2
"""Statements of a known device's connection that resumes its open conversation: its user, its
open conversation."""
CONNECT_MAX_TRIPS = 3
"""Calls on aiosqlite's database thread for a brand-new device's connection (8 through the ORM's
transaction): the identity lookup, the user, identity and conversation in one transaction (one
call: ``parley.core.store.statements.insert_rows``), the greeting. Each call wakes that thread and
then the event loop, the larger part of a statement's cost here (docs/benchmarks.md)."""


@asynccontextmanager
async def _tracing() -> AsyncIterator[list[str]]:
    """The SQL statements SQLite runs inside the block."""
    trace: list[str] = []
    connection = Tortoise.get_connection("default")._connection
    await connection.set_trace_callback(_recorder(trace))
    try:
        yield trace
    finally:
        await connection.set_trace_callback(None)


@asynccontextmanager
async def _calls() -> AsyncIterator[list[str]]:
    """The calls aiosqlite makes on its database thread inside the block (one each: a statement,
    a commit, or several statements together), not the background jobs' statements: the
    function's name, and the statement's start when it is one."""
    connection = Tortoise.get_connection("default")._connection
    calls: list[str] = []
    run = connection._execute

    async def counted(fn: Callable, *args: Any, **kwargs: Any) -> Any:
        sql = args[0] if args and isinstance(args[0], str) else ""
        if not any(mark in sql for mark in BACKGROUND):
            calls.append(f"{getattr(fn, '__name__', repr(fn))} {sql[:40]}".strip())
        return await run(fn, *args, **kwargs)

    connection._execute = counted
    try:
        yield calls
    finally:
        del connection._execute


async def _traced(web, **query: str) -> tuple[list[str], list[str], list[dict]]:
    """The SQL run, and the calls on the database thread made, while a socket connects
    (``query``) and gets its opening frames."""
    async with _tracing() as trace, _calls() as calls, web.ws(**query) as socket:
        frames = [await web.recv(socket)]
        if not frames[0]["resumed"]:
            frames += await web.recv_until(socket, "message_complete")
    return trace, calls, frames


async def test_new_device_connection_sql(serve, tmp_path):
    async with serve() as web:
        async with web.ws(device_id="warm-up") as socket:
            await web.start_chat(socket)
        trace, calls, frames = await _traced(web, device_id="brand-new")
        again, _, resumed = await _traced(web, device_id="brand-new")
    assert frames[0]["type"] == "conversation_started" and not frames[0]["resumed"]
    assert frames[-1]["type"] == "message_complete" and frames[-1]["text"] == "Hi there!"
    assert resumed[0]["resumed"] and resumed[0]["conversation_id"] == frames[0]["conversation_id"]
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as other:
        rows = other.execute(
            "SELECT c.status, c.channel, (SELECT count(*) FROM parley_message m"
            " WHERE m.conversation_id = c.id) FROM parley_identity i"
            " JOIN parley_conversation c ON c.user_id = i.user_id"
            " WHERE i.channel = 'web' AND i.external_id = 'brand-new'"
        ).fetchall()
    assert rows == [("open", "web", 1)]  # one user, one open conversation, its greeting

    statements, commits = _count(trace)
    assert len(statements) <= CONNECT_MAX_STATEMENTS, "\n".join(statements)
    assert commits <= CONNECT_MAX_COMMITS, "\n".join(trace)
    assert len(calls) <= CONNECT_MAX_TRIPS, calls
    statements, commits = _count(again)
    assert len(statements) <= RECONNECT_MAX_STATEMENTS, "\n".join(statements)
    assert commits == 0, "\n".join(again)


async def test_refused_connection_runs_no_sql(serve):
    """Bad credentials, an unknown template or language: refused before the database is asked."""
    async with serve() as web:
        async with web.ws(device_id="warm-up") as socket:
            await web.start_chat(socket)
        for query in ({"template_id": "nope"}, {"language": "not a tag"}, {"device_id": "a:b"}):
            async with _tracing() as trace, web.ws(**query) as socket:
                assert (await web.recv(socket))["type"] == "error"
                await socket.wait_closed()
            assert socket.close_code in (4400, 4404), query
            assert trace == [], query
