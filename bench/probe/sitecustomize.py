"""The benchmark's probe, loaded by both servers of the text section (``PYTHONPATH``).

With ``PARLEY_BENCH_COMMITS`` naming a file, and while that file exists, it appends a line
``<moment> <wall-clock time>`` to it for each of these moments, in the server's own process
(kept in memory when noted, written once the request has left, so that the probe's own file
writes fall outside what it measures):

- ``commit``: an INSERT into a ``*_message`` table that SQLite has committed when its statement
  returns (autocommit, as both systems store a user's message), on aiosqlite's database thread
  the moment the statement returns (through ``execute_insert``, as the ORM's ``create`` runs it,
  or ``execute_fetchall``, as Parley's statements written out once run);
- ``post``: the openai SDK's ``post()`` called for ``/chat/completions`` (both systems stream
  through it; the baseline's ``create()`` checks its arguments first, then calls it);
- ``sent``: the last bytes of the body of an HTTP request to ``/chat/completions`` handed to
  the socket by the transport under the SDK: the moment the request leaves the process.
  Under httpcore (the SDK's default transport, the baseline's) it is noted as the socket's
  ``send`` is entered (anyio's), the write itself follows without passing through the event
  loop; not when httpcore's body write returns: anyio passes through the event loop after each
  write, so that moment also holds whatever else ran meanwhile (the request had often reached
  the fake, in another process, by then). Under aiohttp (Parley's) it is noted as aiohttp's
  writer hands the body, with the headers before it, to the socket's transport.

The one-turn breakdown creates the file, measures *committed user message -> LLM request sent*
from it (the goal's "stored" is the commit, and "leaves" is the write), and removes it: the load
runs after it pay one ``stat`` per LLM request sent.

Both systems store through Tortoise and aiosqlite and call the LLM through the openai SDK, so
both carry the same probe. Nothing else is changed; without the variable nothing is loaded.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("PARLEY_BENCH_COMMITS")

if _PATH:
    import time
    from collections import deque
    from contextvars import ContextVar
    from typing import Any

    import aiohttp.client_reqrep as _aiohttp_request
    import aiohttp.http_writer as _aiohttp_writer
    import aiosqlite.core
    import anyio._backends._asyncio as _anyio
    import httpcore2._async.http11 as _http11
    import openai._base_client as _sdk

    _CHAT = "/chat/completions"

    _noted: deque[tuple[str, float]] = deque()
    """Moments not yet in the file (a deque: the database thread appends to it too)."""

    def _note(moment: str, now: float) -> None:
        _noted.append((moment, now))

    def _flush() -> None:
        """Write the moments noted so far (once a request has left: no file is touched
        between a commit and the request, on the database thread or the event loop)."""
        lines = []
        while _noted:
            moment, now = _noted.popleft()
            lines.append(f"{moment} {now!r}\n")
        if os.path.exists(_PATH):  # type: ignore[arg-type]
            with open(_PATH, "a") as out:  # type: ignore[arg-type]
                out.writelines(lines)

    _insert = aiosqlite.core.Connection._execute_insert
    _fetchall = aiosqlite.core.Connection._execute_fetchall

    def _execute_insert(self: Any, sql: str, parameters: Any) -> Any:
        row = _insert(self, sql, parameters)
        _committed(self, sql, time.time())
        return row

    def _execute_fetchall(self: Any, sql: str, parameters: Any) -> Any:
        rows = _fetchall(self, sql, parameters)
        _committed(self, sql, time.time())
        return rows

    def _committed(connection: Any, sql: str, now: float) -> None:
        """Note a message's INSERT that committed as it returned (the ORM's ``create`` goes
        through ``execute_insert``, a statement written out once through ``execute_fetchall``)."""
        if sql.startswith("INSERT") and not connection._conn.in_transaction:
            if sql.partition('"')[2].partition('"')[0].endswith("_message"):
                _note("commit", now)

    _post = _sdk.AsyncAPIClient.post

    async def _posted(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith(_CHAT):
            _note("post", time.time())
        return await _post(self, path, *args, **kwargs)

    _writes: ContextVar[list[float] | None] = ContextVar("writes", default=None)
    """While a chat request's body is being written: when each of its writes began."""

    async def _sending(write_body: Any, *args: Any) -> None:
        """Write a chat request's body (``write_body(*args)``), then note its last write."""
        writes: list[float] = []
        token = _writes.set(writes)
        try:
            await write_body(*args)
        finally:
            _writes.reset(token)
        if writes:
            _note("sent", writes[-1])
        _flush()

    def _mark() -> None:
        """Note a socket write's start when it is part of a chat request's body."""
        writes = _writes.get()
        if writes is not None:
            writes.append(time.time())

    # httpcore (the SDK's default transport, the baseline's): the body's writes, anyio's send.
    _body = _http11.AsyncHTTP11Connection._send_request_body
    _send = _anyio.SocketStream.send

    async def _send_request_body(self: Any, request: Any) -> None:
        if not request.url.target.endswith(_CHAT.encode()):
            return await _body(self, request)
        await _sending(_body, self, request)

    async def _socket_send(self: Any, item: bytes) -> None:
        _mark()
        await _send(self, item)

    # aiohttp (Parley's): the body's task, the writer's hand-over to the socket's transport.
    _body_bytes = _aiohttp_request.ClientRequest.write_bytes
    _stream_write = _aiohttp_writer.StreamWriter._write
    _stream_writelines = _aiohttp_writer.StreamWriter._writelines

    async def _write_bytes(self: Any, *args: Any) -> None:
        if not self.url.path.endswith(_CHAT):
            return await _body_bytes(self, *args)
        await _sending(_body_bytes, self, *args)

    def _write(self: Any, chunk: Any) -> None:
        _mark()
        _stream_write(self, chunk)

    def _writelines(self: Any, chunks: Any) -> None:
        _mark()
        _stream_writelines(self, chunks)

    aiosqlite.core.Connection._execute_insert = _execute_insert
    aiosqlite.core.Connection._execute_fetchall = _execute_fetchall
    _sdk.AsyncAPIClient.post = _posted  # type: ignore[method-assign]
    _http11.AsyncHTTP11Connection._send_request_body = _send_request_body  # type: ignore[method-assign]
    _anyio.SocketStream.send = _socket_send  # type: ignore[method-assign]
    _aiohttp_request.ClientRequest.write_bytes = _write_bytes  # type: ignore[method-assign]
    _aiohttp_writer.StreamWriter._write = _write  # type: ignore[method-assign]
    _aiohttp_writer.StreamWriter._writelines = _writelines  # type: ignore[method-assign]
