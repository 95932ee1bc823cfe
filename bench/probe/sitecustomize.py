"""The benchmark's probe, loaded by both servers of the text section (``PYTHONPATH``).

With ``PARLEY_BENCH_COMMITS`` naming a file, and while that file exists, it appends a line
``<moment> <wall-clock time>`` to it for each of these moments, in the server's own process:

- ``commit``: an INSERT into a ``*_message`` table that SQLite has committed when its statement
  returns (autocommit, as both systems store a user's message), on aiosqlite's database thread
  the moment the statement returns;
- ``post``: the openai SDK's ``post()`` called for ``/chat/completions`` (both systems stream
  through it; the baseline's ``create()`` checks its arguments first, then calls it);
- ``sent``: the body of an HTTP request to ``/chat/completions`` written to its socket by
  httpcore (the transport under the SDK): the moment the request has left the process.

The one-turn breakdown creates the file, measures *committed user message -> LLM request sent*
from it (the goal's "stored" is the commit, and "leaves" is the write), and removes it: the load
runs after it pay one ``stat`` per moment (a message INSERT, an LLM request called and sent).

Both systems store through Tortoise and aiosqlite and call the LLM through the openai SDK, so
both carry the same probe. Nothing else is changed; without the variable nothing is loaded.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("PARLEY_BENCH_COMMITS")

if _PATH:
    import time
    from typing import Any

    import aiosqlite.core
    import httpcore2._async.http11 as _http11
    import openai._base_client as _sdk

    _CHAT = "/chat/completions"

    def _note(moment: str, now: float) -> None:
        if os.path.exists(_PATH):  # type: ignore[arg-type]
            with open(_PATH, "a") as out:  # type: ignore[arg-type]
                out.write(f"{moment} {now!r}\n")

    _insert = aiosqlite.core.Connection._execute_insert

    def _execute_insert(self: Any, sql: str, parameters: Any) -> Any:
        row = _insert(self, sql, parameters)
        now = time.time()
        if not self._conn.in_transaction and _table(sql).endswith("_message"):
            _note("commit", now)
        return row

    def _table(sql: str) -> str:
        return sql.partition('"')[2].partition('"')[0]

    _post = _sdk.AsyncAPIClient.post

    async def _posted(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith(_CHAT):
            _note("post", time.time())
        return await _post(self, path, *args, **kwargs)

    _body = _http11.AsyncHTTP11Connection._send_request_body

    async def _send_request_body(self: Any, request: Any) -> None:
        await _body(self, request)
        if request.url.target.endswith(_CHAT.encode()):
            _note("sent", time.time())

    aiosqlite.core.Connection._execute_insert = _execute_insert
    _sdk.AsyncAPIClient.post = _posted  # type: ignore[method-assign]
    _http11.AsyncHTTP11Connection._send_request_body = _send_request_body  # type: ignore[method-assign]
