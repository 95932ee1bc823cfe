"""Bulk history for the growth benchmark: rows copied with SQL, never made turn by turn.

Copies are made from rows Parley stored itself (a real turn's messages and conversation), so
the seed follows whatever columns the schema has today; only ids, order and ownership change.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

_BATCH = 200_000


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _uuid_prefix() -> str:
    """The first 24 characters of a UUID; 12 decimal digits complete it."""
    hex_ = uuid.uuid4().hex
    return f"{hex_[:8]}-{hex_[8:12]}-4{hex_[13:16]}-8{hex_[17:20]}-"


def _copy_messages(
    db: sqlite3.Connection, template_id: str, count: int, conversation_sql: str, start: int = 0
) -> None:
    """``count`` copies of message ``template_id``, older than it, alternating user/assistant;
    ``conversation_sql`` is the SQL of each copy's conversation id (``i`` is the copy's number)."""
    columns = _columns(db, "parley_message")
    overrides = {
        "id": None,
        "conversation_id": conversation_sql,
        "seq": "t.seq - 1000 * (n.i + 1)",
        "role": "CASE n.i % 2 WHEN 0 THEN 'assistant' ELSE 'user' END",
        "status": "'complete'",
        "platform_message_id": "NULL",
    }
    done = 0
    while done < count:
        size = min(_BATCH, count - done)
        prefix = _uuid_prefix()
        overrides["id"] = f"'{prefix}' || printf('%012d', n.i)"
        select = ", ".join(overrides.get(c) or f"t.{c}" for c in columns)
        db.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT {start + done} UNION ALL SELECT i + 1 FROM n
                                    WHERE i < {start + done + size - 1})
            INSERT INTO parley_message ({", ".join(columns)})
            SELECT {select} FROM n, parley_message t WHERE t.id = ?
            """,
            (template_id,),
        )
        db.commit()
        done += size


def grow(path: str, conversation_id: str, messages: int) -> None:
    """Add ``messages`` older messages to conversation ``conversation_id``."""
    with closing(sqlite3.connect(path)) as db:
        (template,) = db.execute(
            "SELECT id FROM parley_message WHERE conversation_id = ? ORDER BY seq LIMIT 1",
            (conversation_id,),
        ).fetchone()
        _copy_messages(db, template, messages, "t.conversation_id")


def fill(path: str, conversation_id: str, messages: int, per_conversation: int = 100) -> None:
    """Add ``messages`` messages in new, ended conversations (``per_conversation`` each), copied
    from conversation ``conversation_id`` and its first message."""
    if messages <= 0:
        return
    conversations = max(1, messages // per_conversation)
    prefix = _uuid_prefix()
    with closing(sqlite3.connect(path)) as db:
        columns = _columns(db, "parley_conversation")
        overrides = {
            "id": f"'{prefix}' || printf('%012d', n.i)",
            "status": "'ended'",
            "reason_ended": "'expired'",
        }
        select = ", ".join(overrides.get(c) or f"t.{c}" for c in columns)
        db.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n
                                    WHERE i < {conversations - 1})
            INSERT INTO parley_conversation ({", ".join(columns)})
            SELECT {select} FROM n, parley_conversation t WHERE t.id = ?
            """,
            (conversation_id,),
        )
        (template,) = db.execute(
            "SELECT id FROM parley_message WHERE conversation_id = ? ORDER BY seq LIMIT 1",
            (conversation_id,),
        ).fetchone()
        owner = f"'{prefix}' || printf('%012d', n.i % {conversations})"
        _copy_messages(db, template, messages, owner)


def count_messages(path: str, conversation_id: str | None = None) -> int:
    """Messages in the database (in one conversation, with ``conversation_id``)."""
    with closing(sqlite3.connect(path)) as db:
        if conversation_id is None:
            return db.execute("SELECT count(*) FROM parley_message").fetchone()[0]
        return db.execute(
            "SELECT count(*) FROM parley_message WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()[0]
