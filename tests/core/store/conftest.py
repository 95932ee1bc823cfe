"""Store fixtures: every test runs on SQLite (a temp file) and on PostgreSQL (a fresh schema).

PostgreSQL is required (``postgres_url`` in tests/conftest.py fails, never skips, without it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.core import store
from parley.testing_services import postgres_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """URL of an empty database: a new SQLite file or a new PostgreSQL schema, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'parley.db'}"
        return
    async with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[str]:
    """The store connected (and migrated) to a fresh database; closed after the test."""
    await store.connect(db_url)
    try:
        yield db_url
    finally:
        await store.close()
