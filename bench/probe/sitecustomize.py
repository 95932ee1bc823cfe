"""The benchmark's commit probe, loaded by both servers of the text section (``PYTHONPATH``).

With ``PARLEY_BENCH_COMMITS`` naming a file, and while that file exists, every INSERT into a
``*_message`` table that SQLite has committed when its statement returns (autocommit, as both
systems store a user's message) appends the wall-clock time to the file, on aiosqlite's
database thread, the moment the statement returns. The one-turn breakdown creates the file,
measures *committed user message -> LLM request* from it (the goal's "stored" is the commit, not
the ``created_at`` taken before the INSERT) and removes it: the load runs after it pay one
``stat`` per message INSERT.

Both systems store through Tortoise and aiosqlite, so both carry the same probe. Nothing else is
changed; without the variable nothing is loaded.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("PARLEY_BENCH_COMMITS")

if _PATH:
    import time
    from typing import Any

    import aiosqlite.core

    _insert = aiosqlite.core.Connection._execute_insert

    def _execute_insert(self: Any, sql: str, parameters: Any) -> Any:
        row = _insert(self, sql, parameters)
        now = time.time()
        if (
            not self._conn.in_transaction
            and _table(sql).endswith("_message")
            and os.path.exists(_PATH)  # type: ignore[arg-type]
        ):
            with open(_PATH, "a") as out:  # type: ignore[arg-type]
                out.write(f"{now!r}\n")
        return row

    def _table(sql: str) -> str:
        return sql.partition('"')[2].partition('"')[0]

    aiosqlite.core.Connection._execute_insert = _execute_insert
