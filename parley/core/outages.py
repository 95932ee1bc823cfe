"""Outages are not errors: telling "the database or Redis is unreachable" from a bug.

:func:`describe` looks at an exception (its causes and context too) and names the part that is
down, or returns None for anything else. The HTTP layer answers an outage with 503 and
``Retry-After`` (``parley/server.py``), the WebSocket with an error frame; both log one warning
line, no traceback. Code that knows it hit an outage raises :class:`Unavailable` itself.

A driver's error counts as an outage when it is a connection-level one (refused, reset, closed,
timed out, server shutting down or starting up, too many connections) raised from inside the
driver: a plain ``OSError`` or ``TimeoutError`` from a provider's HTTP client is not one.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["RETRY_AFTER", "Outage", "OutageLogFilter", "Unavailable", "describe"]

RETRY_AFTER = 5
"""Seconds a client is asked to wait before sending again (``Retry-After``)."""

_PARTS = {
    "asyncpg": "database",
    "tortoise": "database",
    "aiosqlite": "database",
    "parley.core.store": "database",
    "redis": "redis",
    "parley.core.locks": "redis",
}
_SQLITE_OUTAGES = (
    "database is locked",
    "unable to open",
    "disk i/o error",
    "database or disk is full",
)


class Unavailable(Exception):
    """A part Parley needs (``database``, ``redis``) cannot be reached; try again later."""

    def __init__(self, part: str, detail: str = "", *, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(f"{part} unavailable" + (f": {detail}" if detail else ""))
        self.part = part
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Outage:
    """What to tell a client: the part that is down and when to try again."""

    part: str
    detail: str
    retry_after: int = RETRY_AFTER
    code: str = "unavailable"

    @property
    def message(self) -> str:
        """A sentence for people, naming the part."""
        return f"the {self.part} is unavailable; try again in {self.retry_after} s"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups (each once)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _raised_in(exc: BaseException) -> str | None:
    """The part whose driver code raised ``exc`` (the innermost frame that belongs to one)."""
    part = None
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, name in _PARTS.items():
            if module == prefix or module.startswith(prefix + "."):
                part = name
        tb = tb.tb_next
    return part


def _connection_error(exc: BaseException) -> str | None:
    """The part ``exc`` says is unreachable, judged by its type alone, or None."""
    module = type(exc).__module__
    if module.startswith("redis"):
        from redis.exceptions import ConnectionError, TimeoutError

        return "redis" if isinstance(exc, ConnectionError | TimeoutError) else None
    if module.startswith("asyncpg"):
        import asyncpg

        outage = (
            asyncpg.InterfaceError,  # connection closed / does not exist, pool closing
            asyncpg.PostgresConnectionError,  # class 08
            asyncpg.exceptions.OperatorInterventionError,  # 57: shutdown, starting up
            asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections
        )
        return "database" if isinstance(exc, outage) else None
    if module.startswith("tortoise"):
        from tortoise.exceptions import DBConnectionError

        return "database" if isinstance(exc, DBConnectionError) else None
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "database" if any(s in text for s in _SQLITE_OUTAGES) else None
    return None


def describe(exc: BaseException) -> Outage | None:
    """The outage behind ``exc``, or None when it is something else (a bug, bad input)."""
    for current in _chain(exc):
        if isinstance(current, Unavailable):
            return Outage(current.part, str(current), current.retry_after)
        part = _connection_error(current)
        if part is None and isinstance(current, OSError | TimeoutError):
            part = _raised_in(current)  # refused / reset / timed out inside a driver
        if part is not None:
            return Outage(part, f"{type(current).__name__}: {current}")
    return None


class OutageLogFilter(logging.Filter):
    """Keeps a library's log lines about an outage to one line: the traceback is replaced by
    the error's name and message (asyncpg's pool logs one per reconnection attempt)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if record.exc_info and record.exc_info[1] is not None:
            outage = describe(record.exc_info[1])
            if outage is not None:
                record.msg, record.args = f"{record.getMessage()} ({outage.detail})", None
                record.exc_info, record.exc_text = None, None
        return True

    @classmethod
    def install(cls, *loggers: str) -> None:
        """Attach one filter to each logger (once, however often it is called)."""
        for name in loggers:
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())
