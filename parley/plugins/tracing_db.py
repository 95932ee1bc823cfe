"""``db.query`` spans: Tortoise's database clients wrapped so each SQL statement run during a turn
is a span under that turn (outside a turn, or with tracing off, the wrapper only passes through).

Like the ``opentelemetry-instrumentation-*`` packages, this wraps the library's methods once per
process; the statement is recorded as sent (parameterised: values are not in it).
"""

from __future__ import annotations

import contextvars
import functools
import importlib
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from parley.core.telemetry import turn_span

__all__ = ["instrument_tortoise"]

METHODS = (
    "execute_insert",
    "execute_many",
    "execute_query",
    "execute_query_dict",
    "execute_script",
)
BACKENDS = ("tortoise.backends.sqlite.client", "tortoise.backends.asyncpg.client")
_MARK = "__parley_traced__"
MAX_STATEMENT = 300
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("parley_db_span", default=False)
"""Inside a traced call already (a subclass calling its base): no second span."""


def _system(client: Any) -> str:
    name = type(client).__module__
    return (
        "postgresql" if "postgres" in name or "asyncpg" in name or "psycopg" in name else "sqlite"
    )


def _traced(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def traced(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if _ACTIVE.get():
            return await method(self, query, *args, **kwargs)
        statement = query.strip()
        attributes = {
            "db.system": _system(self),
            "db.operation": statement.split(None, 1)[0].upper() if statement else "",
            "db.statement": statement[:MAX_STATEMENT],
        }
        token = _ACTIVE.set(True)
        try:
            with turn_span("db.query", **attributes):
                return await method(self, query, *args, **kwargs)
        finally:
            _ACTIVE.reset(token)

    setattr(traced, _MARK, True)
    return traced


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def instrument_tortoise() -> None:
    """Wrap the execute methods of every loaded Tortoise client class (idempotent)."""
    from tortoise.backends.base.client import BaseDBAsyncClient

    for module in BACKENDS:  # load the client classes (asyncpg may be missing: SQLite only)
        with suppress(ImportError):
            importlib.import_module(module)
    for cls in [BaseDBAsyncClient, *_subclasses(BaseDBAsyncClient)]:
        for name in METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, _MARK, False):
                setattr(cls, name, _traced(method))
